package bench

import (
	"fmt"
	goruntime "runtime"
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
		for i := range r.Rows {
			x := &r.Rows[i]
			if x.Mode == mode && x.Sandboxes == 2 && x.Report.Kind == "noop" && local != nil && x.CPU.Total() > 0 {
				extra := (x.CPU.Dispatcher + x.CPU.Worker) - local.CPU.Dispatcher
				lines = append(lines, fmt.Sprintf("**%s mode** reached %.2fx local's no-op throughput: the extra hop (a worker process, ZeroMQ framing, sealing each message) costs %.0f µs more per task in the dispatcher and worker together (%.0f + %.0f against local's %.0f), on the same 2 cores.",
					mode, x.Report.Throughput/local.Report.Throughput, extra, x.CPU.Dispatcher, x.CPU.Worker, local.CPU.Dispatcher))
			}
		}
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
