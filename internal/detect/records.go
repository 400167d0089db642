package detect

import (
	"fmt"
	"math"
)

// mergeSet holds the records of one merge without copying the input. The
// input stays read-only, and only records built from two or more input
// records are stored, in merged. A ref names a record: refs below
// len(input) are input indices, the others index merged. Refs are int32 so
// that a group key takes 24 bytes.
type mergeSet[T any] struct {
	input  []T
	merged chunks[T]
	// first holds, per merged record, the lowest input index among its
	// members, which gives the record's place in the output.
	first []int32
	// slot holds, per input index: 0 when the input record stands for
	// itself, -1 when it was absorbed into a merged record, and k > 0 when
	// its place in the output belongs to merged[k-1].
	slot []int32
	// firsts lists the input indices that own an output place, ascending.
	firsts []int32
}

// newMergeSet starts a merge of the input records listed, ascending, in
// candidates. The set takes ownership of candidates.
func newMergeSet[T any](input []T, candidates []int32) *mergeSet[T] {
	if len(input) > math.MaxInt32/2 {
		panic(fmt.Sprintf("detect: %d records in one call, more than the 2^30 that int32 refs can name", len(input)))
	}
	return &mergeSet[T]{input: input, slot: make([]int32, len(input)), firsts: candidates}
}

// at returns the record named by ref. The pointer is valid until the next
// join.
func (s *mergeSet[T]) at(ref int32) *T {
	if int(ref) < len(s.input) {
		return &s.input[ref]
	}
	return s.merged.at(int(ref) - len(s.input))
}

// firstIndex returns the lowest input index among the record's members.
func (s *mergeSet[T]) firstIndex(ref int32) int32 {
	if int(ref) < len(s.input) {
		return ref
	}
	return s.first[int(ref)-len(s.input)]
}

// refAt returns the ref of the record that owns the output place of input
// index i, which must not be absorbed.
func (s *mergeSet[T]) refAt(i int32) int32 {
	if k := s.slot[i]; k > 0 {
		return int32(len(s.input)) + k - 1
	}
	return i
}

// join stores record as the merge of the records named by a and b, and
// returns its ref.
func (s *mergeSet[T]) join(a, b int32, record T) int32 {
	firstA, firstB := s.firstIndex(a), s.firstIndex(b)

	// Reuse a merged slot when one side has one; the other side's slot,
	// if any, is no longer referenced.
	var k int
	switch {
	case int(a) >= len(s.input):
		k = int(a) - len(s.input)
	case int(b) >= len(s.input):
		k = int(b) - len(s.input)
	default:
		k = s.merged.add()
		s.first = append(s.first, 0)
	}
	*s.merged.at(k) = record

	first := min(firstA, firstB)
	s.first[k] = first
	s.slot[firstA], s.slot[firstB] = -1, -1
	s.slot[first] = int32(k) + 1
	return int32(len(s.input) + k)
}

// compact drops the absorbed records from firsts, in place.
func (s *mergeSet[T]) compact() {
	w := 0
	for _, i := range s.firsts {
		if s.slot[i] != -1 {
			s.firsts[w] = i
			w++
		}
	}
	s.firsts = s.firsts[:w]
}

// records returns the merged records in output order, as a new slice.
func (s *mergeSet[T]) records() []T {
	out := make([]T, len(s.firsts))
	for n, i := range s.firsts {
		out[n] = *s.at(s.refAt(i))
	}
	return out
}

// chunkSize is the number of records in one chunk of a chunks list.
const chunkSize = 512

// chunks is a list that grows by whole chunks, so that adding never copies
// the records already stored.
type chunks[T any] struct {
	list [][]T
	n    int
}

// add appends a zero record and returns its index.
func (c *chunks[T]) add() int {
	if c.n%chunkSize == 0 {
		c.list = append(c.list, make([]T, chunkSize))
	}
	c.n++
	return c.n - 1
}

func (c *chunks[T]) at(k int) *T {
	return &c.list[k/chunkSize][k%chunkSize]
}

// openCluster is a cluster that later records of its run may join.
type openCluster struct {
	ref int32
	// latest is the latest key time among the cluster's members.
	latest int64
}

// clusterRuns walks keys, sorted so that the records of one fingerprint form
// a run in time order, and tries to merge each record into one of the
// latest mergeLookback clusters of its run, newest first. Clusters whose
// latest member started more than reach before the record are skipped
// without reading records. reach must be MergeSlack plus the coarsest
// resolution among the records. merge returns the cluster's ref after the
// merge, or false when the two records are not one event. open is scratch
// space, returned for reuse.
func clusterRuns(keys []groupKey, reach int64, open []openCluster, merge func(cluster, ref int32) (int32, bool)) []openCluster {
	open = open[:0]
	for n, key := range keys {
		if n > 0 && keys[n-1].fingerprint != key.fingerprint {
			open = open[:0]
		}

		joined := false
		for j := len(open) - 1; j >= max(0, len(open)-mergeLookback); j-- {
			if key.time-open[j].latest > reach {
				continue
			}
			if merged, ok := merge(open[j].ref, key.i); ok {
				open[j] = openCluster{ref: merged, latest: max(open[j].latest, key.time)}
				joined = true
				break
			}
		}
		if !joined {
			open = append(open, openCluster{ref: key.i, latest: key.time})
		}
	}
	return open
}

// dropDuplicates removes from keys, sorted as for clusterRuns, every input
// record equal to an earlier input record of the same fingerprint and time,
// and marks it absorbed into that record. Such a record is one event
// delivered twice, as when overlapping exports are loaded. Duplicates are
// removed before clustering because a merged record no longer shows each
// source's own fields: once one twin has joined a record of another source,
// the other twin no longer matches it. Records merged in an earlier pass
// (refs past the input) are kept.
func dropDuplicates[T any](set *mergeSet[T], keys []groupKey, equal func(a, b *T) bool) []groupKey {
	kept := keys[:0]
	run := 0 // the first kept key with the current fingerprint and time
	for _, key := range keys {
		if n := len(kept); n > 0 && (kept[n-1].fingerprint != key.fingerprint || kept[n-1].time != key.time) {
			run = n
		}
		if isDuplicate(set, kept[run:], key.i, equal) {
			set.slot[key.i] = -1
			continue
		}
		kept = append(kept, key)
	}
	return kept
}

// isDuplicate reports whether input record ref equals one of the input
// records in run.
func isDuplicate[T any](set *mergeSet[T], run []groupKey, ref int32, equal func(a, b *T) bool) bool {
	if int(ref) >= len(set.input) {
		return false
	}
	for _, k := range run {
		if int(k.i) < len(set.input) && equal(&set.input[k.i], &set.input[ref]) {
			return true
		}
	}
	return false
}

// allIndices returns 0, 1, ..., n-1.
func allIndices(n int) []int32 {
	indices := make([]int32, n)
	for i := range indices {
		indices[i] = int32(i)
	}
	return indices
}
