package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/wasmfaas/wasmfaas/bench"
)

func cmdBench(args []string) int {
	var kinds []string
	for _, k := range bench.Kinds {
		kinds = append(kinds, fmt.Sprintf("%s (%s)", k.Name, k.What))
	}
	fs := newFlagSet("bench", "[--url http://127.0.0.1:8000] [--kind noop] [-n tasks] [-c concurrency | --rate r] [--json]", `
Drives a running WasmFaaS API the way clients do: registers a function,
submits tasks closed-loop (-c in flight) or open-loop (--rate per second),
long-polls every result, and reports submit rate, end-to-end throughput,
latency percentiles (submission to final result) and the per-task time split
the sandboxes record. Kinds: `+strings.Join(kinds, "; ")+`.`)
	url := fs.String("url", "http://127.0.0.1:8000", "API base URL")
	kind := fs.String("kind", "noop", "task kind")
	n := fs.Int("n", 1000, "tasks to measure")
	warmup := fs.Int("warmup", 50, "tasks run first and not measured")
	conc := fs.Int("c", 8, "closed loop: tasks in flight")
	rate := fs.Float64("rate", 0, "open loop: submissions per second (overrides -c)")
	wait := fs.Duration("wait", 0, "long-poll per result request (default 10s)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs.FlagSet, args); err != nil {
		return 2
	}
	k, err := bench.KindByName(*kind)
	if err != nil {
		return fail("bench", err)
	}
	log, _ := (&commonFlags{logLevel: "warn"}).logger()
	ctx, cancel := signalContext(log)
	defer cancel()
	_, ttyErr := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS)
	rep, err := bench.Run(ctx, bench.Config{URL: *url, Kind: k, Tasks: *n, Warmup: *warmup, Concurrency: *conc,
		Rate: *rate, Wait: *wait, Progress: os.Stderr, Terminal: ttyErr == nil})
	if err != nil {
		return fail("bench", err)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printReport(rep)
	}
	if rep.Failed > 0 {
		return 1
	}
	return 0
}

func printReport(r *bench.Report) {
	load := fmt.Sprintf("closed loop, %d in flight", r.Concurrency)
	if r.Loop == "open" {
		load = fmt.Sprintf("open loop, %.0f submissions/s", r.Rate)
	}
	fmt.Printf("%s: %d tasks against %s (%s)\n", r.Kind, r.Tasks, r.URL, load)
	fmt.Printf("  completed %d, failed %d", r.Completed, r.Failed)
	for k, v := range r.Errors {
		fmt.Printf(", %s %d", k, v)
	}
	fmt.Printf("\n  submit rate   %8.0f tasks/s\n", r.SubmitRate)
	fmt.Printf("  throughput    %8.0f tasks/s  (%.2f s)\n", r.Throughput, r.Seconds)
	l := r.Latency
	fmt.Printf("  latency ms    p50 %.2f  p95 %.2f  p99 %.2f  max %.2f  (submission to final result)\n", l.P50, l.P95, l.P99, l.Max)
	fmt.Printf("  submit ms     p50 %.2f  p99 %.2f\n", r.Submit.P50, r.Submit.P99)
	s := r.Split
	fmt.Printf("  in sandbox ms wait %.3f  boot %.3f  deserialize %.3f  run %.3f  serialize %.3f  (call total %.3f)\n",
		s.SandboxWait, s.Boot, s.Deserialize, s.Run, s.Serialize, s.Sandbox)
}
