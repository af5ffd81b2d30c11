package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/wasmfaas/wasmfaas/pyshim"
)

// A snapshot file holds a header page followed by the linear memory of an
// instance that has booted CPython and imported pyshim and dill. The memory
// starts at snapHeaderSize so it can be mapped straight from the file.
const (
	snapMagic      = "FAASSNP1"
	snapHeaderSize = 1 << 16
	// snapLayout changes whenever what the guest sees at boot changes
	// (mounts and their order, stdio, arguments): an instance must be
	// restored into exactly the environment its snapshot was taken in.
	snapLayout = 3 // 3: /bundle, the fifth mount (fd 7)
)

type snapshot struct {
	path         string
	file         *os.File
	stackPointer uint32
	memBytes     uint64
}

func (s *snapshot) close() {
	if s != nil && s.file != nil {
		s.file.Close()
	}
}

func writeSnapshot(path string, mem []byte, sp uint32) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".snap-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	hdr := make([]byte, snapHeaderSize)
	copy(hdr, snapMagic)
	binary.LittleEndian.PutUint32(hdr[8:], snapLayout)
	binary.LittleEndian.PutUint32(hdr[12:], sp)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(len(mem)))
	if _, err := tmp.Write(hdr); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(mem); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func openSnapshot(path string) (*snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, 24)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("runtime: read snapshot %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &snapshot{
		path:         path,
		file:         f,
		stackPointer: binary.LittleEndian.Uint32(hdr[12:]),
		memBytes:     binary.LittleEndian.Uint64(hdr[16:]),
	}
	if string(hdr[:8]) != snapMagic || binary.LittleEndian.Uint32(hdr[8:]) != snapLayout ||
		s.memBytes%wasmPage != 0 || st.Size() != int64(snapHeaderSize+s.memBytes) {
		f.Close()
		return nil, fmt.Errorf("runtime: snapshot %s is damaged or from another version", path)
	}
	return s, nil
}

const wasmPage = 1 << 16

// snapshotPath is where the snapshot of img (with this pyshim) lives.
func snapshotPath(cacheDir string, img *Image) string {
	return filepath.Join(cacheDir, "snapshots", fmt.Sprintf("%s-%s-%d.snap", img.Hash[:16], pyshim.Hash(), snapLayout))
}

// loadOrCreateSnapshot returns the snapshot for this image and pyshim,
// creating it (under a file lock, so concurrent sandbox processes boot the
// interpreter once) when it is missing.
func (e *Engine) loadOrCreateSnapshot(ctx context.Context) (*snapshot, bool, error) {
	dir := filepath.Join(e.cacheDir, "snapshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, fmt.Errorf("runtime: snapshot dir: %w", err)
	}
	path := snapshotPath(e.cacheDir, e.img)
	if s, err := openSnapshot(path); err == nil {
		return s, false, nil
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("runtime: snapshot lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, false, fmt.Errorf("runtime: snapshot lock: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	if s, err := openSnapshot(path); err == nil {
		return s, false, nil // another process made it while we waited
	}
	mem, sp, err := e.bootForSnapshot(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := writeSnapshot(path, mem, sp); err != nil {
		return nil, false, fmt.Errorf("runtime: write snapshot: %w", err)
	}
	s, err := openSnapshot(path)
	return s, true, err
}

// bootForSnapshot runs the full module: wasi-libc constructors, then
// faas_init (interpreter boot, import pyshim and dill). It returns a copy of
// linear memory and the stack pointer.
func (e *Engine) bootForSnapshot(ctx context.Context) ([]byte, uint32, error) {
	compiled, err := e.rt.CompileModule(ctx, e.img.Wasm)
	if err != nil {
		return nil, 0, fmt.Errorf("runtime: compile python.wasm: %w", err)
	}
	defer compiled.Close(ctx)
	if n, err := mutableGlobals(e.img.Wasm); err != nil || n != 1 {
		return nil, 0, fmt.Errorf("runtime: python.wasm has %d mutable globals (%v); snapshots need exactly one, __stack_pointer", n, err)
	}
	io := newGuestIO(64<<10, 64<<10)
	cfg := e.moduleConfig(io, NewMemFS(int64(e.limits.TmpBytes)), &bundleMount{}).WithStartFunctions("_initialize")
	mod, err := e.rt.InstantiateModule(ctx, compiled, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("runtime: instantiate python.wasm: %w", err)
	}
	defer mod.Close(ctx)
	res, err := mod.ExportedFunction("faas_init").Call(ctx)
	if err != nil || res[0] != 0 {
		return nil, 0, fmt.Errorf("runtime: interpreter boot failed (faas_init=%v, %v): %s", res, err, io.stderr.String())
	}
	sp := mod.ExportedGlobal("__stack_pointer")
	if sp == nil {
		return nil, 0, errors.New("runtime: python.wasm does not export __stack_pointer")
	}
	buf, ok := mod.Memory().Read(0, mod.Memory().Size())
	if !ok {
		return nil, 0, errors.New("runtime: read linear memory")
	}
	return append([]byte(nil), buf...), uint32(sp.Get()), nil
}

// snapMemory is a linear memory whose first bytes are a private
// copy-on-write mapping of the snapshot file; the rest of the reservation
// (up to the memory limit) is anonymous zero pages, committed on first use.
type snapMemory struct {
	base unsafe.Pointer
	max  uint64
	buf  []byte
	high uint64 // the largest size the guest grew it to
	// limit, when set, is a lower cap than max for the task running now
	// (a function's memory setting): growing past it fails as past max.
	limit uint64
	reuse *memReuse // where Free hands it back (see memreuse_linux.go); nil: unmap
}

func (s *snapshot) mapMemory(max uint64) (*snapMemory, error) {
	if max < s.memBytes {
		return nil, fmt.Errorf("runtime: memory limit %d below the snapshot's %d bytes", max, s.memBytes)
	}
	base, err := unix.MmapPtr(-1, 0, nil, uintptr(max), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("runtime: reserve guest memory: %w", err)
	}
	if _, err := unix.MmapPtr(int(s.file.Fd()), snapHeaderSize, base, uintptr(s.memBytes),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED); err != nil {
		unix.MunmapPtr(base, uintptr(max))
		return nil, fmt.Errorf("runtime: map snapshot: %w", err)
	}
	return &snapMemory{base: base, max: max, buf: unsafe.Slice((*byte)(base), max)}, nil
}

func (m *snapMemory) Reallocate(size uint64) []byte {
	if size > m.max || m.buf == nil || (m.limit > 0 && size > m.limit) {
		return nil
	}
	m.high = max(m.high, size)
	return m.buf[:size]
}

// Free is called by wazero when the instance closes: the memory is reset
// for the next instance if it can be, unmapped otherwise.
func (m *snapMemory) Free() {
	if m.buf == nil {
		return
	}
	m.buf = nil
	if !m.reuse.put(m) {
		m.unmap()
	}
}

func (m *snapMemory) unmap() { unix.MunmapPtr(m.base, uintptr(m.max)) }
