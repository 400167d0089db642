package detect

import (
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"slices"
)

// groupKey places record i in a group and orders it there. Records that may
// belong together (one event for the merges, one parent process for the
// detection) share a fingerprint of their key fields, and within a group
// they sort by time, then by i. Sorting 24-byte keys is much cheaper than
// sorting records. A fingerprint collision only puts two records in one
// group: every user compares the fields themselves before it pairs records.
type groupKey struct {
	fingerprint uint64
	time        int64
	i           int32
}

func compareGroupKeys(a, b groupKey) int {
	switch {
	case a.fingerprint != b.fingerprint:
		return cmp.Compare(a.fingerprint, b.fingerprint)
	case a.time != b.time:
		return cmp.Compare(a.time, b.time)
	default:
		return cmp.Compare(a.i, b.i)
	}
}

func lessGroupKey(a, b *groupKey) bool {
	if a.fingerprint != b.fingerprint {
		return a.fingerprint < b.fingerprint
	}
	if a.time != b.time {
		return a.time < b.time
	}
	return a.i < b.i
}

// insertionSort sorts a few keys faster than a general sort, whose
// comparisons go through a function value.
func insertionSort(keys []groupKey) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && lessGroupKey(&keys[j], &keys[j-1]); j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
}

// keySorter sorts group keys, reusing its buffers across sorts.
type keySorter struct {
	scratch []groupKey
	counts  []int
}

// sort orders keys by fingerprint, time and index. Large inputs are first
// distributed into buckets by the top bits of the fingerprint (one counting
// pass and one scatter, O(n)), then each bucket is sorted. Buckets hold
// about eight keys each, except where one group is large.
func (s *keySorter) sort(keys []groupKey) {
	const minBucketed = 1 << 12
	if len(keys) < minBucketed {
		slices.SortFunc(keys, compareGroupKeys)
		return
	}

	shift := 64 - (bits.Len(uint(len(keys))) - 3)
	buckets := 1 << (64 - shift)
	s.counts = slices.Grow(s.counts[:0], buckets+1)[:buckets+1]
	clear(s.counts)
	for _, k := range keys {
		s.counts[k.fingerprint>>shift+1]++
	}
	for b := 1; b <= buckets; b++ {
		s.counts[b] += s.counts[b-1]
	}

	// Scatter the keys. Each bucket's counter moves from the bucket's start
	// to its end, so afterwards bucket b spans counts[b-1] (0 for b = 0) to
	// counts[b].
	s.scratch = slices.Grow(s.scratch[:0], len(keys))[:len(keys)]
	for _, k := range keys {
		b := k.fingerprint >> shift
		s.scratch[s.counts[b]] = k
		s.counts[b]++
	}
	const maxInsertionSort = 16
	start := 0
	for b := range buckets {
		bucket := s.scratch[start:s.counts[b]]
		if len(bucket) <= maxInsertionSort {
			insertionSort(bucket)
		} else {
			slices.SortFunc(bucket, compareGroupKeys)
		}
		start = s.counts[b]
	}
	copy(keys, s.scratch)
}

// hashSeed seeds the fingerprints of one process. Fingerprints only group
// records, so no result depends on the seed.
var hashSeed = maphash.MakeSeed()

func hashString(s string) uint64 {
	return maphash.String(hashSeed, s)
}

// hashFoldASCII hashes s with ASCII letters lowered, without allocating.
// Non-ASCII letters hash by their bytes, so their case variants land in
// different groups and are not paired. The system's own service images have
// ASCII names.
func hashFoldASCII(s string) uint64 {
	var buf [64]byte
	h := uint64(len(s))
	for len(s) > 0 {
		n := copy(buf[:], s)
		for i := range n {
			if c := buf[i]; 'A' <= c && c <= 'Z' {
				buf[i] = c + ('a' - 'A')
			}
		}
		h = mix(h, maphash.Bytes(hashSeed, buf[:n]))
		s = s[n:]
	}
	return h
}

// mix folds x into the fingerprint h with a 64x64-to-128-bit multiply.
func mix(h, x uint64) uint64 {
	hi, lo := bits.Mul64(h^x, 0x9e3779b97f4a7c15)
	return hi ^ lo
}

// mixAddr folds an address into h: a parsed address by value, so that every
// spelling of one address agrees, and any other text as it is.
func mixAddr(h uint64, addr netip.Addr, parsed bool, text string) uint64 {
	if !parsed {
		return mix(h, hashString(text))
	}
	b := addr.As16()
	h = mix(h, binary.BigEndian.Uint64(b[:8]))
	return mix(h, binary.BigEndian.Uint64(b[8:]))
}

// pidFingerprint groups records by host and process id.
func pidFingerprint(host string, pid int64) uint64 {
	return mix(hashString(host), uint64(pid))
}

// instanceFingerprint groups records by host and process instance key.
func instanceFingerprint(host, instance string) uint64 {
	return mix(hashString(host), hashString(instance))
}
