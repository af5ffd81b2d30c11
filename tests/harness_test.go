// Package tests runs the faas binary as separate processes (dispatchers,
// push and pull workers, redis-server) and checks the distributed modes
// end to end: task distribution, worker and dispatcher crashes, stopped
// workers, Redis restarts, start-up order, graceful stops, garbage on the
// dispatcher port, and (as root) workers in their own network namespaces
// cut off from the dispatcher. It also holds the benchmark that compares
// the modes' throughput (BenchmarkModes).
package tests

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/runtime"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

var faasBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "faas-tests-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	faasBin = filepath.Join(dir, "faas")
	gotool := filepath.Join(goruntime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gotool); err != nil {
		gotool = "go"
	}
	out, err := exec.Command(gotool, "build", "-o", faasBin, "github.com/wasmfaas/wasmfaas/cmd/faas").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "tests: building faas: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needImage fails a test when the guest image has not been built or
// python3 is missing: under `make test` a missing prerequisite is an error,
// never a skip.
func needImage(t testing.TB) {
	t.Helper()
	if _, err := runtime.LoadImage(runtime.DefaultImageDir()); err != nil {
		t.Fatalf("the guest image is not built (run make image, or runtime/pybuild/build.sh): %v", err)
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Fatal("/usr/bin/python3 (with python3-dill) is needed to make payloads: run make deps-test")
	}
}

// ---- processes ----

type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startProc runs the faas binary in its own process group; the group is
// killed when the test ends, whatever happens.
func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startExe(t, name, faasBin, args...)
}

func startExe(t testing.TB, name, exe string, args ...string) *proc {
	t.Helper()
	return startExeEnv(t, name, nil, exe, args...)
}

// startExeEnv is startExe with variables (NAME=value) added to the
// environment.
func startExeEnv(t testing.TB, name string, env []string, exe string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("FAAS_TEST_DUMP") != "" && p.alive() {
			// Goroutine dump into the log, for debugging hangs.
			_ = p.cmd.Process.Signal(syscall.SIGQUIT)
			p.exited(2 * time.Second)
		}
		p.kill()
		if t.Failed() || os.Getenv("FAAS_TEST_LOGS") != "" {
			n := 40
			if os.Getenv("FAAS_TEST_DUMP") != "" {
				n = 100000
			}
			t.Logf("---- last lines of %s ----\n%s", name, tail(p.logs(), n))
		}
	})
	return p
}

// kill SIGKILLs the process group and waits for the process.
func (p *proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s did not die", p.name)
	}
}

func (p *proc) signal(sig syscall.Signal) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %s to %s: %v", sig, p.name, err)
	}
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exited waits for the process to end on its own.
func (p *proc) exited(within time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(within):
		return false
	}
}

func (p *proc) logs() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

func (p *proc) count(substr string) int { return strings.Count(p.logs(), substr) }

// waitLog waits until the process's log contains substr n times.
func (p *proc) waitLog(substr string, n int, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for p.count(substr) < n {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %q logged %d times, want %d, after %s", p.name, substr, p.count(substr), n, within)
		}
		if !p.alive() {
			p.t.Fatalf("%s exited while waiting for %q", p.name, substr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ---- redis ----

// ownRedis is a redis-server the test can stop and start again on the same
// port and data directory, persisting every write (AOF, fsync always).
type ownRedis struct {
	t    testing.TB
	port int
	dir  string
	p    *proc
	n    int
}

func startOwnRedis(t testing.TB) *ownRedis {
	t.Helper()
	if _, err := os.Stat(redistest.ServerPath); err != nil {
		t.Fatalf("%s is not installed: run make deps-test", redistest.ServerPath)
	}
	r := &ownRedis{t: t, port: freePort(t), dir: t.TempDir()}
	r.start()
	return r
}

func (r *ownRedis) start() {
	r.t.Helper()
	r.n++
	r.p = startExe(r.t, fmt.Sprintf("redis-%d", r.n), redistest.ServerPath,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "")
	rdb := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) || !r.p.alive() {
			r.t.Fatalf("redis-server did not come up:\n%s", r.p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *ownRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// ---- a cluster ----

type cluster struct {
	t    *testing.T
	mode string // push or pull
	// secret is the worker secret of the dispatcher and the workers, and
	// secretFile the file that holds it (none if empty).
	secret, secretFile string
	rdb                redis.UniversalClient
	st                 *store.Store
	redisURL           string
	port               int
	// timing, small so that tests are quick
	heartbeat, lease, timeout, grace, drain time.Duration
	// misses: heartbeats a push worker may miss before it is declared dead
	// (and, times heartbeat, how long a pull worker waits for a reply).
	// Tests that kill nothing use a generous value, so that a loaded
	// machine does not make them declare a live worker dead.
	misses int
}

func newCluster(t *testing.T, mode string) *cluster {
	t.Helper()
	needImage(t)
	rdb := redistest.Start(t)
	return newClusterOn(t, mode, rdb, "redis://"+redistest.Addrs(rdb)[0]+"/0")
}

// newClusterOn makes a cluster of mode: push or pull, with "+secret" for
// a worker secret on the dispatchers and the workers.
func newClusterOn(t *testing.T, mode string, rdb redis.UniversalClient, url string) *cluster {
	mode, secured := strings.CutSuffix(mode, "+secret")
	c := &cluster{t: t, mode: mode, rdb: rdb, st: store.New(rdb, store.Options{}), redisURL: url, port: freePort(t),
		heartbeat: 200 * time.Millisecond, lease: 2 * time.Second, timeout: 3 * time.Second, grace: time.Second,
		drain: time.Second, misses: 10}
	if secured {
		c.secret, c.secretFile = testSecret, secretFile(t, testSecret)
	}
	return c
}

// testSecret is the worker secret of the clusters that have one; never
// logged by the processes.
const testSecret = "5d41402abc4b2a76b9719d911017c592ae2b4a4fbd34f2a8c8d0e5f1a3b6c7d9"

// secretFile writes a secret to a file only this user can read.
func secretFile(t testing.TB, secret string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "worker-secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// secretArgs are the flags that give a process the cluster's secret.
func (c *cluster) secretArgs() []string {
	if c.secretFile == "" {
		return nil
	}
	return []string{"--worker-secret-file", c.secretFile}
}

func (c *cluster) url() string { return "tcp://127.0.0.1:" + strconv.Itoa(c.port) }

func (c *cluster) dispatcher(name string, extra ...string) *proc {
	c.t.Helper()
	args := []string{"dispatcher", "-m", c.mode, "-p", strconv.Itoa(c.port), "--bind", "127.0.0.1",
		"--redis", c.redisURL, "--name", name, "--lease", c.lease.String(), "--heartbeat", c.heartbeat.String(),
		"--heartbeat-misses", strconv.Itoa(c.misses), "--timeout", c.timeout.String(), "--grace", c.grace.String(),
		"--drain", c.drain.String()}
	args = append(args, c.secretArgs()...)
	p := startProc(c.t, name, append(args, extra...)...)
	c.t.Cleanup(func() { c.noSecretIn(p) })
	return p
}

// noSecretIn fails the test if a process logged the secret.
func (c *cluster) noSecretIn(p *proc) {
	if c.secret != "" && strings.Contains(p.logs(), c.secret) {
		c.t.Errorf("%s logged the worker secret", p.name)
	}
}

func (c *cluster) worker(name string, sandboxes int, extra ...string) *proc {
	c.t.Helper()
	return c.workerTo(c.url(), nil, name, sandboxes, extra...)
}

// workerTo starts a worker of the cluster that connects to url, with env
// added to its environment.
func (c *cluster) workerTo(url string, env []string, name string, sandboxes int, extra ...string) *proc {
	c.t.Helper()
	args := []string{c.mode + "-worker", strconv.Itoa(sandboxes), url, "--name", name,
		"--heartbeat", c.heartbeat.String(), "--heartbeat-misses", strconv.Itoa(c.misses), "--timeout", c.timeout.String(),
		"--drain", c.drain.String()}
	args = append(args, c.secretArgs()...)
	p := startExeEnv(c.t, name, env, faasBin, append(args, extra...)...)
	c.t.Cleanup(func() { c.noSecretIn(p) })
	return p
}

// joined is the dispatcher log line that says a worker is in.
func (c *cluster) joined() string {
	if c.mode == "push" {
		return "worker registered"
	}
	return "worker connected"
}

// ---- payloads ----

// payloads returns base64 dill pickles made by Debian's python3 as a client
// makes them: a function sq(x, secs) that sleeps secs and returns x*x, and
// the arguments ((x, secs), {}) for each x.
func payloads(t testing.TB, secs float64, xs []int) (fn string, args []string) {
	t.Helper()
	const prog = `
import base64, dill, json, sys
def sq(x, secs):
    if secs:
        import time
        time.sleep(secs)
    return x * x
secs, xs = json.load(sys.stdin)
out = [base64.b64encode(dill.dumps(sq)).decode()]
out += [base64.b64encode(dill.dumps(((x, secs), {}))).decode() for x in xs]
print(json.dumps(out))
`
	var out []string
	pyfixture.Run(t, prog, []any{secs, xs}, &out)
	return out[0], out[1:]
}

// values unpickles results with python3 (the host never unpickles).
func values(t testing.TB, results []string) []any {
	t.Helper()
	const prog = `
import base64, dill, json, sys
print(json.dumps([dill.loads(base64.b64decode(s)) for s in json.load(sys.stdin)]))
`
	var out []any
	pyfixture.Run(t, prog, results, &out)
	return out
}

func (c *cluster) enqueue(fn string, args []string) []string {
	c.t.Helper()
	ids := make([]string, len(args))
	for i, a := range args {
		ids[i] = uuid.NewString()
		if err := c.tryEnqueue(ids[i], fn, a); err != nil {
			c.t.Fatal(err)
		}
	}
	return ids
}

// tryEnqueue enqueues one task of function payload fn with argument
// payload arg under id, and returns the store's error.
func (c *cluster) tryEnqueue(id, fn, arg string) error {
	hash, err := pickle.HashBase64(fn)
	if err != nil {
		return fmt.Errorf("hash the function payload: %w", err)
	}
	return c.st.Enqueue(context.Background(), store.Task{ID: id, FunctionID: "f", FnPayload: fn, ParamPayload: arg, FnHash: hash})
}

// waitFinal polls until every task is COMPLETED or FAILED. Errors (Redis
// restarting) are retried.
func (c *cluster) waitFinal(ids []string, within time.Duration) map[string]store.Task {
	c.t.Helper()
	deadline := time.Now().Add(within)
	out := map[string]store.Task{}
	for len(out) < len(ids) {
		if time.Now().After(deadline) {
			var missing []string
			for _, id := range ids {
				if _, ok := out[id]; !ok {
					task, err := c.st.GetTask(context.Background(), id)
					missing = append(missing, fmt.Sprintf("%s %s attempts=%d worker=%s err=%v", id[:8], task.Status, task.Attempts, task.Worker, err))
				}
			}
			c.t.Fatalf("only %d of %d tasks final after %s; missing:\n%s", len(out), len(ids), within, strings.Join(missing, "\n"))
		}
		for _, id := range ids {
			if _, ok := out[id]; ok {
				continue
			}
			task, err := c.st.GetTask(context.Background(), id)
			if err == nil && task.Status.Final() {
				out[id] = task
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return out
}

// checkResults asserts every task COMPLETED with x*x.
func (c *cluster) checkResults(ids []string, xs []int, tasks map[string]store.Task) {
	c.t.Helper()
	results := make([]string, len(ids))
	for i, id := range ids {
		task := tasks[id]
		if task.Status != faastype.Completed {
			c.t.Fatalf("task %d (%s): %s %+v", i, id, task.Status, task.Error)
		}
		results[i] = task.Result
	}
	for i, v := range values(c.t, results) {
		if f, ok := v.(float64); !ok || int(f) != xs[i]*xs[i] {
			c.t.Errorf("task %d: result %v, want %d", i, v, xs[i]*xs[i])
		}
	}
}

// waitRunningOn waits until the worker named name holds a RUNNING task and
// returns the ids it holds.
func (c *cluster) waitRunningOn(name string, ids []string, within time.Duration) []string {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var on []string
		for _, id := range ids {
			task, err := c.st.GetTask(context.Background(), id)
			if err == nil && task.Status == faastype.Running && strings.HasPrefix(task.Worker, name+"/") {
				on = append(on, id)
			}
		}
		if len(on) > 0 {
			return on
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no task ran on %s within %s", name, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStartedOn waits until the dispatcher's record shows tasks running on
// worker p and p's log shows it started at least one of them. It returns
// the tasks running there and, of those, the ones p has started.
func (c *cluster) waitStartedOn(p *proc, ids []string, within time.Duration) (running, started []string) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		running = c.waitRunningOn(p.name, ids, within)
		logs := p.logs()
		started = nil
		for _, id := range running {
			if hasLine(logs, "task started", id) {
				started = append(started, id)
			}
		}
		if len(started) > 0 {
			return running, started
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s started none of the tasks running on it within %s: %v", p.name, within, running)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func seq(n int) []int {
	xs := make([]int, n)
	for i := range xs {
		xs[i] = i + 1
	}
	return xs
}

// ---- recorded results ----

// doneCounter counts the announcements of recorded outcomes on the done
// channel: the store publishes a task's id there exactly when it records
// its outcome, so a count of one per task means one recorded result.
type doneCounter struct {
	mu     sync.Mutex
	counts map[string]int
	ps     *redis.PubSub
	wg     sync.WaitGroup
}

func countDone(t testing.TB, rdb redis.UniversalClient) *doneCounter {
	t.Helper()
	d := &doneCounter{counts: map[string]int{}, ps: rdb.Subscribe(context.Background(), store.DefaultPrefix+"done")}
	if _, err := d.ps.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	ch := d.ps.Channel(redis.WithChannelSize(100000))
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		for m := range ch {
			// The id, then (for a small result) a newline and the task.
			id, _, _ := strings.Cut(m.Payload, "\n")
			d.mu.Lock()
			d.counts[id]++
			d.mu.Unlock()
		}
	}()
	t.Cleanup(d.close)
	return d
}

func (d *doneCounter) close() {
	d.ps.Close()
	d.wg.Wait()
}

// check asserts exactly one recorded result per task (after a moment for
// late announcements).
func (d *doneCounter) check(t testing.TB, ids []string) {
	t.Helper()
	time.Sleep(300 * time.Millisecond)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		if n := d.counts[id]; n != 1 {
			t.Errorf("task %s: %d recorded results, want 1", id, n)
		}
	}
}

// hasLine reports whether one line of logs contains every substring.
func hasLine(logs string, substrs ...string) bool {
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
next:
	for sc.Scan() {
		for _, s := range substrs {
			if !strings.Contains(sc.Text(), s) {
				continue next
			}
		}
		return true
	}
	return false
}

func newRedisClient(t testing.TB, addr string) redis.UniversalClient {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}
