package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/pprof/profile"
)

// ProfileRow is where one process spent its processor time while a
// deployment ran one kind of task, read from the CPU profile (pprof) the
// process wrote.
type ProfileRow struct {
	Kind       string  `json:"kind"`
	Process    string  `json:"process"` // api, dispatcher, sandbox (all sandbox processes together)
	Tasks      int     `json:"tasks"`
	CPUPerTask float64 `json:"cpu_us_per_task"` // sampled processor time / tasks
	Groups     []Share `json:"groups"`          // shares of the sampled time, largest first
	Top        []Share `json:"top_functions"`   // functions by own (flat) time
}

// Share is a part of a profile, in percent of its samples.
type Share struct {
	Name    string  `json:"name"`
	Percent float64 `json:"percent"`
}

// GuestCode names the samples taken in code wazero compiled from the
// guest's WebAssembly: CPython's interpreter running the function. Go's
// profiler cannot walk that code, and counts it as runtime._ExternalCode.
const GuestCode = "guest WebAssembly (CPython, compiled by wazero)"

// Profile runs each kind on a fresh local deployment of 2 sandboxes whose
// processes (API, dispatcher, sandboxes) write CPU profiles, stops it so
// that they flush them, and summarizes each process's profile.
func Profile(ctx context.Context, cfg StudyConfig, progress func(kind string) Config) ([]ProfileRow, error) {
	var rows []ProfileRow
	for _, k := range cfg.Kinds {
		dir, err := os.MkdirTemp("", "faas-profile-")
		if err != nil {
			return rows, err
		}
		c := cfg.withDefaults()
		c.Env = append(append([]string(nil), cfg.Env...), "FAAS_CPUPROFILE_DIR="+dir)
		d, err := startDeployment(ctx, c, "local", 2)
		if err != nil {
			os.RemoveAll(dir)
			return rows, err
		}
		rc := progress(k.Name)
		rc.URL, rc.Kind = d.url, k
		rc.Tasks, rc.Warmup, rc.Concurrency = max(cfg.PerSandbox*2, minTasks[k.Name]), 50, 4
		cfg.Log.Info("profile", "kind", k.Name, "tasks", rc.Tasks)
		_, err = Run(ctx, rc)
		d.stop() // SIGTERM: every process flushes its profile as it ends
		if err != nil {
			os.RemoveAll(dir)
			return rows, fmt.Errorf("bench: profile %s: %w", k.Name, err)
		}
		got, err := summarizeProfiles(dir, k.Name, rc.Tasks+rc.Warmup)
		os.RemoveAll(dir)
		if err != nil {
			return rows, err
		}
		rows = append(rows, got...)
	}
	return rows, nil
}

// summarizeProfiles reads <process>-<pid>.pprof files in dir, merging the
// profiles of one kind of process.
func summarizeProfiles(dir, kind string, tasks int) ([]ProfileRow, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.pprof"))
	if err != nil {
		return nil, err
	}
	byProc := map[string][]*profile.Profile{}
	for _, f := range files {
		proc := strings.SplitN(filepath.Base(f), "-", 2)[0]
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		p, err := profile.Parse(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("bench: read profile %s: %w", f, err)
		}
		byProc[proc] = append(byProc[proc], p)
	}
	var rows []ProfileRow
	for _, proc := range []string{"api", "dispatcher", "sandbox"} {
		ps := byProc[proc]
		if len(ps) == 0 {
			return nil, fmt.Errorf("bench: no %s profile written for %s", proc, kind)
		}
		p, err := profile.Merge(ps)
		if err != nil {
			return nil, fmt.Errorf("bench: merge %s profiles: %w", proc, err)
		}
		row := summarizeProfile(p, 6)
		row.Kind, row.Process, row.Tasks = kind, proc, tasks
		row.CPUPerTask /= float64(tasks)
		rows = append(rows, row)
	}
	return rows, nil
}

// summarizeProfile groups a CPU profile's samples (see sampleGroup) and
// lists its top functions. CPUPerTask holds the total in microseconds.
func summarizeProfile(p *profile.Profile, n int) ProfileRow {
	vi := len(p.SampleType) - 1 // cpu nanoseconds
	groups, funcs := map[string]int64{}, map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		frames := sampleFrames(s)
		groups[sampleGroup(frames)] += v
		leaf := GuestCode
		if len(frames) > 0 && frames[0] != "runtime._ExternalCode" {
			leaf = frames[0]
		}
		funcs[leaf] += v
	}
	return ProfileRow{CPUPerTask: float64(total) / 1e3, Groups: topShares(groups, total, n), Top: topShares(funcs, total, n)}
}

// sampleFrames lists a sample's function names, innermost first.
func sampleFrames(s *profile.Sample) []string {
	var out []string
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function != nil {
				out = append(out, l.Function.Name)
			}
		}
	}
	return out
}

// sampleGroup says what a sample's processor time went to.
func sampleGroup(frames []string) string {
	if len(frames) == 0 || frames[0] == "runtime._ExternalCode" {
		return GuestCode
	}
	for _, f := range frames {
		switch {
		case strings.HasPrefix(f, "runtime.gc"), strings.HasPrefix(f, "runtime.mallocgc"),
			f == "runtime.bgsweep", f == "runtime.bgscavenge", strings.HasPrefix(f, "runtime.(*mheap)"):
			return "Go allocation and garbage collection"
		}
	}
	leaf := frames[0]
	switch {
	case strings.HasPrefix(leaf, "syscall."), strings.HasPrefix(leaf, "internal/runtime/syscall"),
		leaf == "runtime.futex", leaf == "runtime.epollwait", leaf == "runtime.write1", leaf == "runtime.read",
		leaf == "runtime.usleep", leaf == "runtime.nanotime1", leaf == "runtime.madvise":
		return "system calls (sockets, pipes, futex)"
	case strings.HasPrefix(leaf, "runtime."):
		return "Go scheduler and runtime"
	}
	return packageOf(leaf)
}

// packageOf is the package of a function name, with a module's host left out
// ("github.com/redis/go-redis/v9/internal/pool.(*Conn).Write" is
// "redis/go-redis/v9/internal/pool").
func packageOf(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	dot := strings.IndexByte(fn[slash+1:], '.')
	pkg := fn
	if dot >= 0 {
		pkg = fn[:slash+1+dot]
	}
	if i := strings.IndexByte(pkg, '/'); i > 0 && strings.Contains(pkg[:i], ".") {
		pkg = pkg[i+1:]
	}
	return pkg
}

func topShares(m map[string]int64, total int64, n int) []Share {
	var out []Share
	for k, v := range m {
		out = append(out, Share{k, 100 * float64(v) / float64(max(total, 1))})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Percent != out[j].Percent {
			return out[i].Percent > out[j].Percent
		}
		return out[i].Name < out[j].Name
	})
	if len(out) > n {
		out = out[:n]
	}
	return out
}
