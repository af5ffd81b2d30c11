package runtime

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/pyshim"
)

// EngineConfig configures the wazero host inside one sandbox process.
type EngineConfig struct {
	ImageDir string // "" means DefaultImageDir()
	CacheDir string // "" means CacheDir()
	Limits   faastype.Limits

	// closeOnContextDone makes wazero instrument the guest so a cancelled
	// context stops it; only benchmarks set it, to measure what that costs.
	closeOnContextDone bool
}

// Engine owns one wazero runtime with the compiled guest and its snapshot.
// It is used by a single goroutine at a time (one sandbox process runs one
// task at a time); instances it creates must be closed by the caller.
type Engine struct {
	img      *Image
	limits   faastype.Limits
	cacheDir string
	rt       wazero.Runtime
	restore  wazero.CompiledModule
	snap     *snapshot
	reuse    *memReuse // memories of closed instances, reset for the next (nil: none)
	images   *imageCache
	libDir   string
	// libRoot is libDir opened once: the guest's stdlib is read relative
	// to it (openat), so that it stays readable after the process gives up
	// root for nobody, whom the directories above it may not admit.
	libRoot *os.Root

	// BootInfo says how the engine came up, for logs and benchmarks.
	BootInfo struct {
		Compile         time.Duration
		Snapshot        time.Duration
		SnapshotCreated bool
		SnapshotBytes   uint64
		// KeptBodies says why the compiled module's function bodies
		// could not be dropped (nil: they were).
		KeptBodies error
	}
}

// NewEngine compiles the guest (through the on-disk compilation cache) and
// loads, or first creates, the interpreter snapshot.
func NewEngine(ctx context.Context, cfg EngineConfig) (*Engine, error) {
	e, err := newBareEngine(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	snap, created, err := e.loadOrCreateSnapshot(ctx)
	if err != nil {
		e.Close(ctx)
		return nil, err
	}
	e.snap = snap
	e.reuse = newMemReuse(snap)
	e.images = newImageCache()
	e.BootInfo.Snapshot = time.Since(t0)
	e.BootInfo.SnapshotCreated = created
	e.BootInfo.SnapshotBytes = snap.memBytes
	if snap.memBytes > e.limits.MemoryBytes {
		e.Close(ctx)
		return nil, fmt.Errorf("runtime: memory limit %d MiB is below the interpreter's own %d MiB",
			e.limits.MemoryBytes>>20, snap.memBytes>>20)
	}
	t0 = time.Now()
	stripped, err := stripData(e.img.Wasm)
	if err == nil {
		e.restore, err = e.rt.CompileModule(ctx, stripped)
	}
	if err != nil {
		e.Close(ctx)
		return nil, fmt.Errorf("runtime: compile restore module: %w", err)
	}
	e.BootInfo.Compile = time.Since(t0)
	// The module is compiled and the snapshot taken: the image's bytes
	// (8 MB) are not needed again, nor the function bodies wazero decoded
	// from them (5 MB).
	e.img.Wasm = nil
	if _, err := dropFunctionBodies(e.restore); err != nil {
		e.BootInfo.KeptBodies = err
	}
	return e, nil
}

// newBareEngine sets up the wazero runtime with WASI and the limits, but
// neither compiles the guest nor touches the snapshot.
func newBareEngine(ctx context.Context, cfg EngineConfig) (*Engine, error) {
	img, err := LoadImage(cfg.ImageDir)
	if err != nil {
		return nil, err
	}
	e := &Engine{img: img, limits: cfg.Limits.WithDefaults(), cacheDir: cfg.CacheDir}
	if e.cacheDir == "" {
		e.cacheDir = CacheDir()
	}
	e.libDir = filepath.Join(img.Dir, "lib")
	if e.libRoot, err = os.OpenRoot(e.libDir); err != nil {
		return nil, fmt.Errorf("runtime: open the image's standard library: %w", err)
	}
	pages := e.limits.MemoryBytes / wasmPage
	if pages < 1 || pages > 65536 {
		return nil, fmt.Errorf("runtime: memory limit %d bytes is outside 64 KiB..4 GiB", e.limits.MemoryBytes)
	}
	cache, err := wazero.NewCompilationCacheWithDir(filepath.Join(e.cacheDir, "wazero"))
	if err != nil {
		return nil, fmt.Errorf("runtime: compilation cache: %w", err)
	}
	e.rt = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithCompilationCache(cache).
		WithCloseOnContextDone(cfg.closeOnContextDone).
		WithMemoryLimitPages(uint32(pages)))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, e.rt); err != nil {
		e.Close(ctx)
		return nil, fmt.Errorf("runtime: wasi: %w", err)
	}
	return e, nil
}

// Close releases the runtime and the snapshot mapping's file.
func (e *Engine) Close(ctx context.Context) {
	if e.rt != nil {
		e.rt.Close(ctx)
	}
	if e.libRoot != nil {
		e.libRoot.Close()
	}
	e.reuse.close()
	e.snap.close()
}

// Limits returns the limits this engine enforces.
func (e *Engine) Limits() faastype.Limits { return e.limits }

// moduleConfig is the guest's whole world. The mounts and their order are
// part of the snapshot layout (snapLayout): wasi-libc inside the snapshot
// remembers which descriptor is which preopen.
func (e *Engine) moduleConfig(gio *guestIO, tmp *MemFS, mount *bundleMount) wazero.ModuleConfig {
	shim, _ := fs.Sub(pyshim.FS, ".")
	fsc := wazero.NewFSConfig().
		WithFSMount(e.libRoot.FS(), "/usr/local/lib").
		WithFSMount(shim, "/faas")
	fsc = fsc.(sysfs.FSConfig).WithSysFSMount(tmp, "/tmp")
	fsc = fsc.(sysfs.FSConfig).WithSysFSMount(NewDevFS(), "/dev")
	// Last, so that the descriptors of the others (3-6) stay what they were.
	fsc = fsc.WithFSMount(mount, bundleDir)
	return wazero.NewModuleConfig().
		WithName("").
		WithArgs("python3").
		WithStdin(strings.NewReader("")).
		WithStdout(gio.stdout).
		WithStderr(gio.stderr).
		WithFSConfig(fsc).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader)
}

// instance is one interpreter restored from the snapshot.
type instance struct {
	mod      api.Module
	mem      api.Memory
	alloc    api.Function
	run      api.Function
	io       *guestIO
	tmp      *MemFS
	bundle   *bundleMount
	function string // the function it ran (see faastype.Task.Function)
	smem     *snapMemory
	memCap   uint64 // the memory cap of the task running now
	loaded   bool
	dead     bool
	// spent says a fresh task ran on it: it must be reset (resetInPlace)
	// or closed before anything runs on it again.
	spent bool
	// target is the function image it started from (nil: the snapshot),
	// which resetInPlace puts it back to.
	target *funcImage
	sp     api.MutableGlobal
	hs     *hostState // nil: it cannot be reset in place
}

// newInstance restores a pristine interpreter from the snapshot, with the
// function image img over it when img is not nil.
func (e *Engine) newInstance(ctx context.Context, img *funcImage) (*instance, error) {
	m := e.reuse.take(e.limits.MemoryBytes, img)
	if m == nil {
		var err error
		if m, err = e.snap.mapMemory(e.limits.MemoryBytes); err != nil {
			return nil, err
		}
		m.reuse = e.reuse
		if img != nil && !e.reuse.resetTo(m, img) {
			m.Free()
			return nil, errors.New("runtime: restore instance: cannot write the function image")
		}
	}
	m.limit = 0 // a reused memory may carry its last task's cap
	used := false
	actx := experimental.WithMemoryAllocator(ctx, experimental.MemoryAllocatorFunc(
		func(_, max uint64) experimental.LinearMemory {
			used = true
			return m
		}))
	in := &instance{io: newGuestIO(e.limits.OutputBytes, e.limits.OutputBytes), tmp: NewMemFS(int64(e.limits.TmpBytes)),
		bundle: &bundleMount{}, smem: m, memCap: e.limits.MemoryBytes}
	mod, err := e.rt.InstantiateModule(actx, e.restore, e.moduleConfig(in.io, in.tmp, in.bundle).WithStartFunctions())
	if err != nil {
		if !used {
			m.Free()
		}
		return nil, fmt.Errorf("runtime: restore instance: %w", err)
	}
	in.mod, in.mem = mod, mod.Memory()
	size, sp := e.snap.memBytes, e.snap.stackPointer
	if img != nil {
		size, sp = img.memSize, img.sp
	}
	if cur := uint64(in.mem.Size()); cur < size {
		if _, ok := in.mem.Grow(uint32((size - cur) / wasmPage)); !ok {
			mod.Close(ctx)
			return nil, errors.New("runtime: restore instance: cannot grow memory to the snapshot size")
		}
	}
	msp, ok := mod.ExportedGlobal("__stack_pointer").(api.MutableGlobal)
	if !ok {
		mod.Close(ctx)
		return nil, errors.New("runtime: __stack_pointer is not an exported mutable global")
	}
	msp.Set(uint64(sp))
	in.sp = msp
	in.alloc = mod.ExportedFunction("faas_alloc")
	in.run = mod.ExportedFunction("faas_run")
	if in.alloc == nil || in.run == nil {
		mod.Close(ctx)
		return nil, errors.New("runtime: python.wasm lacks faas_alloc/faas_run")
	}
	if e.reuse != nil {
		in.hs, _ = recordHostState(mod) // on error (another wazero): instantiated every time
	}
	in.target, in.loaded = img, img != nil
	return in, nil
}

// resetInPlace puts in back to what newInstance(img) would give, without
// instantiating the module again: its memory reset to the snapshot (and
// img), its stack pointer and function tables as at instantiation, /tmp
// emptied, no output. It says false, changing nothing the next instance
// would see, when in cannot be: it died, or the guest left a descriptor
// open or changed a preopen. A memory the guest grew is made its target's
// size again (hostState.shrinkMemory).
func (e *Engine) resetInPlace(in *instance, img *funcImage) bool {
	if in == nil || in.hs == nil || in.dead || in.mod == nil || in.mod.IsClosed() || in.smem == nil || e.reuse == nil {
		return false
	}
	size, sp := e.snap.memBytes, e.snap.stackPointer
	if img != nil {
		size, sp = img.memSize, img.sp
	}
	if uint64(in.mem.Size()) < size || !in.hs.filesPristine() || !in.hs.restoreTables() {
		return false
	}
	if !e.reuse.resetTo(in.smem, img) || !in.hs.shrinkMemory(size) {
		in.dead = true
		return false
	}
	in.tmp.reset()
	in.sp.Set(uint64(sp))
	in.io.stdout.take()
	in.io.stderr.take()
	in.smem.limit, in.memCap = 0, e.limits.MemoryBytes
	in.function, in.spent = "", false
	in.target, in.loaded = img, img != nil
	return true
}

// captureImage makes the function image of in, which has just loaded a
// function on a pristine start (OP_LOAD): nil when it may not be kept (a
// file left open, /tmp written, a table changed) or cannot.
func (e *Engine) captureImage(in *instance, key string, payload []byte) *funcImage {
	if in.hs == nil || in.smem == nil || e.reuse == nil || in.target != nil ||
		!in.hs.filesPristine() || !in.hs.tablesPristine() || !in.tmp.pristine() {
		return nil
	}
	img := e.reuse.capture(in.smem, uint64(in.mem.Size()))
	if img == nil {
		return nil
	}
	img.key, img.sp = key, uint32(in.sp.Get())
	// The generator pyshim names must look like one random.seed() just
	// made (index 624: no number drawn), else pyshim reseeds it itself.
	if len(payload) == 4 {
		addr := binary.LittleEndian.Uint32(payload)
		if b, ok := in.mem.Read(addr+rngIndex, 4+4*rngWords); ok && binary.LittleEndian.Uint32(b) == rngWords {
			img.rng = addr
		}
	}
	return img
}

// CPython's RandomObject on wasm32: a 4-byte refcount and type pointer,
// int index, uint32_t state[624].
const (
	rngIndex = 8
	rngWords = 624
)

// reseed gives the generator of random in an instance started from img a
// new state drawn from the host's random source (what random.seed() does
// with the 2,496 bytes it reads), with state[0]'s top bit set as
// init_by_array sets it (so the state is never all zero) and index 624
// (the next number comes from a new block). False: img has no generator
// address; then pyshim must reseed (RESEED).
func (in *instance) reseed() bool {
	img := in.target
	if img == nil || img.rng == 0 {
		return false
	}
	b, ok := in.mem.Read(img.rng+rngIndex, 4+4*rngWords)
	if !ok {
		return false
	}
	if _, err := rand.Read(b[4:]); err != nil {
		return false
	}
	b[4+3] |= 0x80
	binary.LittleEndian.PutUint32(b, rngWords)
	return true
}

func (in *instance) close(ctx context.Context) {
	if in != nil && in.mod != nil {
		in.mod.Close(ctx)
		in.mod = nil
	}
}

// Guest request flags and reply kinds; they mirror pyshim.py.
const (
	guestOpRun       = 1
	guestOpLoad      = 2
	guestNewFunction = 1
	guestWantJSON    = 2
	guestHasBundle   = 4
	guestReseed      = 8
	guestReplySize   = 44
)

var guestKinds = map[byte]faastype.ErrorKind{
	1: faastype.KindUserException,
	2: faastype.KindUserExit,
	3: faastype.KindBadPayload,
	4: faastype.KindResultTooLarge,
	5: faastype.KindUnpicklable,
	6: faastype.KindMemoryLimit,
}

// guestReply is pyshim's answer to one request.
type guestReply struct {
	failed             bool
	keep               bool // OP_LOAD: the load may be kept as an image
	kind               faastype.ErrorKind
	deser, run, ser    float64
	payload            []byte
	message, traceback string
	json               []byte
}

// call runs one request in the instance. An error means the instance died
// (trap, exit, interpreter failure) and must be discarded; its text is
// meant for the user.
// setMemoryCap caps the instance's memory at limit (at most the engine's)
// for the next call.
func (in *instance) setMemoryCap(limit uint64) {
	in.memCap = limit
	if in.smem != nil {
		in.smem.limit = limit
	}
}

// call runs one request. env, sent with a new function only (fn != nil),
// is the JSON object that becomes os.environ.
func (in *instance) call(ctx context.Context, fn, args, env []byte, wantJSON, hasBundle bool, resultCap int, memMiB uint32) (*guestReply, error) {
	return in.request(ctx, guestOpRun, 0, fn, args, env, wantJSON, hasBundle, resultCap, memMiB)
}

// request sends pyshim one request: op guestOpRun (run, loading fn first
// when not nil) or guestOpLoad (load fn only), with extra flags.
func (in *instance) request(ctx context.Context, op, extra byte, fn, args, env []byte, wantJSON, hasBundle bool, resultCap int, memMiB uint32) (*guestReply, error) {
	flags := extra
	if hasBundle {
		flags |= guestHasBundle
	}
	if fn != nil {
		flags |= guestNewFunction
	}
	if wantJSON {
		flags |= guestWantJSON
	}
	if fn == nil {
		env = nil
	}
	if len(env) > math.MaxUint16 {
		return nil, errors.New("environment too large")
	}
	n := 20 + len(fn) + len(args) + len(env)
	if uint64(n) > math.MaxUint32 {
		return nil, errors.New("request too large")
	}
	res, err := in.alloc.Call(ctx, uint64(n))
	if err != nil {
		in.dead = true
		return nil, err
	}
	ptr := uint32(res[0])
	if ptr == 0 {
		return nil, errMemory
	}
	req, ok := in.mem.Read(ptr, uint32(n))
	if !ok {
		in.dead = true
		return nil, errors.New("request buffer outside memory")
	}
	req[0], req[1] = op, flags
	binary.LittleEndian.PutUint16(req[2:], uint16(len(env)))
	binary.LittleEndian.PutUint32(req[4:], uint32(resultCap))
	binary.LittleEndian.PutUint32(req[8:], memMiB)
	binary.LittleEndian.PutUint32(req[12:], uint32(len(fn)))
	binary.LittleEndian.PutUint32(req[16:], uint32(len(args)))
	copy(req[20:], fn)
	copy(req[20+len(fn):], args)
	copy(req[20+len(fn)+len(args):], env)
	if fn != nil {
		in.loaded = false
	}
	res, err = in.run.Call(ctx, uint64(ptr), uint64(n))
	if err != nil {
		in.dead = true
		return nil, err
	}
	rptr, rlen := uint32(res[0]>>32), uint32(res[0])
	if rptr == 0 || rlen&(1<<31) != 0 {
		in.dead = true
		name := ""
		if rptr != 0 {
			if b, ok := in.mem.Read(rptr, rlen&^(1<<31)); ok {
				name = string(b)
			}
		}
		if name == "MemoryError" {
			return nil, errMemory
		}
		return nil, fmt.Errorf("the interpreter failed outside the function (%s)", name)
	}
	b, ok := in.mem.Read(rptr, rlen)
	if !ok || len(b) < guestReplySize {
		in.dead = true
		return nil, errors.New("malformed reply from the guest")
	}
	r := &guestReply{failed: b[0] != 0, keep: b[3] == 1}
	if r.failed {
		r.kind = guestKinds[b[1]]
		if r.kind == "" {
			r.kind = faastype.KindSandboxCrash
		}
	}
	r.deser = math.Float64frombits(binary.LittleEndian.Uint64(b[4:]))
	r.run = math.Float64frombits(binary.LittleEndian.Uint64(b[12:]))
	r.ser = math.Float64frombits(binary.LittleEndian.Uint64(b[20:]))
	pl := binary.LittleEndian.Uint32(b[28:])
	ml := binary.LittleEndian.Uint32(b[32:])
	tl := binary.LittleEndian.Uint32(b[36:])
	jl := binary.LittleEndian.Uint32(b[40:])
	if uint64(guestReplySize)+uint64(pl)+uint64(ml)+uint64(tl)+uint64(jl) != uint64(len(b)) {
		in.dead = true
		return nil, errors.New("malformed reply from the guest")
	}
	rest := b[guestReplySize:]
	r.payload = append([]byte(nil), rest[:pl]...)
	r.message = string(rest[pl : pl+ml])
	r.traceback = string(rest[pl+ml : pl+ml+tl])
	if jl > 0 {
		r.json = append([]byte(nil), rest[pl+ml+tl:]...)
	}
	in.loaded = b[2] == 1
	return r, nil
}

var errMemory = errors.New("the interpreter ran out of memory")

// exitCode reports whether err is the guest calling proc_exit.
func exitCode(err error) (uint32, bool) {
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), true
	}
	return 0, false
}

// guestIO captures the guest's stdout and stderr, each up to a cap.
type guestIO struct {
	stdout, stderr *capWriter
}

func newGuestIO(outCap, errCap int) *guestIO {
	return &guestIO{stdout: &capWriter{limit: outCap}, stderr: &capWriter{limit: errCap}}
}

// capWriter keeps the first limit bytes written and counts the rest. It is
// safe for the watchdog to read while the guest writes.
type capWriter struct {
	mu        sync.Mutex
	buf       []byte
	limit     int
	truncated bool
	written   int
	pass      io.Writer // when set, allowed bytes go here instead of buf
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	keep := p
	if room := w.limit - w.written; room < len(p) {
		keep = p[:max(room, 0)]
		w.truncated = true
	}
	w.written += len(keep)
	if w.pass != nil {
		w.pass.Write(keep)
	} else {
		w.buf = append(w.buf, keep...)
	}
	return len(p), nil
}

// take returns what was captured and resets the writer.
func (w *capWriter) take() ([]byte, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, t := w.buf, w.truncated
	w.buf, w.truncated, w.written = nil, false, 0
	return b, t
}

func (w *capWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
