package runtime

// The in-memory, size-capped filesystem behind each sandboxed guest's
// writable scratch area /tmp (MemFS); /dev is devfs.go's.
//
// Both implement wazero's experimental/sys.FS. Conventions followed from
// wazero v1.12 (imports/wasi_snapshot_preview1/fs.go, internal/sys/fs.go):
//
//   - Paths arrive relative to the mount root, already path.Clean'ed by the
//     WASI layer, with a trailing "/" restored when the guest wrote one. The
//     mount root itself arrives as "." (lazy pre-open, path_open(".")), and
//     paths relative to a directory fd that was opened as "." arrive with a
//     leading "/" (wazero joins fd.Name "" + "/" + name). Both are accepted;
//     a leading "/" always means this filesystem's root, never the host's.
//   - wazero opens each mount root lazily with OpenFile(".", O_RDONLY) and
//     panics if that fails with anything but ENOENT, so it must always work.
//   - Oflag: the access mode is the low two bits (O_RDONLY 0, O_RDWR 1,
//     O_WRONLY 2); the rest are bits. Observed from wasi-libc: Python's 'wb'
//     is O_WRONLY|O_CREAT|O_TRUNC, 'r+b' O_RDWR, 'ab' O_WRONLY|O_CREAT|
//     O_APPEND, opendir O_RDONLY|O_DIRECTORY|O_NONBLOCK; O_NOFOLLOW only
//     appears when the guest asks for no symlink following.
//   - Readdir never returns "." or ".." (wazero synthesizes them), and
//     Seek(0, io.SeekStart) on a directory rewinds the listing.
//   - Close on an already closed file is a no-op returning 0, like wazero's
//     own files; every other method on a closed file returns EBADF.

import (
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// ENOSPC is returned when a MemFS is out of bytes or inodes.
//
// wazero v1.12's experimental/sys.Errno has no ENOSPC, so this is a value
// outside the range wazero defines. wazero's WASI layer maps every Errno it
// does not know to WASI EIO, so a guest sees EIO ("I/O error") where a real
// filesystem would report ENOSPC; Go callers can compare against ENOSPC.
const ENOSPC experimentalsys.Errno = 0x4000 | 28

const (
	memFSDefaultCap  = 16 << 20
	memFSMaxInodes   = 10000
	memFSNameMax     = 255  // NAME_MAX
	memFSPathMax     = 4096 // PATH_MAX
	memFSAccModeMask = experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY
)

// memFSNextDev hands out a distinct Stat_t.Dev per filesystem instance, so
// that (Dev, Ino) identifies a file (os.path.samefile, os.path.ismount).
var memFSNextDev atomic.Uint64

// MemFS is an in-memory filesystem whose regular files together may hold at
// most a fixed number of bytes and which holds at most 10000 inodes. It has
// no symbolic or hard links and does not enforce permission bits (Chmod
// only stores them). It is safe for concurrent use.
//
// Byte accounting: every byte between 0 and a regular file's size counts,
// including zero-filled holes made by seeking past the end and writing, or by
// growing with Truncate. An unlinked file that is still open keeps its bytes
// (and its inode) until its last handle is closed, as on POSIX.
//
// Writes that do not fit: a Write/Pwrite that would grow the total past the
// cap writes the prefix that fits and returns the short count with no error;
// when not even one byte fits (the cap is reached) it writes nothing, leaves
// the file unchanged and returns ENOSPC. That is the POSIX short-write
// contract (write(2) "ENOSPC" / short count). Note that wazero's fd_write
// continues with the next iovec after a short write and, if that one fails,
// reports only the error to the guest. Truncate that would exceed the cap
// fails with ENOSPC and changes nothing.
type MemFS struct {
	experimentalsys.UnimplementedFS

	mu        sync.Mutex
	root      *memInode
	dev       uint64
	capBytes  int64
	used      int64
	maxInodes int
	inodes    int
	lastIno   sys.Inode
	now       func() int64 // wall clock in epoch nanoseconds
}

var _ experimentalsys.FS = (*MemFS)(nil)

// memInode is a regular file or a directory.
type memInode struct {
	ino  sys.Inode
	mode fs.FileMode // fs.ModeDir|perm for directories, perm for files

	data []byte // regular files; len(data) is the size

	children map[string]*memInode // directories
	names    []string             // directories: sorted keys of children
	parent   *memInode            // directories: containing dir, nil for root or removed
	subdirs  int                  // directories: count of child directories

	linked bool // reachable from the root (the root itself is always linked)
	opens  int  // open handles
	freed  bool // bytes and inode returned to the filesystem

	atim, mtim, ctim int64
}

func (n *memInode) isDir() bool { return n.mode&fs.ModeDir != 0 }

// NewMemFS returns an empty in-memory filesystem whose regular files together
// may hold at most capBytes bytes (writes past it fail with ENOSPC; capBytes<=0 means 16 MiB).
func NewMemFS(capBytes int64) *MemFS {
	if capBytes <= 0 {
		capBytes = memFSDefaultCap
	}
	m := &MemFS{
		dev:       memFSNextDev.Add(1),
		capBytes:  capBytes,
		maxInodes: memFSMaxInodes,
		now:       func() int64 { return time.Now().UnixNano() },
	}
	m.root, _ = m.newInode(fs.ModeDir | 0o777)
	m.root.linked = true
	return m
}

// Used reports the bytes currently held by regular files.
func (m *MemFS) Used() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}

// reset empties the filesystem, as new, for an instance reset in place
// (engine.go): the caller has checked that the guest holds no descriptor
// of it but the preopen of its root. The inode numbers start again.
func (m *MemFS) reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.root
	clear(r.children)
	r.names, r.subdirs = nil, 0
	r.mode = fs.ModeDir | 0o777
	now := m.now()
	r.atim, r.mtim, r.ctim = now, now, now
	m.used, m.inodes, m.lastIno = 0, 1, r.ino
}

// pristine says nothing was created in the filesystem since it was new
// (or reset), its root unchanged but for its times.
func (m *MemFS) pristine() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.inodes == 1 && m.used == 0 && len(m.root.children) == 0 && m.lastIno == m.root.ino &&
		m.root.mode == fs.ModeDir|0o777
}

// String implements fmt.Stringer.
func (m *MemFS) String() string { return "memfs" }

// splitMemPath turns a path relative to a filesystem root into its
// components. An empty result is the root. mustDir reports a trailing "/",
// "/." or "/..", which POSIX requires to resolve to a directory. Any path
// whose lexical cleaning escapes the root is rejected with EPERM (the errno
// wazero's own path checks use).
func splitMemPath(p string) (parts []string, mustDir bool, errno experimentalsys.Errno) {
	if len(p) > memFSPathMax {
		return nil, false, experimentalsys.ENAMETOOLONG
	}
	if strings.IndexByte(p, 0) >= 0 {
		return nil, false, experimentalsys.EINVAL
	}
	mustDir = strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..")
	rel := strings.TrimLeft(p, "/") // "/x" means x under this root, never the host's "/x"
	c := path.Clean(rel)            // path.Clean("") == "."
	if c == ".." || strings.HasPrefix(c, "../") {
		return nil, false, experimentalsys.EPERM
	}
	if c == "." {
		return nil, true, 0
	}
	parts = strings.Split(c, "/")
	for _, name := range parts {
		if len(name) > memFSNameMax {
			return nil, false, experimentalsys.ENAMETOOLONG
		}
	}
	return parts, mustDir, 0
}

// memLoc is a resolved path: node is nil when the last component does not
// exist (its parent does); parent is nil for the root.
type memLoc struct {
	parent  *memInode
	name    string
	node    *memInode
	mustDir bool
}

// locate resolves p. It fails only when p is invalid or a parent component is
// missing (ENOENT) or not a directory (ENOTDIR). Callers hold m.mu.
func (m *MemFS) locate(p string) (memLoc, experimentalsys.Errno) {
	parts, mustDir, errno := splitMemPath(p)
	if errno != 0 {
		return memLoc{}, errno
	}
	if len(parts) == 0 {
		return memLoc{node: m.root, mustDir: true}, 0
	}
	dir := m.root
	for _, name := range parts[:len(parts)-1] {
		child := dir.children[name]
		if child == nil {
			return memLoc{}, experimentalsys.ENOENT
		}
		if !child.isDir() {
			return memLoc{}, experimentalsys.ENOTDIR
		}
		dir = child
	}
	name := parts[len(parts)-1]
	return memLoc{parent: dir, name: name, node: dir.children[name], mustDir: mustDir}, 0
}

// existing resolves p to an existing node, honouring a trailing slash.
func (m *MemFS) existing(p string) (*memInode, experimentalsys.Errno) {
	loc, errno := m.locate(p)
	if errno != 0 {
		return nil, errno
	}
	if loc.node == nil {
		return nil, experimentalsys.ENOENT
	}
	if loc.mustDir && !loc.node.isDir() {
		return nil, experimentalsys.ENOTDIR
	}
	return loc.node, 0
}

func (m *MemFS) newInode(mode fs.FileMode) (*memInode, experimentalsys.Errno) {
	if m.inodes >= m.maxInodes {
		return nil, ENOSPC
	}
	m.inodes++
	m.lastIno++
	now := m.now()
	n := &memInode{ino: m.lastIno, mode: mode, atim: now, mtim: now, ctim: now}
	if n.isDir() {
		n.children = map[string]*memInode{}
	}
	return n, 0
}

// release returns an inode's bytes and slot once it is neither linked nor open.
func (m *MemFS) release(n *memInode) {
	if n.linked || n.opens > 0 || n.freed {
		return
	}
	n.freed = true
	m.inodes--
	m.used -= int64(len(n.data))
	n.data = nil
}

func (m *MemFS) attach(dir *memInode, name string, n *memInode) {
	dir.children[name] = n
	i, _ := slices.BinarySearch(dir.names, name)
	dir.names = slices.Insert(dir.names, i, name)
	n.linked = true
	if n.isDir() {
		n.parent = dir
		dir.subdirs++
	}
	now := m.now()
	dir.mtim, dir.ctim = now, now
}

func (m *MemFS) detach(dir *memInode, name string) *memInode {
	n := dir.children[name]
	delete(dir.children, name)
	if i, found := slices.BinarySearch(dir.names, name); found {
		dir.names = slices.Delete(dir.names, i, i+1)
	}
	n.linked = false
	if n.isDir() {
		n.parent = nil
		dir.subdirs--
	}
	now := m.now()
	dir.mtim, dir.ctim = now, now
	n.ctim = now
	return n
}

// resize sets a regular file's size, zero-filling growth, keeping m.used
// exact and bounding slack capacity. Callers hold m.mu.
func (m *MemFS) resize(n *memInode, size int64) experimentalsys.Errno {
	old := int64(len(n.data))
	switch {
	case size == old:
	case size < old:
		if c := int64(cap(n.data)); size == 0 {
			n.data = nil
		} else if size < c/2 {
			// Give memory back: a guest must not keep host memory by
			// growing files and truncating them.
			n.data = append([]byte(nil), n.data[:size]...)
		} else {
			n.data = n.data[:size]
		}
		m.used -= old - size
	default:
		grow := size - old
		if grow > m.capBytes-m.used {
			return ENOSPC
		}
		if size > int64(cap(n.data)) {
			nc := 2 * int64(cap(n.data))
			if limit := size + (m.capBytes - m.used - grow); nc > limit {
				nc = limit // never reserve more than the cap allows
			}
			if nc < size {
				nc = size
			}
			nd := make([]byte, size, nc)
			copy(nd, n.data)
			n.data = nd
		} else {
			n.data = n.data[:size]
			clear(n.data[old:]) // bytes left over from an earlier shrink
		}
		m.used += grow
	}
	return 0
}

// writeAt implements pwrite semantics with the cap: see MemFS.
func (m *MemFS) writeAt(n *memInode, buf []byte, off int64) (int, experimentalsys.Errno) {
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	if len(buf) == 0 {
		return 0, 0
	}
	end := off + int64(len(buf))
	if end < off {
		return 0, experimentalsys.EINVAL // offset overflow
	}
	if size := int64(len(n.data)); end > size {
		if avail := m.capBytes - m.used; end-size > avail {
			allowedEnd := size + avail
			if allowedEnd <= off {
				return 0, ENOSPC
			}
			buf = buf[:allowedEnd-off]
			end = allowedEnd
		}
		if errno := m.resize(n, end); errno != 0 {
			return 0, errno
		}
	}
	copy(n.data[off:], buf)
	now := m.now()
	n.mtim, n.ctim = now, now
	return len(buf), 0
}

func (m *MemFS) statOf(n *memInode) sys.Stat_t {
	st := sys.Stat_t{
		Dev:  m.dev,
		Ino:  n.ino,
		Mode: n.mode,
		Atim: n.atim,
		Mtim: n.mtim,
		Ctim: n.ctim,
	}
	switch {
	case !n.linked:
		st.Nlink = 0
	case n.isDir():
		st.Nlink = 2 + uint64(n.subdirs)
	default:
		st.Nlink = 1
	}
	if !n.isDir() {
		st.Size = int64(len(n.data))
	}
	return st
}

func (m *MemFS) setTimes(n *memInode, atim, mtim int64) {
	if atim != experimentalsys.UTIME_OMIT {
		n.atim = atim
	}
	if mtim != experimentalsys.UTIME_OMIT {
		n.mtim = mtim
	}
	n.ctim = m.now()
}

// memAccess decodes the mutually exclusive access mode of an Oflag.
func memAccess(flag experimentalsys.Oflag) (readable, writable bool, errno experimentalsys.Errno) {
	switch flag & memFSAccModeMask {
	case experimentalsys.O_RDONLY:
		return true, false, 0
	case experimentalsys.O_WRONLY:
		return false, true, 0
	case experimentalsys.O_RDWR:
		return true, true, 0
	}
	return false, false, experimentalsys.EINVAL
}

// OpenFile implements experimentalsys.FS. O_NOFOLLOW, O_NONBLOCK and the
// sync flags are accepted and ignored (there are no symlinks, nothing blocks,
// everything is already "on disk"). O_TRUNC truncates even with O_RDONLY,
// like Linux.
func (m *MemFS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	readable, writable, errno := memAccess(flag)
	if errno != 0 {
		return nil, errno
	}
	m.mu.Lock()
	defer m.mu.Unlock()

	loc, errno := m.locate(p)
	if errno != 0 {
		return nil, errno
	}
	n := loc.node
	if n == nil {
		switch {
		case flag&experimentalsys.O_CREAT == 0:
			return nil, experimentalsys.ENOENT
		case flag&experimentalsys.O_DIRECTORY != 0:
			return nil, experimentalsys.EINVAL // O_CREAT|O_DIRECTORY: use Mkdir
		case loc.mustDir:
			return nil, experimentalsys.EISDIR // open("new/", O_CREAT)
		}
		if n, errno = m.newInode(perm & fs.ModePerm); errno != 0 {
			return nil, errno
		}
		m.attach(loc.parent, loc.name, n)
	} else {
		switch {
		case flag&(experimentalsys.O_CREAT|experimentalsys.O_EXCL) == experimentalsys.O_CREAT|experimentalsys.O_EXCL:
			return nil, experimentalsys.EEXIST
		case n.isDir() && (writable || flag&(experimentalsys.O_CREAT|experimentalsys.O_TRUNC) != 0):
			return nil, experimentalsys.EISDIR
		case !n.isDir() && (loc.mustDir || flag&experimentalsys.O_DIRECTORY != 0):
			return nil, experimentalsys.ENOTDIR
		}
		if !n.isDir() && flag&experimentalsys.O_TRUNC != 0 {
			_ = m.resize(n, 0) // shrinking cannot fail
			now := m.now()
			n.mtim, n.ctim = now, now
		}
	}
	n.opens++
	f := &memFile{
		fs:       m,
		node:     n,
		ino:      n.ino,
		isDir:    n.isDir(),
		readable: readable,
		writable: writable,
		append:   flag&experimentalsys.O_APPEND != 0,
	}
	f.seekFn = f.seek
	return f, 0
}

// Lstat implements experimentalsys.FS. There are no symlinks, so it is Stat.
func (m *MemFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	return m.Stat(p)
}

// Stat implements experimentalsys.FS.
func (m *MemFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, errno := m.existing(p)
	if errno != 0 {
		return sys.Stat_t{}, errno
	}
	return m.statOf(n), 0
}

// Mkdir implements experimentalsys.FS. An existing path of any type is
// EEXIST (as POSIX mkdir and wazero's DirFS on Linux).
func (m *MemFS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	loc, errno := m.locate(p)
	if errno != 0 {
		return errno
	}
	if loc.node != nil {
		return experimentalsys.EEXIST
	}
	n, errno := m.newInode(fs.ModeDir | perm&fs.ModePerm)
	if errno != 0 {
		return errno
	}
	m.attach(loc.parent, loc.name, n)
	return 0
}

// Chmod implements experimentalsys.FS. Permission bits are stored and
// reported but not enforced.
func (m *MemFS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, errno := m.existing(p)
	if errno != 0 {
		return errno
	}
	n.mode = n.mode&fs.ModeType | perm&fs.ModePerm
	n.ctim = m.now()
	return 0
}

// Rename implements experimentalsys.FS with POSIX rename(2) semantics: an
// existing file target is replaced (open handles to it keep working), an
// existing empty directory target is replaced by a directory, and a directory
// cannot move into its own subtree (EINVAL). Renaming the root is EINVAL.
func (m *MemFS) Rename(from, to string) experimentalsys.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	fl, errno := m.locate(from)
	if errno != 0 {
		return errno
	}
	tl, errno := m.locate(to)
	if errno != 0 {
		return errno
	}
	src, dst := fl.node, tl.node
	switch {
	case src == nil:
		return experimentalsys.ENOENT
	case fl.parent == nil || tl.parent == nil:
		return experimentalsys.EINVAL // the root cannot be renamed or replaced
	case fl.mustDir && !src.isDir():
		return experimentalsys.ENOTDIR
	case src == dst:
		return 0
	}
	if src.isDir() {
		for d := tl.parent; d != nil; d = d.parent {
			if d == src {
				return experimentalsys.EINVAL
			}
		}
		if dst != nil {
			if !dst.isDir() {
				return experimentalsys.ENOTDIR
			}
			if len(dst.names) > 0 {
				return experimentalsys.ENOTEMPTY
			}
		}
	} else {
		if dst != nil && dst.isDir() {
			return experimentalsys.EISDIR
		}
		if tl.mustDir {
			return experimentalsys.ENOTDIR
		}
	}
	if dst != nil {
		m.detach(tl.parent, tl.name)
		m.release(dst)
	}
	m.detach(fl.parent, fl.name)
	m.attach(tl.parent, tl.name, src)
	return 0
}

// Rmdir implements experimentalsys.FS. Removing the root is EINVAL (like
// rmdir(".")).
func (m *MemFS) Rmdir(p string) experimentalsys.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	loc, errno := m.locate(p)
	if errno != 0 {
		return errno
	}
	n := loc.node
	switch {
	case n == nil:
		return experimentalsys.ENOENT
	case loc.parent == nil:
		return experimentalsys.EINVAL
	case !n.isDir():
		return experimentalsys.ENOTDIR
	case len(n.names) > 0:
		return experimentalsys.ENOTEMPTY
	}
	m.detach(loc.parent, loc.name)
	m.release(n)
	return 0
}

// Unlink implements experimentalsys.FS. Directories are EISDIR (Linux).
func (m *MemFS) Unlink(p string) experimentalsys.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	loc, errno := m.locate(p)
	if errno != 0 {
		return errno
	}
	n := loc.node
	switch {
	case n == nil:
		return experimentalsys.ENOENT
	case n.isDir():
		return experimentalsys.EISDIR
	case loc.mustDir:
		return experimentalsys.ENOTDIR
	}
	m.detach(loc.parent, loc.name)
	m.release(n)
	return 0
}

// Link implements experimentalsys.FS. Hard links are not supported: EPERM
// (POSIX: "the file system does not support links") once both paths check out.
func (m *MemFS) Link(oldPath, newPath string) experimentalsys.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, errno := m.existing(oldPath); errno != 0 {
		return errno
	}
	loc, errno := m.locate(newPath)
	if errno != 0 {
		return errno
	}
	if loc.node != nil {
		return experimentalsys.EEXIST
	}
	return experimentalsys.EPERM
}

// Symlink implements experimentalsys.FS. Symbolic links are not supported:
// EPERM unless linkName already exists (EEXIST).
func (m *MemFS) Symlink(_, linkName string) experimentalsys.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	loc, errno := m.locate(linkName)
	if errno != 0 {
		return errno
	}
	if loc.node != nil {
		return experimentalsys.EEXIST
	}
	return experimentalsys.EPERM
}

// Readlink implements experimentalsys.FS. Nothing is a symlink, so an
// existing path is EINVAL, exactly what readlink(2) reports for a
// non-link (and what Python's os.readlink callers test for); a missing one is
// ENOENT.
func (m *MemFS) Readlink(p string) (string, experimentalsys.Errno) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, errno := m.existing(p); errno != 0 {
		return "", errno
	}
	return "", experimentalsys.EINVAL
}

// Utimens implements experimentalsys.FS. UTIME_OMIT keeps a time.
func (m *MemFS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, errno := m.existing(p)
	if errno != 0 {
		return errno
	}
	m.setTimes(n, atim, mtim)
	return 0
}

// vetSafeSeek is embedded by every File type in this file to provide Seek
// (which forwards to seekFn) and, through UnimplementedFile, forward
// compatibility with methods wazero may add to File.
//
// Why generic: wazero's File.Seek returns (int64, Errno), and go vet's
// stdmethods check reports any method named Seek whose first parameter is
// int64 but whose results are not (int64, error). It cannot see through a
// type parameter, so declaring Seek here keeps `go vet` clean without turning
// the check off. Instantiated with int64 the method has exactly the signature
// experimentalsys.File requires (checked by the assertions below).
type vetSafeSeek[Off ~int64] struct {
	experimentalsys.UnimplementedFile
	seekFn func(offset Off, whence int) (int64, experimentalsys.Errno)
}

// Seek implements experimentalsys.File.
func (s *vetSafeSeek[Off]) Seek(offset Off, whence int) (int64, experimentalsys.Errno) {
	return s.seekFn(offset, whence)
}

var (
	_ experimentalsys.File = (*devDirFile)(nil)
	_ experimentalsys.File = (*devNullFile)(nil)
)

// memFile is an open MemFS file or directory. All state is guarded by the
// filesystem's mutex.
type memFile struct {
	vetSafeSeek[int64]

	fs    *MemFS
	node  *memInode
	ino   sys.Inode // immutable copies, readable without the lock
	isDir bool

	readable, writable, append bool
	closed                     bool
	off                        int64

	// dirCursor is the last name Readdir returned ("" = start). Listing
	// resumes after it in sorted order, so entries added or removed between
	// calls never cause duplicates or skip unchanged entries.
	dirCursor string
}

var _ experimentalsys.File = (*memFile)(nil)

// Dev implements experimentalsys.File.
func (f *memFile) Dev() (uint64, experimentalsys.Errno) { return f.fs.dev, 0 }

// Ino implements experimentalsys.File.
func (f *memFile) Ino() (sys.Inode, experimentalsys.Errno) { return f.ino, 0 }

// IsDir implements experimentalsys.File.
func (f *memFile) IsDir() (bool, experimentalsys.Errno) { return f.isDir, 0 }

// IsAppend implements experimentalsys.File.
func (f *memFile) IsAppend() bool {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.append
}

// SetAppend implements experimentalsys.File.
func (f *memFile) SetAppend(enable bool) experimentalsys.Errno {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return experimentalsys.EBADF
	}
	if f.isDir {
		return experimentalsys.EISDIR
	}
	f.append = enable
	return 0
}

// Stat implements experimentalsys.File.
func (f *memFile) Stat() (sys.Stat_t, experimentalsys.Errno) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return sys.Stat_t{}, experimentalsys.EBADF
	}
	return f.fs.statOf(f.node), 0
}

func (f *memFile) readCheck() experimentalsys.Errno {
	switch {
	case f.closed:
		return experimentalsys.EBADF
	case f.isDir:
		return experimentalsys.EISDIR
	case !f.readable:
		return experimentalsys.EBADF
	}
	return 0
}

func (f *memFile) writeCheck() experimentalsys.Errno {
	switch {
	case f.closed:
		return experimentalsys.EBADF
	case f.isDir:
		return experimentalsys.EISDIR
	case !f.writable:
		return experimentalsys.EBADF
	}
	return 0
}

func (f *memFile) readAt(buf []byte, off int64) int {
	if off >= int64(len(f.node.data)) {
		return 0
	}
	return copy(buf, f.node.data[off:])
}

// Read implements experimentalsys.File. End of file is (0, 0).
func (f *memFile) Read(buf []byte) (int, experimentalsys.Errno) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if errno := f.readCheck(); errno != 0 {
		return 0, errno
	}
	n := f.readAt(buf, f.off)
	f.off += int64(n)
	return n, 0
}

// Pread implements experimentalsys.File.
func (f *memFile) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if errno := f.readCheck(); errno != 0 {
		return 0, errno
	}
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	return f.readAt(buf, off), 0
}

// seek implements experimentalsys.File.Seek. Seeking past the end is
// allowed; a later write there zero-fills the gap. On a directory only
// Seek(0, io.SeekStart) is allowed, and it rewinds Readdir.
func (f *memFile) seek(offset int64, whence int) (int64, experimentalsys.Errno) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	if f.isDir {
		if offset == 0 && whence == io.SeekStart {
			f.dirCursor = ""
			return 0, 0
		}
		return 0, experimentalsys.EISDIR
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = f.off
	case io.SeekEnd:
		base = int64(len(f.node.data))
	default:
		return 0, experimentalsys.EINVAL
	}
	newOff := base + offset
	if newOff < 0 || (offset > 0 && newOff < base) {
		return 0, experimentalsys.EINVAL
	}
	f.off = newOff
	return newOff, 0
}

// Readdir implements experimentalsys.File: up to n (n<=0: all remaining)
// entries in byte-wise name order, excluding "." and "..".
func (f *memFile) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	switch {
	case f.closed, !f.isDir:
		return nil, experimentalsys.EBADF
	case !f.node.linked:
		return nil, experimentalsys.ENOENT // removed while open
	}
	names := f.node.names
	start, found := slices.BinarySearch(names, f.dirCursor)
	if found {
		start++
	}
	end := len(names)
	if n > 0 && end-start > n {
		end = start + n
	}
	if start >= end {
		return nil, 0
	}
	dirents := make([]experimentalsys.Dirent, 0, end-start)
	for _, name := range names[start:end] {
		c := f.node.children[name]
		dirents = append(dirents, experimentalsys.Dirent{Ino: c.ino, Name: name, Type: c.mode.Type()})
	}
	f.dirCursor = names[end-1]
	return dirents, 0
}

// Write implements experimentalsys.File; see MemFS for behaviour at the cap.
// With O_APPEND every write goes to the current end of file.
func (f *memFile) Write(buf []byte) (int, experimentalsys.Errno) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if errno := f.writeCheck(); errno != 0 {
		return 0, errno
	}
	if len(buf) == 0 {
		return 0, 0
	}
	off := f.off
	if f.append {
		off = int64(len(f.node.data))
	}
	n, errno := f.fs.writeAt(f.node, buf, off)
	f.off = off + int64(n)
	return n, errno
}

// Pwrite implements experimentalsys.File. It writes at off even with
// O_APPEND (POSIX; Linux would append) and does not move the offset.
func (f *memFile) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if errno := f.writeCheck(); errno != 0 {
		return 0, errno
	}
	return f.fs.writeAt(f.node, buf, off)
}

// Truncate implements experimentalsys.File. Growth zero-fills and counts
// against the cap (ENOSPC, nothing changed). A handle not open for writing
// gets EINVAL, as ftruncate(2) on Linux.
func (f *memFile) Truncate(size int64) experimentalsys.Errno {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	switch {
	case f.closed:
		return experimentalsys.EBADF
	case f.isDir:
		return experimentalsys.EISDIR
	case size < 0, !f.writable:
		return experimentalsys.EINVAL
	}
	if errno := f.fs.resize(f.node, size); errno != 0 {
		return errno
	}
	now := f.fs.now()
	f.node.mtim, f.node.ctim = now, now
	return 0
}

// Sync implements experimentalsys.File.
func (f *memFile) Sync() experimentalsys.Errno { return f.syncCheck() }

// Datasync implements experimentalsys.File.
func (f *memFile) Datasync() experimentalsys.Errno { return f.syncCheck() }

func (f *memFile) syncCheck() experimentalsys.Errno {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return experimentalsys.EBADF
	}
	return 0
}

// Utimens implements experimentalsys.File.
func (f *memFile) Utimens(atim, mtim int64) experimentalsys.Errno {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return experimentalsys.EBADF
	}
	f.fs.setTimes(f.node, atim, mtim)
	return 0
}

// Close implements experimentalsys.File. Closing the last handle of an
// unlinked file releases its bytes.
func (f *memFile) Close() experimentalsys.Errno {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0
	}
	f.closed = true
	f.node.opens--
	f.fs.release(f.node)
	return 0
}
