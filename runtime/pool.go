package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wasmfaas/wasmfaas/bundle"
	"github.com/wasmfaas/wasmfaas/faastype"
)

// PoolConfig configures a pool of sandbox processes.
type PoolConfig struct {
	Size     int             // number of sandboxes (processes); at least 1
	Limits   faastype.Limits // zero fields take DefaultLimits
	ImageDir string          // "" means DefaultImageDir()
	CacheDir string          // "" means CacheDir()
	Logger   *slog.Logger
	// Executable is started as the sandbox process; "" means this program
	// (which must call RunChildIfRequested first thing in main or TestMain),
	// the running image of it, not whatever is at its path now.
	Executable string
	// Isolation Fresh makes every task on this pool get a pristine
	// interpreter, whatever its function asked for; Warm (or "") lets each
	// function's own setting decide.
	Isolation faastype.Isolation
	// Walls says how each sandbox process locks itself down before its
	// first task ("" is WallsBestEffort); see lockDown.
	Walls Walls
	// BundleCache bounds the bytes of bundles (faastype.Task.Bundle) each
	// sandbox process keeps open, unpacked (bundle.Weight), so that tasks of a function with a
	// bundle mount it without receiving or unpacking it again. Default
	// 64 MiB.
	BundleCache int64
	// StartTimeout bounds how long a sandbox may take to come up. The very
	// first start on a machine compiles the guest and boots the snapshot,
	// which takes seconds. Default 2 minutes.
	StartTimeout time.Duration
}

// DefaultBundleCache is PoolConfig.BundleCache's default.
const DefaultBundleCache = 64 << 20

// ErrPoolClosed is returned by Run after Close.
var ErrPoolClosed = errors.New("runtime: pool closed")

// Pool runs tasks on a fixed number of sandbox processes. It is safe for
// concurrent use; Run blocks while every sandbox is busy.
type Pool struct {
	cfg   PoolConfig
	log   *slog.Logger
	env   []string
	exe   string
	grace time.Duration

	mu      sync.Mutex
	slots   []*slot
	waiters []*waiter
	closed  bool
	done    chan struct{}
	wg      sync.WaitGroup

	tasks, warm, cold, timeouts, crashes, restarts atomic.Uint64
	walls                                          atomic.Pointer[string] // the latest sandbox's report
}

type waiter struct {
	function string
	ch       chan *slot
}

type slot struct {
	id       int
	cmd      *exec.Cmd
	stdin    io.Closer
	w        *bufio.Writer
	frames   chan []byte   // frames read from the child
	exited   chan struct{} // closed when the child process is gone
	ready    bool
	busy     bool
	hasFn    bool
	function string // what the instance holds, when hasFn
	lastUsed time.Time
	// bundles mirrors the child's cache of open bundles: the same calls on
	// caches of the same bound leave the same keys (bundle.Cache), so the
	// pool knows which bundles the process has without asking.
	bundles *bundle.Cache[struct{}]
}

// NewPool starts cfg.Size sandbox processes and returns when all are ready.
// The first one starts alone, so it alone creates the compilation cache and
// the snapshot when a machine has neither.
func NewPool(ctx context.Context, cfg PoolConfig) (*Pool, error) {
	if cfg.Size < 1 {
		return nil, fmt.Errorf("runtime: pool size must be at least 1, not %d", cfg.Size)
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	if cfg.BundleCache <= 0 {
		cfg.BundleCache = DefaultBundleCache
	}
	if cfg.ImageDir == "" {
		cfg.ImageDir = DefaultImageDir()
	}
	img, err := LoadImage(cfg.ImageDir)
	if err != nil {
		return nil, err
	}
	exe := cfg.Executable
	if exe == "" {
		// /proc/self/exe is the very binary this process runs, even after
		// the file on disk is replaced by a rebuild or an upgrade: sandbox
		// processes must speak the same frame format as their pool.
		exe = "/proc/self/exe"
		if _, err := os.Stat(exe); err != nil {
			if exe, err = os.Executable(); err != nil {
				return nil, fmt.Errorf("runtime: find own executable: %w", err)
			}
		}
	}
	if cfg.CacheDir == "" {
		// Resolved here: sandbox processes get no HOME, and would fall back
		// to /tmp/wasmfaas (their own compiled code and snapshot there).
		cfg.CacheDir = CacheDir()
	}
	conf, _ := json.Marshal(childConfig{ImageDir: cfg.ImageDir, CacheDir: cfg.CacheDir, Limits: cfg.Limits,
		BundleCache: cfg.BundleCache, Walls: cfg.Walls})
	p := &Pool{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "sandbox-pool"),
		exe:   exe,
		env:   []string{envChild + "=1", envChildConfig + "=" + string(conf), childGODEBUG},
		grace: 2 * time.Second,
		done:  make(chan struct{}),
	}
	if dir := os.Getenv(EnvCPUProfileDir); dir != "" {
		p.env = append(p.env, EnvCPUProfileDir+"="+dir)
	}
	for _, name := range []string{envSeccompTrap, envProbes} {
		if os.Getenv(name) == "1" {
			p.env = append(p.env, name+"=1")
		}
	}
	for i := 0; i < cfg.Size; i++ {
		p.slots = append(p.slots, &slot{id: i})
	}
	rest := p.slots
	if _, err := os.Stat(snapshotPath(cfg.CacheDir, img)); err != nil {
		if err := p.start(ctx, p.slots[0]); err != nil {
			p.Close()
			return nil, err
		}
		rest = p.slots[1:]
	}
	errs := make(chan error, len(rest))
	for _, s := range rest {
		go func(s *slot) { errs <- p.start(ctx, s) }(s)
	}
	for range rest {
		if err := <-errs; err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// Size is the number of sandboxes.
func (p *Pool) Size() int { return len(p.slots) }

// Limits are the limits every task in this pool runs under.
func (p *Pool) Limits() faastype.Limits { return p.cfg.Limits }

// Isolation is the pool's isolation floor (Fresh forces it on every task).
func (p *Pool) Isolation() faastype.Isolation {
	if p.cfg.Isolation == "" {
		return faastype.Warm
	}
	return p.cfg.Isolation
}

// start launches the child process for s and waits for its ready frame.
func (p *Pool) start(ctx context.Context, s *slot) error {
	cmd := exec.Command(p.exe)
	cmd.Args = []string{"faas", "sandbox"} // what ps shows
	cmd.Env = p.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("runtime: start sandbox process: %w", err)
	}
	frames := make(chan []byte, 1)
	exited := make(chan struct{})
	maxFrame := resultFrameLimit(p.cfg.Limits)
	var logTail tailBuffer
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logTail.add(sc.Text())
			p.log.Warn("sandbox process says", "slot", s.id, "pid", cmd.Process.Pid, "line", sc.Text())
		}
	}()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		r := bufio.NewReaderSize(stdout, 64<<10)
		for {
			b, err := readFrame(r, maxFrame)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) {
					p.log.Error("sandbox: bad frame; killing the process", "slot", s.id, "err", err)
					cmd.Process.Kill()
				}
				break
			}
			frames <- b
		}
		cmd.Wait()
		if bySeccomp(cmd) {
			p.log.Error("sandbox process killed by its seccomp filter: a system call outside the allow-list "+
				"(run the pool with "+envSeccompTrap+"=1 to have it named)", "slot", s.id, "pid", cmd.Process.Pid)
		}
		close(exited)
	}()

	timer := time.NewTimer(p.cfg.StartTimeout)
	defer timer.Stop()
	var body []byte
	select {
	case body = <-frames:
	case <-exited:
		return fmt.Errorf("runtime: sandbox process exited while starting: %s", logTail.String())
	case <-timer.C:
		cmd.Process.Kill()
		return fmt.Errorf("runtime: sandbox process not ready after %s", p.cfg.StartTimeout)
	case <-ctx.Done():
		cmd.Process.Kill()
		return ctx.Err()
	}
	bootSecs, created, walls, err := decodeReady(body)
	if err != nil {
		cmd.Process.Kill()
		return fmt.Errorf("runtime: sandbox process sent no ready frame: %w", err)
	}
	p.log.Debug("sandbox ready", "slot", s.id, "pid", cmd.Process.Pid, "boot", bootSecs, "snapshot_created", created, "walls", walls)
	if old := p.walls.Swap(&walls); old == nil || *old != walls {
		p.log.Info("sandbox walls", "walls", walls)
	}

	p.mu.Lock()
	s.cmd, s.stdin, s.w, s.frames, s.exited = cmd, stdin, bufio.NewWriterSize(stdin, 64<<10), frames, exited
	s.bundles = bundle.NewCache[struct{}](p.cfg.BundleCache)
	s.ready, s.busy, s.hasFn = true, true, false
	closed := p.closed
	p.mu.Unlock()
	if closed {
		cmd.Process.Kill()
		return ErrPoolClosed
	}
	p.release(s)
	return nil
}

// Run executes one task on a sandbox. The error is non-nil only when the
// task could not be run at all (ctx ended while it waited, pool closed);
// everything that happens to the task itself is in the Result.
func (p *Pool) Run(ctx context.Context, t faastype.Task) (*faastype.Result, error) {
	lim := p.cfg.Limits
	if t.Bundle != "" && len(t.BundleData) == 0 {
		return nil, fmt.Errorf("runtime: task %s names bundle %s without its data", t.ID, t.Bundle)
	}
	if len(t.Fn) > lim.ArgBytes || len(t.Args) > lim.ArgBytes {
		return faastype.Failure(faastype.KindPayloadTooLarge, fmt.Sprintf(
			"function (%d bytes) or arguments (%d bytes) exceed the %d byte limit",
			len(t.Fn), len(t.Args), lim.ArgBytes)), nil
	}
	if p.cfg.Isolation == faastype.Fresh {
		t.Isolation = faastype.Fresh
	}
	timeout := lim.Timeout
	if t.Timeout > 0 && t.Timeout < timeout {
		timeout = t.Timeout
	}
	queued := time.Now()
	s, err := p.acquire(ctx, t.Function)
	if err != nil {
		return nil, err
	}
	queue := time.Since(queued)
	p.tasks.Add(1)
	t.Timeout = timeout
	res, healthy := p.exchange(ctx, s, &t, timeout)
	res.Timings.Queue = queue.Seconds()
	if res.Error != nil {
		switch res.Error.Kind {
		case faastype.KindTimeout:
			p.timeouts.Add(1)
		case faastype.KindSandboxCrash:
			p.crashes.Add(1)
		}
	}
	if res.Warm {
		p.warm.Add(1)
	} else {
		p.cold.Add(1)
	}
	if !healthy {
		p.replace(s)
		return res, nil
	}
	p.mu.Lock()
	// The child keeps the instance for warm reuse unless the task asked for
	// a fresh one or it failed in a way that discards the instance.
	s.hasFn = t.Isolation != faastype.Fresh && (res.Error == nil || res.Error.Kind == faastype.KindUserException || res.Error.Kind == faastype.KindUserExit)
	s.function = t.Function
	s.lastUsed = time.Now()
	p.mu.Unlock()
	p.release(s)
	return res, nil
}

// exchange sends the task to the slot's process and waits for its answer.
// healthy is false when the process is gone or had to be killed.
func (p *Pool) exchange(ctx context.Context, s *slot, req *faastype.Task, timeout time.Duration) (*faastype.Result, bool) {
	if req.Bundle != "" {
		// The child does the same Get or Put on its own cache (child.mount).
		if _, held := s.bundles.Get(req.Bundle); held {
			req.BundleData = nil
		} else {
			s.bundles.Put(req.Bundle, struct{}{}, bundle.Weight(req.BundleData))
		}
	}
	if err := writeFrame(s.w, encodeRun(req)); err != nil {
		s.cmd.Process.Kill()
		return faastype.Failure(faastype.KindSandboxCrash, "the sandbox process is gone: "+err.Error()), false
	}
	// The child enforces the timeout itself and reports it; this timer is
	// the backstop for a child that cannot.
	backstop := time.NewTimer(timeout + p.grace)
	defer backstop.Stop()
	select {
	case b := <-s.frames:
		res, err := decodeResult(b)
		if err != nil {
			s.cmd.Process.Kill()
			return faastype.Failure(faastype.KindSandboxCrash, "the sandbox process sent a malformed result"), false
		}
		if res.Error != nil && res.Error.Kind == faastype.KindTimeout {
			return res, false // the child is ending itself
		}
		return res, true
	case <-s.exited:
		msg := "the sandbox process died while running the task"
		if bySeccomp(s.cmd) {
			msg += " (killed by its seccomp filter: a forbidden system call)"
		}
		return faastype.Failure(faastype.KindSandboxCrash, msg), false
	case <-backstop.C:
		s.cmd.Process.Kill()
		return faastype.Failure(faastype.KindTimeout, fmt.Sprintf("task exceeded %s", formatDuration(timeout))), false
	case <-ctx.Done():
		s.cmd.Process.Kill()
		return faastype.Failure(faastype.KindCancelled, "the task was cancelled while running"), false
	case <-p.done:
		s.cmd.Process.Kill()
		return faastype.Failure(faastype.KindCancelled, "the sandbox pool shut down while the task ran"), false
	}
}

// replace kills what is left of the slot's process and starts another in
// the background, retrying with back-off.
func (p *Pool) replace(s *slot) {
	p.mu.Lock()
	s.ready, s.busy, s.hasFn = false, true, false
	cmd, exited := s.cmd, s.exited
	closed := p.closed
	p.mu.Unlock()
	if cmd != nil {
		cmd.Process.Kill()
	}
	if closed {
		return
	}
	p.restarts.Add(1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if exited != nil {
			<-exited
		}
		backoff := 100 * time.Millisecond
		for {
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-p.done:
					cancel()
				case <-ctx.Done():
				}
			}()
			err := p.start(ctx, s)
			cancel()
			if err == nil || errors.Is(err, ErrPoolClosed) {
				return
			}
			p.log.Error("sandbox restart failed", "slot", s.id, "err", err, "retry_in", backoff)
			select {
			case <-p.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
}

func (p *Pool) acquire(ctx context.Context, fn string) (*slot, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	if s := p.pickIdle(fn); s != nil {
		s.busy = true
		p.mu.Unlock()
		return s, nil
	}
	w := &waiter{function: fn, ch: make(chan *slot, 1)}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	select {
	case s := <-w.ch:
		return s, nil
	case <-ctx.Done():
	case <-p.done:
	}
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			break
		}
	}
	p.mu.Unlock()
	select {
	case s := <-w.ch: // handed over just before we left
		p.release(s)
	default:
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, ErrPoolClosed
}

// pickIdle prefers a sandbox that already holds the function, then one
// that holds none, then the one idle longest. Called with p.mu held.
func (p *Pool) pickIdle(fn string) *slot {
	var best *slot
	for _, s := range p.slots {
		if !s.ready || s.busy {
			continue
		}
		if s.hasFn && sameFunction(s.function, fn) {
			return s
		}
		if best == nil || (best.hasFn && !s.hasFn) || (best.hasFn == s.hasFn && s.lastUsed.Before(best.lastUsed)) {
			best = s
		}
	}
	return best
}

// release hands s to a waiting task (one for the same function first) or
// marks it idle.
func (p *Pool) release(s *slot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.waiters) == 0 || p.closed {
		s.busy = false
		return
	}
	pick := 0
	if s.hasFn {
		for i, w := range p.waiters {
			if sameFunction(s.function, w.function) {
				pick = i
				break
			}
		}
	}
	w := p.waiters[pick]
	p.waiters = append(p.waiters[:pick], p.waiters[pick+1:]...)
	w.ch <- s
}

// Stats reports the pool's counters.
func (p *Pool) Stats() faastype.PoolStats {
	p.mu.Lock()
	st := faastype.PoolStats{Size: len(p.slots), WaitingTasks: len(p.waiters)}
	for _, s := range p.slots {
		if s.ready {
			st.Ready++
			if s.busy {
				st.Busy++
			}
		}
	}
	p.mu.Unlock()
	st.Tasks, st.WarmRuns, st.ColdRuns = p.tasks.Load(), p.warm.Load(), p.cold.Load()
	st.Timeouts, st.Crashes, st.Restarts = p.timeouts.Load(), p.crashes.Load(), p.restarts.Load()
	if w := p.walls.Load(); w != nil {
		st.Walls = *w
	}
	return st
}

// Close stops every sandbox process. Tasks still running end CANCELLED.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	type proc struct {
		cmd    *exec.Cmd
		exited chan struct{}
	}
	var procs []proc
	for _, s := range p.slots {
		if s.cmd != nil {
			procs = append(procs, proc{s.cmd, s.exited})
			// An idle sandbox process ends by itself when its stdin closes
			// (flushing what it must, such as a CPU profile).
			s.stdin.Close()
		}
	}
	p.mu.Unlock()
	deadline := time.NewTimer(closeGrace)
	defer deadline.Stop()
	for _, c := range procs {
		select {
		case <-c.exited:
		case <-deadline.C:
			deadline.Reset(0)
			c.cmd.Process.Kill()
		}
	}
	p.wg.Wait()
	return nil
}

// closeGrace is how long Close lets sandbox processes end by themselves
// before it kills them.
const closeGrace = time.Second

// tailBuffer keeps the last lines a child wrote to stderr, for errors.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (t *tailBuffer) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > 8 {
		t.lines = t.lines[1:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) == 0 {
		return "(no output)"
	}
	out := ""
	for i, l := range t.lines {
		if i > 0 {
			out += "; "
		}
		out += l
	}
	return out
}

// bySeccomp says an ended sandbox process was killed by SIGSYS, which is
// how its seccomp filter ends it (see lockDown).
func bySeccomp(cmd *exec.Cmd) bool {
	if cmd.ProcessState == nil {
		return false
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGSYS
}
