package detect

import "math/bits"

// fingerprintFilter is a bitset over fingerprints. It never misses an added
// fingerprint and reports a few percent of the others as added.
type fingerprintFilter struct {
	bits []uint64
	mask uint64
}

// newFingerprintFilter sizes the filter at 16 to 32 bits per expected
// entry, so that 3% to 6% of other fingerprints pass.
func newFingerprintFilter(entries int) *fingerprintFilter {
	words := 1 << bits.Len(uint(entries/4))
	return &fingerprintFilter{bits: make([]uint64, words), mask: uint64(words*64 - 1)}
}

func (f *fingerprintFilter) add(fingerprint uint64) {
	bit := fingerprint & f.mask
	f.bits[bit/64] |= 1 << (bit % 64)
}

func (f *fingerprintFilter) has(fingerprint uint64) bool {
	bit := fingerprint & f.mask
	return f.bits[bit/64]&(1<<(bit%64)) != 0
}

// windowFilter is a bitset over (group fingerprint, time bucket) pairs that
// records whether a group has an entry near a time. An entry at t is added
// to every bucket that overlaps [t - near.after, t + near.before], so a
// probe at p reads one bucket and finds every entry in
// [p - near.before, p + near.after]. It never misses such an entry, and
// reports one that is not there for a few percent of probes.
//
// The bits of 512 consecutive buckets of one group share a 64-byte line, so
// an addition and a probe each touch one cache line.
type windowFilter struct {
	lines [][8]uint64
	mask  uint64
	near  span
	width int64
}

// newWindowFilter sizes the filter for entries additions. Buckets half the
// span wide make each entry cover about three buckets and widen the span
// by at most a half. The filter keeps about 16 bits per bucket set, so
// that about 6% of probes of empty buckets pass.
func newWindowFilter(entries int, near span) *windowFilter {
	const bucketsPerEntry, bitsPerBucket, bitsPerLine = 3, 16, 512
	lines := 1 << bits.Len(uint(entries*bucketsPerEntry*bitsPerBucket/bitsPerLine))
	return &windowFilter{
		lines: make([][8]uint64, lines),
		mask:  uint64(lines - 1),
		near:  near,
		width: max((near.before+near.after)/2, 1),
	}
}

func (f *windowFilter) add(fingerprint uint64, t int64) {
	last := floorDiv(t+f.near.before, f.width)
	for bucket := floorDiv(t-f.near.after, f.width); bucket <= last; bucket++ {
		line, bit := f.locate(fingerprint, bucket)
		line[bit/64] |= 1 << (bit % 64)
	}
}

// mayHave reports whether the group may have an entry in
// [t - near.before, t + near.after].
func (f *windowFilter) mayHave(fingerprint uint64, t int64) bool {
	line, bit := f.locate(fingerprint, floorDiv(t, f.width))
	return line[bit/64]&(1<<(bit%64)) != 0
}

// locate returns the line and bit of a bucket: the line is chosen by the
// group and the bucket's block of 512, the bit by the bucket within it.
func (f *windowFilter) locate(fingerprint uint64, bucket int64) (*[8]uint64, uint64) {
	block := uint64(bucket >> 9)
	return &f.lines[mix(fingerprint, block)&f.mask], uint64(bucket) & 511
}

// floorDiv divides rounding toward minus infinity, so that buckets of
// times before 1970 have the same width as the others.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
