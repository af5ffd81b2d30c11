package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wasmfaas/wasmfaas/bench"
)

func cmdBench(args []string) int {
	if len(args) > 0 && args[0] == "study" {
		return cmdBenchStudy(args[1:])
	}
	if len(args) > 0 && args[0] == "scale" {
		return cmdBenchScale(args[1:])
	}
	if len(args) > 0 && args[0] == "compare" {
		return cmdBenchCompare(args[1:])
	}
	var kinds []string
	for _, k := range bench.Kinds() {
		kinds = append(kinds, fmt.Sprintf("%s (%s)", k.Name, k.What))
	}
	fs := newFlagSet("bench", "[--url http://127.0.0.1:8000] [--kind noop] [-n tasks] [-c concurrency | --rate r] [--json]\n       faas bench study [flags]   (the full study; see faas bench study -h)\n       faas bench compare --baseline <faas binary> [flags]   (two binaries side by side)\n       faas bench scale [flags]   (how cost grows with queue depth, tenants, workers, payloads)", `
Drives a running WasmFaaS API the way clients do: registers a function,
submits tasks closed-loop (-c in flight) or open-loop (--rate per second),
long-polls every result, and reports submit rate, end-to-end throughput,
latency percentiles (submission to final result) and the per-task time split
the sandboxes record. Kinds: `+strings.Join(kinds, "; ")+`.`)
	url := fs.String("url", "http://"+defaultAddr, "API base URL")
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

// cmdBenchStudy is `faas bench study`: the whole evaluation behind
// `make bench`, written to a directory as CSV, SVG plots and a markdown report.
func cmdBenchStudy(args []string) int {
	fs := newFlagSet("bench study", "[--out bench/results] [flags]", `
Runs the performance study on this machine and writes results.csv,
results.json, plots/*.svg and report.md: the headline no-op point (2
sandboxes, every mode taking turns, --rounds times), weak scaling (every mode at every
size, fresh redis-server + faas api + dispatcher + workers per point, started
and stopped here), latency at light load, CPU profiles (pprof) of every
process for no-op and fib20 tasks, and the cost of isolation (native python3
warm pool and process per task against the sandbox warm and fresh).`)
	out := fs.String("out", "bench/results", "output directory")
	sizes := fs.String("sizes", "1,2,4,8", "total sandboxes per point")
	modes := fs.String("modes", "local,push,pull", "dispatcher modes")
	kindList := fs.String("kinds", "noop,fib20,sleep100ms,arg1mb", "task kinds")
	per := fs.Int("per-sandbox", 200, "tasks per sandbox at every point")
	nativePy := fs.String("native", "bench/native.py", "the native baseline script")
	skipIso := fs.Bool("skip-isolation", false, "leave out the isolation-overhead runs")
	rounds := fs.Int("rounds", 5, "rounds of the headline no-op measurement (2 sandboxes, every mode)")
	if err := parseFlags(fs.FlagSet, args); err != nil {
		return 2
	}
	log, _ := (&commonFlags{logLevel: "info"}).logger()
	ctx, cancel := signalContext(log)
	defer cancel()
	var cfg bench.StudyConfig
	cfg.Dir, cfg.PerSandbox, cfg.Log = *out, *per, log
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fail("bench study", fmt.Errorf("--sizes: %q is not a positive number", s))
		}
		cfg.Sizes = append(cfg.Sizes, n)
	}
	cfg.Modes = strings.Split(*modes, ",")
	for _, name := range strings.Split(*kindList, ",") {
		k, err := bench.KindByName(strings.TrimSpace(name))
		if err != nil {
			return fail("bench study", err)
		}
		cfg.Kinds = append(cfg.Kinds, k)
	}
	_, ttyErr := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS)
	progress := func(string) bench.Config { return bench.Config{Progress: os.Stderr, Terminal: ttyErr == nil} }
	res := bench.Results{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Machine: bench.Machine(),
		Command: "faas bench study " + strings.Join(args, " ")}
	if b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		res.Commit = strings.TrimSpace(string(b))
	}
	if *rounds > 0 {
		log.Info("study: headline rounds", "rounds", *rounds)
		var err error
		if res.Headline, err = bench.Headline(ctx, cfg, *rounds, progress); err != nil {
			bench.WriteReport(*out, res)
			return fail("bench study", err)
		}
	}
	rows, err := bench.Study(ctx, cfg, progress)
	res.Rows = rows
	if err != nil {
		bench.WriteReport(*out, res)
		return fail("bench study", err)
	}
	log.Info("study: latency at light load")
	if res.LightLoad, err = bench.LightLoad(ctx, cfg, 50, 600, progress("noop")); err != nil {
		bench.WriteReport(*out, res) // keep what was measured
		return fail("bench study", err)
	}
	log.Info("study: CPU profiles")
	pc := cfg
	pc.Kinds = nil
	for _, k := range cfg.Kinds {
		if k.Name == "noop" || k.Name == "fib20" {
			pc.Kinds = append(pc.Kinds, k)
		}
	}
	if res.Profiles, err = bench.Profile(ctx, pc, progress); err != nil {
		bench.WriteReport(*out, res)
		return fail("bench study", err)
	}
	if !*skipIso {
		res.Isolation, err = bench.Isolation(ctx, bench.IsolationConfig{Processes: 2, NativePy: *nativePy,
			Log: func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }})
		if err != nil {
			bench.WriteReport(*out, res)
			return fail("bench study", err)
		}
	}
	if err := bench.WriteReport(*out, res); err != nil {
		return fail("bench study", err)
	}
	fmt.Printf("report written to %s/report.md\n", *out)
	return 0
}

// cmdBenchCompare is `faas bench compare`: this binary against a baseline
// binary, side by side in one run.
func cmdBenchCompare(args []string) int {
	fs := newFlagSet("bench compare", "--baseline <faas binary> [flags]", `
Measures the headline no-op point (2 sandboxes, every mode; fresh
redis-server + faas api + dispatcher + workers per point) with a baseline
faas binary and with this one, taking turns within every round, and prints
for each mode the median throughput and processor time per task with their
ranges, the ratios candidate/baseline, and each binary's push and pull
against its local mode. Ratios from one run are what to compare: this
machine's speed drifts between minutes.`)
	baseline := fs.String("baseline", "", "the faas binary to compare against (required)")
	candidate := fs.String("candidate", "", "the faas binary to compare (default: this one)")
	modes := fs.String("modes", "local,push,pull", "dispatcher modes")
	rounds := fs.Int("rounds", 3, "rounds (each runs every mode on both binaries)")
	per := fs.Int("per-sandbox", 500, "tasks per sandbox at every point")
	out := fs.String("json", "", "also write the comparison as JSON to this file")
	var envs [2]stringList
	fs.Var(&envs[0], "baseline-env", "K=V added to the baseline's environment (repeatable; e.g. FAAS_ISOLATION=warm)")
	fs.Var(&envs[1], "candidate-env", "K=V added to the candidate's environment (repeatable; e.g. FAAS_ISOLATION=fresh)")
	if err := parseFlags(fs.FlagSet, args); err != nil {
		return 2
	}
	for _, l := range envs {
		for _, kv := range l {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return fail("bench compare", fmt.Errorf("an environment entry must be K=V, not %q", kv))
			}
		}
	}
	if *baseline == "" {
		return fail("bench compare", fmt.Errorf("--baseline is required"))
	}
	if *rounds < 1 {
		return fail("bench compare", fmt.Errorf("--rounds must be at least 1"))
	}
	log, _ := (&commonFlags{logLevel: "info"}).logger()
	ctx, cancel := signalContext(log)
	defer cancel()
	cfg := bench.StudyConfig{Faas: *candidate, Modes: strings.Split(*modes, ","), PerSandbox: *per, Log: log,
		Dir: os.TempDir()}
	quiet := func(string) bench.Config { return bench.Config{} }
	c, err := bench.Compare(ctx, cfg, *baseline, [2][]string{envs[0], envs[1]}, *rounds, quiet)
	if err != nil {
		return fail("bench compare", err)
	}
	c.WriteText(os.Stdout)
	if *out != "" {
		b, _ := json.MarshalIndent(c, "", "  ")
		if err := os.WriteFile(*out, b, 0o644); err != nil {
			return fail("bench compare", err)
		}
	}
	return 0
}

// cmdBenchScale is `faas bench scale`: the scaling study.
func cmdBenchScale(args []string) int {
	fs := newFlagSet("bench scale", "[--out bench/results] [flags]", `
Runs the scaling study and writes scale.md, scale.json and plots/scale-*.svg:
how the cost of a no-op task grows with the queue's depth (enqueue --queue
tasks first, then drain them: enqueue rate, Redis memory per queued and per
finished task, with and without a result TTL, throughput and Redis time per
script call as the queue empties), with the tenants that have work queued
(throughput, claim cost, first-start fairness), with push and pull worker
processes of 2 sandboxes each, and with payload sizes (an echo of arguments of
each size). Every part starts and stops its own redis-server, faas api,
dispatcher and workers.`)
	out := fs.String("out", "bench/results", "output directory")
	queue := fs.Int("queue", 1000000, "tasks enqueued before the dispatcher starts (0: leave the part out)")
	noTTL := fs.Int("queue-no-ttl", 50000, "tasks of the run without a result TTL (0: leave it out)")
	tenants := fs.String("tenants", "1,10,100,1000", "tenant counts ('': leave the part out)")
	tenantWork := fs.Int("tenant-tasks", 20000, "tasks at each tenant count, spread over the tenants")
	workers := fs.String("workers", "1,2,4,8", "push and pull worker processes ('': leave the part out)")
	payloads := fs.String("payloads", "1KB,100KB,1MB,10MB", "argument and result sizes ('': leave the part out)")
	if err := parseFlags(fs.FlagSet, args); err != nil {
		return 2
	}
	log, _ := (&commonFlags{logLevel: "info"}).logger()
	ctx, cancel := signalContext(log)
	defer cancel()
	cfg := bench.ScaleConfig{QueueTasks: *queue, NoTTLTasks: *noTTL, TenantWork: *tenantWork}
	cfg.Study.Log = log
	ints := func(flag, text string) ([]int, error) {
		var out []int
		for _, f := range strings.Split(text, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("--%s: %q is not a positive number", flag, f)
			}
			out = append(out, n)
		}
		return out, nil
	}
	var err error
	if cfg.Tenants, err = ints("tenants", *tenants); err != nil {
		return fail("bench scale", err)
	}
	if cfg.Workers, err = ints("workers", *workers); err != nil {
		return fail("bench scale", err)
	}
	for _, f := range strings.Split(*payloads, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		var n int64
		if err := (byteSize{&n}).Set(f); err != nil || n < 1 {
			return fail("bench scale", fmt.Errorf("--payloads: %q is not a size such as 100KB", f))
		}
		cfg.Payloads = append(cfg.Payloads, n)
	}
	_, ttyErr := unix.IoctlGetTermios(int(os.Stderr.Fd()), unix.TCGETS)
	progress := func(string) bench.Config { return bench.Config{Progress: os.Stderr, Terminal: ttyErr == nil} }
	res, err := bench.Scale(ctx, cfg, progress)
	if res != nil {
		res.Date, res.Machine = time.Now().UTC().Format("2006-01-02 15:04 UTC"), bench.Machine()
		res.Command = "faas bench scale " + strings.Join(args, " ")
		if b, gerr := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); gerr == nil {
			res.Commit = strings.TrimSpace(string(b))
		}
		if werr := bench.WriteScaleReport(*out, res); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return fail("bench scale", err)
	}
	fmt.Printf("report written to %s/scale.md\n", *out)
	return 0
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
