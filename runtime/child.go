package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wasmfaas/wasmfaas/bundle"
	"github.com/wasmfaas/wasmfaas/faastype"
)

// Environment of a sandbox process. The pool starts its own executable with
// these set; RunChildIfRequested (called first thing by `faas` and by test
// binaries) turns that process into a sandbox.
const (
	envChild       = "FAAS_SANDBOX_CHILD"
	envChildConfig = "FAAS_SANDBOX_CONFIG"
	// exitTimedOut is how a child that reported a timeout ends itself.
	exitTimedOut = 3
	// EnvCPUProfileDir, when set, is passed on to sandbox processes so that
	// they, like the faas process that started them, write a CPU profile.
	EnvCPUProfileDir = "FAAS_CPUPROFILE_DIR"
)

// childGODEBUG is a sandbox process's GODEBUG: no memory profiling
// (nothing reads it), whose hash table (1.4 MB, made at the first sampled
// allocation) is touched page by page.
const childGODEBUG = "GODEBUG=memprofilerate=0"

// childConfig is passed from the pool to each sandbox process.
type childConfig struct {
	ImageDir string          `json:"image_dir"`
	CacheDir string          `json:"cache_dir"`
	Limits   faastype.Limits `json:"limits"`
	// BundleCache is PoolConfig.BundleCache.
	BundleCache int64 `json:"bundle_cache"`
	// Walls is PoolConfig.Walls.
	Walls Walls `json:"walls"`
}

// RunChildIfRequested runs the sandbox loop and exits when this process was
// started as a sandbox by a Pool; otherwise it returns at once.
func RunChildIfRequested() {
	if ChildRequested() {
		os.Exit(RunChild(nil))
	}
}

// ChildRequested says this process was started as a sandbox by a Pool.
func ChildRequested() bool { return os.Getenv(envChild) == "1" }

// RunChild is the sandbox loop of a process a Pool started; it returns the
// exit code. The process ignores SIGINT and SIGTERM: a Ctrl-C reaches the
// whole process group, and the pool that owns the sandbox decides when it
// ends (closing its stdin, or killing it), so running tasks can drain.
// ready, if not nil, is called once the sandbox is up, before its walls go
// up (lockDown) and its first task.
func RunChild(ready func()) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	return serveChild(os.Getenv(envChildConfig), os.Stdin, os.Stdout, ready)
}

// ChildMain is the body of `faas sandbox`: it serves run frames on in and
// answers on out until in closes. It returns the process exit code.
func ChildMain(config string, in io.Reader, out io.Writer) int {
	return serveChild(config, in, out, nil)
}

func serveChild(config string, in io.Reader, out io.Writer, ready func()) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pid", os.Getpid())
	var cfg childConfig
	if config != "" {
		if err := json.Unmarshal([]byte(config), &cfg); err != nil {
			log.Error("sandbox: bad config", "err", err)
			return 2
		}
	}
	ctx := context.Background()
	t0 := time.Now()
	eng, err := NewEngine(ctx, EngineConfig{ImageDir: cfg.ImageDir, CacheDir: cfg.CacheDir, Limits: cfg.Limits})
	if err != nil {
		log.Error("sandbox: start", "err", err)
		return 2
	}
	if err := eng.BootInfo.KeptBodies; err != nil {
		log.Warn("sandbox: the guest's function bodies stay in memory", "err", err)
	}
	if cfg.BundleCache <= 0 {
		cfg.BundleCache = DefaultBundleCache
	}
	c := &child{eng: eng, w: bufio.NewWriterSize(out, 64<<10), log: log, bundles: bundle.NewCache[openBundle](cfg.BundleCache)}
	if err := c.prepare(ctx); err != nil {
		log.Error("sandbox: first instance", "err", err)
		return 2
	}
	// What compiling (or loading the compiled code) and restoring left
	// behind goes back to the system now, not at the GC's leisure: an idle
	// sandbox's memory is what bounds how many a host runs.
	if _, err := shareCode(eng.cacheDir); err != nil {
		log.Warn("sandbox: the compiled guest code stays private to this process", "err", err)
	}
	debug.FreeOSMemory()
	if ready != nil {
		ready() // before the walls: it may open files (the CPU profile)
	}
	walls, err := lockDown(lockConfig{mode: cfg.Walls, libDir: eng.libDir, memoryBytes: eng.limits.MemoryBytes,
		keepFiles: os.Getenv(EnvCPUProfileDir) != "", trap: os.Getenv(envSeccompTrap) == "1"})
	if err != nil {
		log.Error("sandbox: lock down", "err", err)
		return 2
	}
	readyFrame := encodeReady(time.Since(t0).Seconds(), eng.BootInfo.SnapshotCreated, eng.BootInfo.SnapshotBytes, walls.String())
	if err := c.send(readyFrame); err != nil {
		return 1
	}
	r := bufio.NewReaderSize(in, 64<<10)
	limits := eng.Limits()
	maxFrame := 2*limits.ArgBytes + maxBundleFrame + (1 << 20)
	// A sandbox that has been idle for idleRelease since its last task
	// returns that task's (and the ones before its) garbage: the GC runs
	// only when the heap grows, so without this an idle sandbox keeps what
	// its last tasks left, up to the heap goal (twice the live heap). The
	// timer is re-armed after every task; a task that arrives meanwhile
	// stops it. Its first run returns what the walls left.
	idle := time.AfterFunc(idleRelease, debug.FreeOSMemory)
	for {
		body, err := readFrame(r, maxFrame)
		idle.Stop()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Error("sandbox: read", "err", err)
				return 1
			}
			return 0
		}
		if body[0] == frameProbe && os.Getenv(envProbes) == "1" {
			if err := c.send(append([]byte{frameProbe}, attempt(string(body[1:]))...)); err != nil {
				return 1
			}
			continue
		}
		req, err := decodeRun(body)
		if err != nil {
			log.Error("sandbox: bad frame", "err", err)
			return 1
		}
		res := c.handle(ctx, req)
		if res == nil {
			select {} // the watchdog has answered and is ending the process
		}
		if err := c.send(encodeResult(res)); err != nil {
			return 1
		}
		if err := c.prepare(ctx); err != nil {
			log.Error("sandbox: restore", "err", err)
			return 1
		}
		idle.Reset(idleRelease)
	}
}

// idleRelease is how long a sandbox waits for its next task before it
// gives its garbage back to the system (see serveChild).
const idleRelease = time.Second

type child struct {
	eng *Engine
	log *slog.Logger
	cur *instance // the instance the next task runs on, if any
	// used says cur has run a task (of function cur.function).
	used bool
	// bundles are the bundles this process has opened, by hash, weighed
	// by bundle.Weight; one that failed to open is kept with its error.
	// The pool mirrors its keys.
	bundles *bundle.Cache[openBundle]

	mu       sync.Mutex // guards w and answered
	w        *bufio.Writer
	answered bool
}

func (c *child) send(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return writeFrame(c.w, b)
}

// prepare makes sure a usable instance is waiting, so restore time stays
// off the next task's path when possible: a warm instance stays as it is;
// one a fresh task ran on is reset to what that task started from (the
// next task is most likely another of the same function).
func (c *child) prepare(ctx context.Context) error {
	if c.cur != nil && !c.cur.dead && !c.cur.spent {
		return nil
	}
	var target *funcImage
	if c.cur != nil {
		target = c.cur.target
	}
	return c.start(ctx, target)
}

// start makes c.cur a pristine instance of the snapshot with img over it
// (nil: the snapshot alone): the current instance reset in place when it
// can be, else a new one.
func (c *child) start(ctx context.Context, img *funcImage) error {
	c.used = false
	if c.eng.resetInPlace(c.cur, img) {
		return nil
	}
	c.cur.close(ctx)
	in, err := c.eng.newInstance(ctx, img)
	if err != nil {
		c.cur = nil
		return err
	}
	c.cur = in
	return nil
}

// handle runs one task. It returns nil when the watchdog already answered.
func (c *child) handle(ctx context.Context, req *faastype.Task) *faastype.Result {
	start := time.Now()
	var boot time.Duration
	// First, whatever happens next: the pool made its cache call for this
	// task already (see mount).
	tree, fail := c.mount(req)
	if fail != nil {
		return fail
	}
	// An instance that ran a function only ever runs that function again;
	// fresh isolation wants one that never ran anything: one restored from
	// the snapshot, or from the function's image when this process keeps
	// one (funcimage.go).
	fresh := req.Isolation == faastype.Fresh
	var key string
	var img *funcImage
	known := false
	if fresh && c.eng.reuse != nil {
		if key = imageKey(req); key != "" {
			img, known = c.eng.images.get(key)
		}
	}
	cur := c.cur
	if cur == nil || cur.dead || cur.spent || cur.target != img ||
		(c.used && (fresh || !sameFunction(cur.function, req.Function))) {
		t := time.Now()
		if err := c.start(ctx, img); err != nil {
			return faastype.Failure(faastype.KindSandboxCrash, "could not start a sandbox instance: "+err.Error())
		}
		boot = time.Since(t)
	}
	in := c.cur
	in.bundle.set(tree)
	warm := c.used && in.loaded
	fromImage := fresh && in.target != nil
	var fn []byte
	if !warm && !fromImage {
		// non-nil: a new function to load (even an empty, invalid one)
		if fn = req.Fn; fn == nil {
			fn = []byte{}
		}
	}
	c.used, in.function = true, req.Function
	in.spent = fresh
	in.io.stdout.take()
	in.io.stderr.take()

	c.mu.Lock()
	c.answered = false
	c.mu.Unlock()
	timeout := req.Timeout
	watchdog := time.AfterFunc(timeout, func() { c.timedOut(in, timeout, start, boot) })

	limits := c.eng.Limits()
	memCap := limits.MemoryBytes
	if req.MemoryBytes > 0 && req.MemoryBytes < memCap {
		memCap = req.MemoryBytes
	}
	in.setMemoryCap(memCap)
	var env []byte
	if fn != nil {
		env = envJSON(req.Env)
	}
	var extra byte
	if fromImage && !in.reseed() {
		extra = guestReseed
	}
	var loadTime float64
	var rep *guestReply
	var err error
	if fresh && key != "" && !known && fn != nil {
		// The first fresh task of this function here: load it alone, keep
		// what that left as its image if it may be kept, then run.
		rep, err = in.request(ctx, guestOpLoad, 0, fn, nil, env, false, tree != nil, limits.ResultBytes, uint32(memCap>>20))
		var im *funcImage
		if err == nil && !rep.failed {
			if rep.keep {
				im = c.eng.captureImage(in, key, rep.payload)
			}
			if im != nil {
				in.target = im
			}
			loadTime = seconds(rep.deser)
			fn, env, rep = nil, nil, nil
		}
		c.eng.images.put(key, im)
	}
	if rep == nil && err == nil {
		rep, err = in.request(ctx, guestOpRun, extra, fn, req.Args, env, req.WantJSON, tree != nil, limits.ResultBytes, uint32(memCap>>20))
	}
	if !watchdog.Stop() {
		return nil
	}
	var res *faastype.Result
	switch {
	case err != nil:
		res = c.crashResult(in, err)
	case len(rep.payload) > limits.ResultBytes || len(rep.json) > limits.ResultBytes:
		// pyshim checks the cap itself; a reply over it means the function
		// tampered with pyshim. The host's check is the one that counts.
		in.dead = true
		res = faastype.Failure(faastype.KindResultTooLarge, fmt.Sprintf("the result is over the limit of %d bytes", limits.ResultBytes))
	case rep.failed:
		res = &faastype.Result{Status: faastype.Failed, Payload: rep.payload,
			Error: &faastype.TaskError{Kind: rep.kind, Message: clipText(rep.message), Traceback: clipText(rep.traceback)}}
	default:
		res = &faastype.Result{Status: faastype.Completed, Payload: rep.payload, JSON: rep.json}
	}
	if rep != nil {
		// The guest wrote these numbers; keep only what is plausible.
		res.Timings.Deserialize, res.Timings.Run, res.Timings.Serialize = loadTime+seconds(rep.deser), seconds(rep.run), seconds(rep.ser)
	}
	res.Warm = warm
	res.Timings.Boot = boot.Seconds()
	res.Timings.Total = time.Since(start).Seconds()
	c.collectOutput(in, res)
	if res.Error != nil && res.Error.Kind == faastype.KindMemoryLimit {
		// Closed (its memory reset for the next) by prepare, once the
		// result is on its way; a fresh task's instance is reset there.
		in.dead = true
	}
	return res
}

// maxBundleFrame is the room a run frame leaves for a bundle's zip: the
// API's largest canonical zip (bundle.DefaultLimits' bytes, deflate's worst
// case and the zip headers of its most files) with margin.
const maxBundleFrame = 64 << 20

// openBundle is a bundle as this process opened it.
type openBundle struct {
	tree *bundle.Tree
	err  error
}

// mount finds the task's bundle: opened from the task's data when the pool
// sent it (the pool sends it exactly when this cache lacks it), else from
// the cache. Either way it makes the same cache call, with the same
// weight, as the pool did; handle calls it before anything can fail. nil
// and no failure: the task has no bundle.
func (c *child) mount(req *faastype.Task) (*bundle.Tree, *faastype.Result) {
	if req.Bundle == "" {
		return nil, nil
	}
	var ob openBundle
	if req.BundleData != nil {
		ob.tree, ob.err = bundle.Open(req.BundleData, req.Bundle)
		if ob.err != nil {
			c.log.Error("sandbox: bundle does not open", "bundle", req.Bundle, "err", ob.err)
		}
		c.bundles.Put(req.Bundle, ob, bundle.Weight(req.BundleData))
	} else {
		var held bool
		if ob, held = c.bundles.Get(req.Bundle); !held {
			return nil, faastype.Failure(faastype.KindSandboxCrash, fmt.Sprintf(
				"the sandbox process was not sent the function's bundle %s", req.Bundle))
		}
	}
	if ob.err != nil {
		return nil, faastype.Failure(faastype.KindBadPayload, fmt.Sprintf(
			"the function's bundle %s does not open in the sandbox: %v", req.Bundle, ob.err))
	}
	return ob.tree, nil
}

func (c *child) collectOutput(in *instance, res *faastype.Result) {
	var t1, t2 bool
	res.Stdout, t1 = in.io.stdout.take()
	res.Stderr, t2 = in.io.stderr.take()
	res.OutputTruncated = t1 || t2
}

// crashResult classifies an instance that died during a call.
func (c *child) crashResult(in *instance, err error) *faastype.Result {
	if code, ok := exitCode(err); ok {
		msg := fmt.Sprintf("the function ended the interpreter with os._exit(%d)", code)
		return faastype.Failure(faastype.KindUserExit, msg)
	}
	limit := in.memCap
	if errors.Is(err, errMemory) || (in.mem != nil && uint64(in.mem.Size())+(8<<20) >= limit) {
		return faastype.Failure(faastype.KindMemoryLimit, fmt.Sprintf("the task ran out of memory (sandbox limit %d MiB)", limit>>20))
	}
	first := strings.SplitN(err.Error(), "\n", 2)[0]
	msg := "the sandbox crashed: " + first
	if strings.Contains(first, "out of bounds memory access") || strings.Contains(first, "stack overflow") {
		msg += " (usually a C stack overflow from very deep recursion)"
	}
	return faastype.Failure(faastype.KindSandboxCrash, msg)
}

// timedOut runs on the watchdog's goroutine while the guest is still
// running: it reports the timeout with the output captured so far and ends
// the process, the only way to stop a wasm guest without instrumenting it.
func (c *child) timedOut(in *instance, timeout time.Duration, start time.Time, boot time.Duration) {
	res := faastype.Failure(faastype.KindTimeout, fmt.Sprintf("task exceeded %s", formatDuration(timeout)))
	res.Timings.Boot = boot.Seconds()
	res.Timings.Total = time.Since(start).Seconds()
	c.collectOutput(in, res)
	c.mu.Lock()
	writeFrame(c.w, encodeResult(res))
	os.Exit(exitTimedOut)
}

// sameFunction says a warm instance of function a may run a task of
// function b: the same registered function; "" is a function of its own.
func sameFunction(a, b string) bool { return a != "" && a == b }

// textCap bounds the error message and traceback a task reports (pyshim
// clips them to the same size; this holds even if it was tampered with).
const textCap = 64 << 10

func clipText(s string) string {
	if len(s) <= textCap {
		return s
	}
	return strings.ToValidUTF8(s[:textCap], "") + "... [cut]"
}

// seconds is a duration the guest reported: finite and not negative.
func seconds(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return v
}

// resultFrameLimit is the largest result frame a sandbox process may send:
// a pickled result and its JSON form (each at most ResultBytes), both
// output streams, error text, and room for the rest.
func resultFrameLimit(l faastype.Limits) int {
	return 2*l.ResultBytes + 2*l.OutputBytes + 4*textCap + (1 << 20)
}

func formatDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", int(d/time.Second))
	}
	return d.String()
}

// envJSON is the guest's environment as the JSON object pyshim puts in
// os.environ: {} without variables, so that a function sees exactly its
// own.
func envJSON(env []string) []byte {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	b, _ := json.Marshal(m) // strings only: cannot fail
	return b
}
