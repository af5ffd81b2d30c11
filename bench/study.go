package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// StudyConfig is the weak-scaling study: every mode at every size, with a
// fixed number of tasks per sandbox.
type StudyConfig struct {
	Faas       string   // the faas binary (default: this one, /proc/self/exe)
	Redis      string   // redis-server binary
	Sizes      []int    // total sandboxes
	Modes      []string // local, push, pull
	Kinds      []Kind
	PerSandbox int // tasks per sandbox (at least 200 in the report)
	Dir        string
	Env        []string // added to the environment of the faas processes
	Log        *slog.Logger
}

func (cfg StudyConfig) withDefaults() StudyConfig {
	if cfg.Faas == "" {
		cfg.Faas = "/proc/self/exe"
	}
	if cfg.Redis == "" {
		cfg.Redis = "redis-server"
	}
	return cfg
}

// Row is one measured point of the study.
type Row struct {
	Mode      string  `json:"mode"`
	Sandboxes int     `json:"sandboxes"`
	Report    *Report `json:"report"`
	// Resident memory before any task ran, and the peak during this run.
	RSSRest RSS `json:"rss_at_rest"`
	RSSLoad RSS `json:"rss_under_load"`
	// CPU is the processor time each part spent per task during the run,
	// in microseconds: where the time of a task goes.
	CPU CPU `json:"cpu_us_per_task"`
	// RedisCommands is the number of commands Redis ran per task (INFO
	// commandstats: script calls and the commands inside them alike), and
	// RedisByCommand the same by command.
	RedisCommands  float64            `json:"redis_commands_per_task"`
	RedisByCommand map[string]float64 `json:"redis_commands_by_name,omitempty"`
	// Round numbers the repeated headline measurements (0 elsewhere).
	Round int `json:"round,omitempty"`
}

// CPU is processor time per task in microseconds, by process.
type CPU struct {
	Client     float64 `json:"client"` // the load generator (this process)
	API        float64 `json:"api"`
	Redis      float64 `json:"redis"`
	Dispatcher float64 `json:"dispatcher"`
	Worker     float64 `json:"worker"`
	Sandboxes  float64 `json:"sandboxes"` // all sandbox processes together
}

func (c CPU) Total() float64 {
	return c.Client + c.API + c.Redis + c.Dispatcher + c.Worker + c.Sandboxes
}

// RSS is the resident memory of a deployment's processes, in MiB.
type RSS struct {
	API        float64 `json:"api_mib"`
	Dispatcher float64 `json:"dispatcher_mib"`
	Worker     float64 `json:"worker_mib"`  // push/pull worker process (0 in local mode)
	Sandbox    float64 `json:"sandbox_mib"` // mean per sandbox process
}

func (r RSS) max(o RSS) RSS {
	return RSS{max(r.API, o.API), max(r.Dispatcher, o.Dispatcher), max(r.Worker, o.Worker), max(r.Sandbox, o.Sandbox)}
}

// warmups overrides the warm-up tasks of a kind (large payloads).
var warmups = map[string]int{}

// minTasks is the least number of tasks a study point of a kind runs.
var minTasks = map[string]int{"noop": 4000, "fib20": 800}

// Study runs the weak-scaling matrix. Each (mode, size) gets a fresh
// redis-server, API, dispatcher and workers, started and stopped here.
func Study(ctx context.Context, cfg StudyConfig, progress func(kind string) Config) ([]Row, error) {
	cfg = cfg.withDefaults()
	var rows []Row
	for _, mode := range cfg.Modes {
		for _, n := range cfg.Sizes {
			d, err := startDeployment(ctx, cfg, mode, n)
			if err != nil {
				return rows, err
			}
			rest := d.rss()
			for _, k := range cfg.Kinds {
				row, err := measure(ctx, cfg, d, mode, n, k, progress(k.Name))
				if err != nil {
					d.stop()
					return rows, err
				}
				row.RSSRest = rest
				rows = append(rows, row)
			}
			d.stop()
		}
	}
	return rows, nil
}

// measure runs one kind of task on a deployment of mode with n sandboxes,
// closed loop, and accounts for the processor time of each process.
func measure(ctx context.Context, cfg StudyConfig, d *deployment, mode string, n int, k Kind, rc Config) (Row, error) {
	rc.URL, rc.Kind = d.url, k
	// Short kinds get more tasks than PerSandbox asks, so that a point
	// lasts long enough to measure a steady state.
	rc.Tasks, rc.Warmup = max(cfg.PerSandbox*n, minTasks[k.Name]), max(5*n, 50)
	if w, ok := warmups[k.Name]; ok {
		rc.Warmup = w
	}
	rc.Concurrency = 2 * n // enough in flight to keep every sandbox busy
	cfg.Log.Info("study", "mode", mode, "sandboxes", n, "kind", k.Name, "tasks", rc.Tasks)
	stopSampling, peak := d.sampleRSS()
	cmds0, cerr := redisCommands(ctx, d.rdb)
	cpu0, self0 := d.cpuSeconds(), selfCPUSeconds()
	rep, err := Run(ctx, rc)
	cpu1, self1 := d.cpuSeconds(), selfCPUSeconds()
	stopSampling()
	if err != nil {
		return Row{}, fmt.Errorf("bench: %s with %d sandboxes, %s: %w", mode, n, k.Name, err)
	}
	cmds1, err := redisCommands(ctx, d.rdb)
	if err = errors.Join(cerr, err); err != nil {
		return Row{}, err
	}
	redisTotal, redisBy := commandsPerTask(cmds0, cmds1, rc.Tasks+rc.Warmup)
	per := func(k string) float64 { return (cpu1[k] - cpu0[k]) * 1e6 / float64(rc.Tasks+rc.Warmup) }
	cpu := CPU{Client: (self1 - self0) * 1e6 / float64(rc.Tasks+rc.Warmup), API: per("api"), Redis: per("redis"),
		Dispatcher: per("dispatcher"), Worker: per("worker"), Sandboxes: per("sandboxes")}
	return Row{Mode: mode, Sandboxes: n, Report: rep, RSSLoad: *peak, CPU: cpu,
		RedisCommands: redisTotal, RedisByCommand: redisBy}, nil
}

// Headline measures the no-op point with 2 sandboxes of every mode in
// rounds, the modes one after the other in each round: how fast this
// machine is drifts by tens of percent over minutes (it is a shared VM), so
// the headline figures are medians over rounds, and the modes are compared
// round by round, under the same conditions.
func Headline(ctx context.Context, cfg StudyConfig, rounds int, progress func(kind string) Config) ([]Row, error) {
	cfg = cfg.withDefaults()
	noop, _ := KindByName("noop")
	var rows []Row
	for r := 1; r <= rounds; r++ {
		for _, mode := range cfg.Modes {
			d, err := startDeployment(ctx, cfg, mode, 2)
			if err != nil {
				return rows, err
			}
			row, err := measure(ctx, cfg, d, mode, 2, noop, progress("noop"))
			d.stop()
			if err != nil {
				return rows, err
			}
			row.Round = r
			rows = append(rows, row)
		}
	}
	return rows, nil
}

type deployment struct {
	url        string
	redisURL   string
	workerPort int
	rdb        redis.UniversalClient // to the deployment's redis-server, for its statistics
	procs      map[string]*exec.Cmd
	order      []string
	dir        string
	cfg        StudyConfig
	token      string // an API token, when the API has them (for /metrics)
}

// workers are the deployment's push or pull worker processes.
func (d *deployment) workers() []*exec.Cmd {
	var out []*exec.Cmd
	for _, name := range d.order {
		if name == "worker" || strings.HasPrefix(name, "worker-") {
			out = append(out, d.procs[name])
		}
	}
	return out
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startDeployment(ctx context.Context, cfg StudyConfig, mode string, n int) (*deployment, error) {
	return startSpec(ctx, cfg, spec{mode: mode, sandboxes: n, workers: 1})
}

// spec is the shape of a deployment: the dispatcher's mode, sandboxes per
// worker (local mode: the dispatcher's), the number of push or pull worker
// processes, extra flags for the API and the dispatcher, and whether to
// leave the dispatcher (and workers) out until startRunners.
type spec struct {
	mode         string
	sandboxes    int
	workers      int
	apiArgs      []string
	dispArgs     []string
	runnersLater bool
}

func startSpec(ctx context.Context, cfg StudyConfig, sp spec) (*deployment, error) {
	dir, err := os.MkdirTemp("", "faas-study-")
	if err != nil {
		return nil, err
	}
	d := &deployment{procs: map[string]*exec.Cmd{}, dir: dir, cfg: cfg}
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	d.redisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", ports[0])
	d.rdb = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0])})
	d.url = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	d.workerPort = ports[2]
	fail := func(err error) (*deployment, error) {
		d.stop()
		return nil, err
	}
	if err := d.start("redis", cfg.Redis, "--port", strconv.Itoa(ports[0]), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir); err != nil {
		return fail(err)
	}
	if err := waitTCP(ctx, ports[0]); err != nil {
		return fail(err)
	}
	common := []string{"--redis", d.redisURL, "--log-level", "warn"}
	apiArgs := append([]string{"api", "--addr", fmt.Sprintf("127.0.0.1:%d", ports[1])}, common...)
	if err := d.start("api", cfg.Faas, append(apiArgs, sp.apiArgs...)...); err != nil {
		return fail(err)
	}
	if err := waitHealthy(ctx, d.url); err != nil {
		return fail(err)
	}
	if !sp.runnersLater {
		if err := d.startRunners(ctx, sp); err != nil {
			return fail(err)
		}
	}
	return d, nil
}

// startRunners starts the dispatcher of sp (and its workers) and waits for
// every sandbox.
func (d *deployment) startRunners(ctx context.Context, sp spec) error {
	cfg := d.cfg
	common := []string{"--redis", d.redisURL, "--log-level", "warn"}
	workerURL := fmt.Sprintf("tcp://127.0.0.1:%d", d.workerPort)
	var err error
	switch sp.mode {
	case "local":
		err = d.start("dispatcher", cfg.Faas, append(append([]string{"dispatcher", "-m", "local", "-w", strconv.Itoa(sp.sandboxes)}, common...), sp.dispArgs...)...)
	case "push", "pull":
		err = d.start("dispatcher", cfg.Faas, append(append([]string{"dispatcher", "-m", sp.mode, "-p", strconv.Itoa(d.workerPort), "--bind", "127.0.0.1"}, common...), sp.dispArgs...)...)
		for i := 0; i < max(sp.workers, 1) && err == nil; i++ {
			name := "worker"
			if i > 0 {
				name = fmt.Sprintf("worker-%d", i+1)
			}
			err = d.start(name, cfg.Faas, sp.mode+"-worker", "--log-level", "warn", strconv.Itoa(sp.sandboxes), workerURL)
		}
	default:
		err = fmt.Errorf("bench: unknown mode %q", sp.mode)
	}
	if err != nil {
		return err
	}
	return waitSandboxes(ctx, d.url, d.token, sp.sandboxes*max(sp.workers, 1))
}

// start starts one process of the deployment, its output in the
// deployment's directory.
func (d *deployment) start(name, bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	if bin == d.cfg.Faas {
		cmd.Args[0] = "faas"
		cmd.Env = append(os.Environ(), d.cfg.Env...)
	}
	logf, err := os.Create(filepath.Join(d.dir, name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("bench: start %s: %w", name, err)
	}
	d.procs[name] = cmd
	d.order = append(d.order, name)
	return nil
}

// waitSandboxes waits until the cluster reports n sandboxes up (from
// /metrics), so that memory "at rest" is measured with every sandbox
// process started.
func waitSandboxes(ctx context.Context, url, token string, n int) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if ready, err := sandboxesReady(url, token); err == nil && ready >= n {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("bench: %d sandboxes did not come up", n)
}

func sandboxesReady(url, token string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	ready := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "faas_sandboxes_ready{") {
			if f := strings.Fields(line); len(f) == 2 {
				v, _ := strconv.ParseFloat(f[1], 64)
				ready += v
			}
		}
	}
	return int(ready), nil
}

func waitTCP(ctx context.Context, port int) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("bench: nothing listens on port %d", port)
}

func waitHealthy(ctx context.Context, url string) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("bench: the API did not become healthy")
}

// rss reads the resident memory of the deployment's processes.
func (d *deployment) rss() RSS {
	var r RSS
	if c := d.procs["api"]; c != nil {
		r.API = rssMiB(c.Process.Pid)
	}
	if c := d.procs["dispatcher"]; c != nil {
		r.Dispatcher = rssMiB(c.Process.Pid)
	}
	var sum float64
	var kids int
	for _, host := range d.sandboxHosts() {
		for _, pid := range childPids(host.Process.Pid) {
			sum += rssMiB(pid)
			kids++
		}
	}
	if kids > 0 {
		r.Sandbox = sum / float64(kids)
	}
	if ws := d.workers(); len(ws) > 0 {
		for _, w := range ws {
			r.Worker += rssMiB(w.Process.Pid)
		}
		r.Worker /= float64(len(ws))
	}
	return r
}

// sandboxHosts are the processes whose children are sandboxes: the
// workers, or in local mode the dispatcher.
func (d *deployment) sandboxHosts() []*exec.Cmd {
	if ws := d.workers(); len(ws) > 0 {
		return ws
	}
	if c := d.procs["dispatcher"]; c != nil {
		return []*exec.Cmd{c}
	}
	return nil
}

// cpuSeconds reads the user+system CPU time of each part of the deployment
// (a sandbox process that was replaced meanwhile is not counted).
func (d *deployment) cpuSeconds() map[string]float64 {
	out := map[string]float64{}
	for _, name := range []string{"api", "redis", "dispatcher"} {
		if c := d.procs[name]; c != nil {
			out[name] = procCPU(c.Process.Pid)
		}
	}
	for _, w := range d.workers() {
		out["worker"] += procCPU(w.Process.Pid)
	}
	for _, host := range d.sandboxHosts() {
		for _, pid := range childPids(host.Process.Pid) {
			out["sandboxes"] += procCPU(pid)
		}
	}
	return out
}

// procCPU is a process's user+system time in seconds (/proc/pid/stat).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from after it.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// sampleRSS records the peak memory every 250 ms until stopped.
func (d *deployment) sampleRSS() (stop func(), peak *RSS) {
	peak = new(RSS)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			*peak = peak.max(d.rss())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); <-finished }, peak
}

func rssMiB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

// childPids lists the children of pid, whichever of its threads started them.
func childPids(pid int) []int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func (d *deployment) stop() {
	if d.rdb != nil {
		d.rdb.Close()
	}
	for i := len(d.order) - 1; i >= 0; i-- {
		c := d.procs[d.order[i]]
		syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	os.RemoveAll(d.dir)
}

// WriteJSON saves v as indented JSON.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// LightLoad measures latency at a low, steady rate: local mode, 2
// sandboxes, open loop.
func LightLoad(ctx context.Context, cfg StudyConfig, rate float64, tasks int, progress Config) (*Report, error) {
	d, err := startDeployment(ctx, cfg.withDefaults(), "local", 2)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	progress.URL, progress.Kind = d.url, Kinds()[0]
	progress.Tasks, progress.Warmup, progress.Rate = tasks, 20, rate
	return Run(ctx, progress)
}
