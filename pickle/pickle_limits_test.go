package pickle

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// Hostile payloads (8 MiB, well past every limit of the inspector; the API
// lets through 24 MiB) are inspected with memory bounded by a small multiple
// of their size, and get an answer rather than exhausting the host.
func TestHostilePayloadsStayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates large inputs")
	}
	const size = 8 << 20
	rep := func(prefix, unit, suffix string) []byte {
		var b bytes.Buffer
		b.WriteString(prefix)
		for b.Len() < size-len(suffix) {
			b.WriteString(unit)
		}
		b.WriteString(suffix)
		return b.Bytes()
	}
	for _, c := range []struct {
		name string
		data []byte
		want string // "" means accepted
	}{
		{"deeply nested tuples", rep("\x80\x04N", "\x85", "."), "nested more than 10000 deep"},
		{"many small tuples", rep("\x80\x04", "N\x850", "N."), ""},
		{"many big tuples", rep("\x80\x04", "(NNNNNNNNNNNNNNNNNNNNNNNNNNNNNt0", "N."), ""},
		{"memo flood", rep("\x80\x04N", "\x94", "."), "too many memoized objects"},
		{"memo flood with strings", rep("\x80\x04", "\x8c\x01a\x94", "."), "too many"},
		{"stack flood", rep("\x80\x04", "N", "."), "too many objects on the stack"},
		{"mark flood", rep("\x80\x04", "(", "."), "too many open MARKs"},
		{"dup flood", rep("\x80\x04N", "2", "."), "too many objects on the stack"},
		{"long list", rep("\x80\x04](", "K\x01", "e."), "too many objects on the stack"},
		{"long list in batches", rep("\x80\x04]", "(K\x01K\x02K\x03e", "."), ""},
		{"global flood", rep("\x80\x02", "cmath\nsqrt\n0", "N."), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := inspectPickle(c.data)
			runtime.ReadMemStats(&after)
			if c.want == "" && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d MiB allocated for %d MiB of pickle", alloc>>20, len(c.data)>>20)
			if limit := uint64(24 * len(c.data)); alloc > limit {
				t.Fatalf("allocated %d MiB for %d MiB of pickle (limit %d MiB)", alloc>>20, len(c.data)>>20, limit>>20)
			}
		})
	}
}
