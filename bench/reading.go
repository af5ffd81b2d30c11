package bench

import (
	"fmt"
	goruntime "runtime"
	"sort"
	"strings"
)

// writeProfiles writes the pprof section: where each process's processor
// time went, per task kind.
func writeProfiles(md *strings.Builder, rows []ProfileRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(md, "## Where the processor time goes, by pprof\n\n")
	fmt.Fprintf(md, "The study runs each of these kinds once more on a local deployment with 2 sandboxes, with `FAAS_CPUPROFILE_DIR` set: every `faas` process (API, dispatcher, each sandbox process from its first task on) then writes a CPU profile (`runtime/pprof`) when it ends, and the study reads them. Time per task is the sampled processor time over %d tasks (warm-up included); shares are of each process's samples. To look yourself: `FAAS_CPUPROFILE_DIR=/tmp/prof bin/faas up`, run tasks, stop it, `go tool pprof -top bin/faas /tmp/prof/sandbox-*.pprof`.\n\n", rows[0].Tasks)
	fmt.Fprintf(md, "| kind | process | µs per task | what the time went to | top functions (own time) |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(md, "| %s | %s | %.0f | %s | %s |\n", r.Kind, r.Process, r.CPUPerTask, shares(r.Groups, 4), shares(r.Top, 3))
	}
	md.WriteString("\n")
}

func shares(s []Share, n int) string {
	var parts []string
	for i, x := range s {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s %.0f%%", strings.ReplaceAll(x.Name, "|", "\\|"), x.Percent))
	}
	return strings.Join(parts, ", ")
}

func findProfile(rows []ProfileRow, kind, proc string) *ProfileRow {
	for i := range rows {
		if rows[i].Kind == kind && rows[i].Process == proc {
			return &rows[i]
		}
	}
	return nil
}

func groupShare(r *ProfileRow, name string) float64 {
	if r == nil {
		return 0
	}
	for _, g := range r.Groups {
		if g.Name == name {
			return g.Percent
		}
	}
	return 0
}

// writeHeadline writes the target rows of the repeated no-op measurement:
// medians over the rounds, the range in brackets, and the modes compared
// round by round.
func writeHeadline(md *strings.Builder, rows []Row, mark func(bool) string) {
	byRound := map[int]map[string]float64{}
	for _, x := range rows {
		if byRound[x.Round] == nil {
			byRound[x.Round] = map[string]float64{}
		}
		byRound[x.Round][x.Mode] = x.Report.Throughput
	}
	var local []float64
	ratios := map[string][]float64{}
	for _, m := range byRound {
		if m["local"] <= 0 {
			continue
		}
		local = append(local, m["local"])
		for _, mode := range []string{"push", "pull"} {
			if v, ok := m[mode]; ok {
				ratios[mode] = append(ratios[mode], v/m["local"])
			}
		}
	}
	if len(local) == 0 {
		return
	}
	med, lo, hi := medianRange(local)
	fmt.Fprintf(md, "| no-op throughput, local mode, 2 sandboxes (median of %d rounds, and range) | %.0f tasks/s (%.0f-%.0f) | >= 2000 | %s |\n", len(local), med, lo, hi, mark(med >= 2000))
	for _, m := range []struct {
		mode string
		want float64
	}{{"push", 0.8}, {"pull", 0.7}} {
		if rs := ratios[m.mode]; len(rs) > 0 {
			med, lo, hi := medianRange(rs)
			fmt.Fprintf(md, "| %s / local, no-op, 2 sandboxes, same round (median, and range) | %.2fx (%.2f-%.2f) | >= %.1fx | %s |\n", m.mode, med, lo, hi, m.want, mark(med >= m.want))
		}
	}
}

func medianRange(xs []float64) (med, lo, hi float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	med = s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return med, s[0], s[n-1]
}

// medianRow is the row of mode whose throughput is the median (the lower
// middle one for an even count).
func medianRow(rows []Row, mode string) *Row {
	var of []*Row
	for i := range rows {
		if rows[i].Mode == mode {
			of = append(of, &rows[i])
		}
	}
	if len(of) == 0 {
		return nil
	}
	sort.Slice(of, func(i, j int) bool { return of[i].Report.Throughput < of[j].Report.Throughput })
	return of[(len(of)-1)/2]
}

// writeReading says, with this run's numbers, what bounds each headline
// figure.
func writeReading(md *strings.Builder, r Results) {
	var lines []string
	cores := float64(goruntime.NumCPU())
	var local *Row
	for i := range r.Rows {
		x := &r.Rows[i]
		if x.Mode == "local" && x.Sandboxes == 2 && x.Report.Kind == "noop" {
			local = x
		}
	}
	if x := medianRow(r.Headline, "local"); x != nil {
		local = x
	}
	if local != nil && local.CPU.Total() > 0 {
		c := local.CPU
		bound := cores * 1e6 / c.Total()
		lines = append(lines, fmt.Sprintf("**No-op throughput is bound by processor time, spread over every process.** A no-op task costs %.0f µs of processor time in all (load generator %.0f, API %.0f, Redis %.0f, dispatcher %.0f, sandboxes %.0f), so %.0f cores cannot finish more than about %.0f tasks/s; the run reached %.0f (%.0f%% of that bound). No single process is the bottleneck, and the load generator itself, a real HTTP client on the same cores, takes %.0f%% of the total.",
			c.Total(), c.Client, c.API, c.Redis, c.Dispatcher, c.Sandboxes, cores, bound, local.Report.Throughput, 100*local.Report.Throughput/bound, 100*c.Client/c.Total()))
		if api := findProfile(r.Profiles, "noop", "api"); api != nil {
			lines = append(lines, fmt.Sprintf("The API's profile for no-op tasks: %s. A task is two HTTP requests (submit, long-poll for the result) and a few Redis round trips: the cost is the kernel's and the Go runtime's per request, not one slow function.", shares(api.Groups, 4)))
		}
	}
	for _, mode := range []string{"push", "pull"} {
		x := medianRow(r.Headline, mode)
		if x == nil {
			for i := range r.Rows {
				if y := &r.Rows[i]; y.Mode == mode && y.Sandboxes == 2 && y.Report.Kind == "noop" {
					x = y
				}
			}
		}
		if x != nil && local != nil && x.CPU.Total() > 0 {
			extra := (x.CPU.Dispatcher + x.CPU.Worker) - local.CPU.Dispatcher
			lines = append(lines, fmt.Sprintf("**%s mode** (%.0f tasks/s in its median run): the extra hop (a worker process, ZeroMQ over TCP both ways) costs %.0f µs more per task in the dispatcher and worker together (%.0f + %.0f against local's %.0f), on the same 2 cores.",
				mode, x.Report.Throughput, extra, x.CPU.Dispatcher, x.CPU.Worker, local.CPU.Dispatcher))
		}
	}
	if len(r.Headline) > 0 {
		var totals []float64
		for _, x := range r.Headline {
			if x.Mode == "local" && x.CPU.Total() > 0 {
				totals = append(totals, x.CPU.Total())
			}
		}
		lo, hi := 0.0, 0.0
		if len(totals) > 0 {
			_, lo, hi = medianRange(totals)
		}
		lines = append(lines, fmt.Sprintf("**The machine's speed drifts.** Over the headline rounds the same no-op task in local mode cost between %.0f and %.0f µs of processor time in all: this is a shared virtual machine. That is why the headline figures are medians over rounds and the modes are compared within a round; the scaling points below were each measured once.", lo, hi))
	}
	for _, x := range r.Isolation {
		if x.Kind != "fib20" {
			continue
		}
		guest := groupShare(findProfile(r.Profiles, "fib20", "sandbox"), GuestCode)
		line := fmt.Sprintf("**fib(20) is bound by the interpreter's speed in WebAssembly.** A sandbox takes %.2f ms per fib(20) where a warm native python3 takes %.2f ms (%.2fx the throughput).", x.SandboxWarm, x.NativeWarmMS, x.NativeWarmMS/x.SandboxWarm)
		if guest > 0 {
			line += fmt.Sprintf(" %.0f%% of the sandbox processes' samples are in the guest's compiled code (CPython's eval loop, compiled by wazero): loading the function, pipes and dill are the rest.", guest)
		}
		line += " That code is slower than native CPython because the eval loop in WebAssembly dispatches through a `switch` (no computed goto), every load and store of linear memory carries a bounds check in wazero's compiler (wazero has no guard-page memory), and calls go through WebAssembly's checked indirect calls. `-O3`, LTO and `wasm-opt -O3` on the guest changed fib(25) by less than the run-to-run noise, so closing the gap is wazero's compiler's work, or a faster engine's, not the platform's."
		lines = append(lines, line)
	}
	if l := r.LightLoad; l != nil {
		lines = append(lines, fmt.Sprintf("**Latency at light load** (%.0f tasks/s) is %.2f ms at the median and %.2f ms at p99 from submission to a final result seen by the client: two HTTP requests, the Redis scripts, a pub/sub wake-up and one warm sandbox call.", l.Rate, l.Latency.P50, l.Latency.P99))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(md, "## Reading\n\n")
	for _, l := range lines {
		fmt.Fprintf(md, "- %s\n", l)
	}
	md.WriteString("\n")
}

// writeRounds lists the headline measurements round by round.
func writeRounds(md *strings.Builder, rows []Row) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(md, "## Headline rounds\n\nNo-op tasks, 2 sandboxes, closed loop with 4 in flight, a fresh deployment per run; the modes take turns within a round.\n\n")
	fmt.Fprintf(md, "| round | mode | tasks/s | p50 ms | p99 ms | processor time per task, all processes (µs) |\n|---|---|---|---|---|---|\n")
	for _, x := range rows {
		fmt.Fprintf(md, "| %d | %s | %.0f | %.1f | %.1f | %.0f |\n", x.Round, x.Mode, x.Report.Throughput, x.Report.Latency.P50, x.Report.Latency.P99, x.CPU.Total())
	}
	md.WriteString("\n")
}
