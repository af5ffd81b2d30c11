package bench

import (
	"testing"

	"github.com/google/pprof/profile"
)

func TestSampleGroup(t *testing.T) {
	cases := []struct {
		frames []string
		want   string
	}{
		{nil, GuestCode},
		{[]string{"runtime._ExternalCode"}, GuestCode},
		{[]string{"runtime.memclrNoHeapPointers", "runtime.mallocgc", "encoding/json.Marshal"}, "Go allocation and garbage collection"},
		{[]string{"runtime.scanobject", "runtime.gcDrain", "runtime.gcBgMarkWorker"}, "Go allocation and garbage collection"},
		{[]string{"internal/runtime/syscall/linux.Syscall6", "syscall.write", "net.(*conn).Write"}, "system calls (sockets, pipes, futex)"},
		{[]string{"runtime.futex", "runtime.notewakeup"}, "system calls (sockets, pipes, futex)"},
		{[]string{"runtime.findRunnable", "runtime.schedule"}, "Go scheduler and runtime"},
		{[]string{"encoding/json.checkValid", "encoding/json.Unmarshal"}, "encoding/json"},
		{[]string{"github.com/redis/go-redis/v9/internal/proto.(*Reader).ReadReply"}, "redis/go-redis/v9/internal/proto"},
		{[]string{"net/http.(*conn).serve"}, "net/http"},
	}
	for _, tc := range cases {
		if got := sampleGroup(tc.frames); got != tc.want {
			t.Errorf("sampleGroup(%v) = %q, want %q", tc.frames, got, tc.want)
		}
	}
}

func TestSummarizeProfile(t *testing.T) {
	fn := func(id uint64, name string) *profile.Function { return &profile.Function{ID: id, Name: name} }
	loc := func(id uint64, f *profile.Function) *profile.Location {
		return &profile.Location{ID: id, Line: []profile.Line{{Function: f}}}
	}
	ext, sys := fn(1, "runtime._ExternalCode"), fn(2, "internal/runtime/syscall/linux.Syscall6")
	guest, syscall := loc(1, ext), loc(2, sys)
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		Sample: []*profile.Sample{
			{Location: []*profile.Location{guest}, Value: []int64{3, 30_000_000}},
			{Location: []*profile.Location{syscall}, Value: []int64{1, 10_000_000}},
		},
		Location: []*profile.Location{guest, syscall},
		Function: []*profile.Function{ext, sys},
	}
	row := summarizeProfile(p, 5)
	if row.CPUPerTask != 40_000 {
		t.Errorf("total %v µs, want 40000", row.CPUPerTask)
	}
	if len(row.Groups) != 2 || row.Groups[0].Name != GuestCode || row.Groups[0].Percent != 75 {
		t.Errorf("groups %+v, want the guest code first at 75%%", row.Groups)
	}
	if row.Top[1].Name != "internal/runtime/syscall/linux.Syscall6" || row.Top[1].Percent != 25 {
		t.Errorf("top functions %+v", row.Top)
	}
}
