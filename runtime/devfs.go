package runtime

// /dev in each sandboxed guest: a read-only directory holding one working
// device, "null". Like MemFS (memfs.go, whose notes on wazero's conventions
// apply here too) it implements wazero's experimental/sys.FS.

import (
	"io"
	"io/fs"
	"sync"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// devFS is the read-only /dev: a root directory holding only "null".
type devFS struct {
	experimentalsys.UnimplementedFS
	dev  uint64
	born int64
}

const (
	devFSRootIno sys.Inode = 1
	devFSNullIno sys.Inode = 2
	devNullMode            = fs.ModeDevice | fs.ModeCharDevice | 0o666
)

// NewDevFS returns a read-only directory holding a single character device "null":
// reads return EOF, writes (and pwrite, truncate) succeed and discard, it can be opened
// for read, write, read+write, append, with O_CREAT or O_TRUNC (as Python's open('/dev/null', 'wb') and 'r+b' do),
// stat reports a character device (fs.ModeDevice|fs.ModeCharDevice|0666).
//
// Anything that would create, remove, rename or chmod an entry fails with
// EROFS (or ENOENT/EEXIST where those come first, as on Linux).
func NewDevFS() experimentalsys.FS {
	return &devFS{dev: memFSNextDev.Add(1), born: time.Now().UnixNano()}
}

type devEntry int

const (
	devMissing devEntry = iota // missing name directly under the root
	devRoot
	devNull
)

// lookup resolves p. ENOENT is returned only when a parent is missing, so
// that devMissing can be turned into EROFS by creating operations.
func (d *devFS) lookup(p string) (devEntry, bool, experimentalsys.Errno) {
	parts, mustDir, errno := splitMemPath(p)
	switch {
	case errno != 0:
		return 0, false, errno
	case len(parts) == 0:
		return devRoot, true, 0
	case parts[0] == "null" && len(parts) == 1:
		if mustDir {
			return 0, false, experimentalsys.ENOTDIR
		}
		return devNull, false, 0
	case parts[0] == "null":
		return 0, false, experimentalsys.ENOTDIR
	case len(parts) == 1:
		return devMissing, false, 0
	}
	return 0, false, experimentalsys.ENOENT
}

// existing resolves p to an existing entry.
func (d *devFS) existing(p string) (devEntry, experimentalsys.Errno) {
	e, _, errno := d.lookup(p)
	if errno == 0 && e == devMissing {
		errno = experimentalsys.ENOENT
	}
	return e, errno
}

func (d *devFS) stat(e devEntry) sys.Stat_t {
	if e == devRoot {
		return sys.Stat_t{Dev: d.dev, Ino: devFSRootIno, Mode: fs.ModeDir | 0o755, Nlink: 2, Atim: d.born, Mtim: d.born, Ctim: d.born}
	}
	return sys.Stat_t{Dev: d.dev, Ino: devFSNullIno, Mode: devNullMode, Nlink: 1, Atim: d.born, Mtim: d.born, Ctim: d.born}
}

// OpenFile implements experimentalsys.FS.
func (d *devFS) OpenFile(p string, flag experimentalsys.Oflag, _ fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	readable, writable, errno := memAccess(flag)
	if errno != 0 {
		return nil, errno
	}
	e, _, errno := d.lookup(p)
	if errno != 0 {
		return nil, errno
	}
	excl := flag&(experimentalsys.O_CREAT|experimentalsys.O_EXCL) == experimentalsys.O_CREAT|experimentalsys.O_EXCL
	switch e {
	case devMissing:
		if flag&experimentalsys.O_CREAT != 0 {
			return nil, experimentalsys.EROFS
		}
		return nil, experimentalsys.ENOENT
	case devRoot:
		switch {
		case excl:
			return nil, experimentalsys.EEXIST
		case writable || flag&(experimentalsys.O_CREAT|experimentalsys.O_TRUNC) != 0:
			return nil, experimentalsys.EISDIR
		}
		f := &devDirFile{d: d}
		f.seekFn = f.seek
		return f, 0
	}
	switch {
	case excl:
		return nil, experimentalsys.EEXIST
	case flag&experimentalsys.O_DIRECTORY != 0:
		return nil, experimentalsys.ENOTDIR
	}
	f := &devNullFile{d: d, readable: readable, writable: writable, append: flag&experimentalsys.O_APPEND != 0}
	f.seekFn = f.seek
	return f, 0
}

// Lstat implements experimentalsys.FS.
func (d *devFS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) { return d.Stat(p) }

// Stat implements experimentalsys.FS.
func (d *devFS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	e, errno := d.existing(p)
	if errno != 0 {
		return sys.Stat_t{}, errno
	}
	return d.stat(e), 0
}

// creating is the errno of an operation that would create the entry p.
func (d *devFS) creating(p string) experimentalsys.Errno {
	e, _, errno := d.lookup(p)
	switch {
	case errno != 0:
		return errno
	case e != devMissing:
		return experimentalsys.EEXIST
	}
	return experimentalsys.EROFS
}

// modifying is the errno of an operation that would change the entry p.
func (d *devFS) modifying(p string) experimentalsys.Errno {
	if _, errno := d.existing(p); errno != 0 {
		return errno
	}
	return experimentalsys.EROFS
}

// Mkdir implements experimentalsys.FS.
func (d *devFS) Mkdir(p string, _ fs.FileMode) experimentalsys.Errno { return d.creating(p) }

// Chmod implements experimentalsys.FS.
func (d *devFS) Chmod(p string, _ fs.FileMode) experimentalsys.Errno { return d.modifying(p) }

// Rename implements experimentalsys.FS.
func (d *devFS) Rename(from, to string) experimentalsys.Errno {
	if errno := d.modifying(from); errno != experimentalsys.EROFS {
		return errno
	}
	if _, _, errno := d.lookup(to); errno != 0 {
		return errno
	}
	return experimentalsys.EROFS
}

// Rmdir implements experimentalsys.FS.
func (d *devFS) Rmdir(p string) experimentalsys.Errno {
	e, errno := d.existing(p)
	switch {
	case errno != 0:
		return errno
	case e == devNull:
		return experimentalsys.ENOTDIR
	}
	return experimentalsys.EROFS
}

// Unlink implements experimentalsys.FS.
func (d *devFS) Unlink(p string) experimentalsys.Errno {
	e, errno := d.existing(p)
	switch {
	case errno != 0:
		return errno
	case e == devRoot:
		return experimentalsys.EISDIR
	}
	return experimentalsys.EROFS
}

// Link implements experimentalsys.FS.
func (d *devFS) Link(oldPath, newPath string) experimentalsys.Errno {
	if _, errno := d.existing(oldPath); errno != 0 {
		return errno
	}
	return d.creating(newPath)
}

// Symlink implements experimentalsys.FS.
func (d *devFS) Symlink(_, linkName string) experimentalsys.Errno { return d.creating(linkName) }

// Readlink implements experimentalsys.FS: nothing is a link.
func (d *devFS) Readlink(p string) (string, experimentalsys.Errno) {
	if _, errno := d.existing(p); errno != 0 {
		return "", errno
	}
	return "", experimentalsys.EINVAL
}

// Utimens implements experimentalsys.FS: accepted and ignored on "null"
// (touch /dev/null works), EROFS on the directory.
func (d *devFS) Utimens(p string, _, _ int64) experimentalsys.Errno {
	e, errno := d.existing(p)
	switch {
	case errno != 0:
		return errno
	case e == devRoot:
		return experimentalsys.EROFS
	}
	return 0
}

// devDirFile is an open /dev directory.
type devDirFile struct {
	vetSafeSeek[int64]
	d      *devFS
	mu     sync.Mutex
	closed bool
	listed bool // Readdir already returned "null"
}

func (f *devDirFile) check() experimentalsys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return experimentalsys.EBADF
	}
	return 0
}

func (f *devDirFile) Dev() (uint64, experimentalsys.Errno)      { return f.d.dev, 0 }
func (f *devDirFile) Ino() (sys.Inode, experimentalsys.Errno)   { return devFSRootIno, 0 }
func (f *devDirFile) IsDir() (bool, experimentalsys.Errno)      { return true, 0 }
func (f *devDirFile) IsAppend() bool                            { return false }
func (f *devDirFile) Sync() experimentalsys.Errno               { return f.check() }
func (f *devDirFile) Datasync() experimentalsys.Errno           { return f.check() }
func (f *devDirFile) SetAppend(bool) experimentalsys.Errno      { return f.dirErr() }
func (f *devDirFile) Read([]byte) (int, experimentalsys.Errno)  { return 0, f.dirErr() }
func (f *devDirFile) Write([]byte) (int, experimentalsys.Errno) { return 0, f.dirErr() }
func (f *devDirFile) Truncate(int64) experimentalsys.Errno      { return f.dirErr() }
func (f *devDirFile) Pread([]byte, int64) (int, experimentalsys.Errno) {
	return 0, f.dirErr()
}
func (f *devDirFile) Pwrite([]byte, int64) (int, experimentalsys.Errno) {
	return 0, f.dirErr()
}

// dirErr is EISDIR, or EBADF once closed.
func (f *devDirFile) dirErr() experimentalsys.Errno {
	if errno := f.check(); errno != 0 {
		return errno
	}
	return experimentalsys.EISDIR
}

func (f *devDirFile) Stat() (sys.Stat_t, experimentalsys.Errno) {
	if errno := f.check(); errno != 0 {
		return sys.Stat_t{}, errno
	}
	return f.d.stat(devRoot), 0
}

func (f *devDirFile) Utimens(int64, int64) experimentalsys.Errno {
	if errno := f.check(); errno != 0 {
		return errno
	}
	return experimentalsys.EROFS
}

func (f *devDirFile) seek(offset int64, whence int) (int64, experimentalsys.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed:
		return 0, experimentalsys.EBADF
	case offset != 0 || whence != io.SeekStart:
		return 0, experimentalsys.EISDIR
	}
	f.listed = false
	return 0, 0
}

func (f *devDirFile) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, experimentalsys.EBADF
	}
	if f.listed {
		return nil, 0
	}
	f.listed = true
	return []experimentalsys.Dirent{{Ino: devFSNullIno, Name: "null", Type: devNullMode.Type()}}, 0
}

func (f *devDirFile) Close() experimentalsys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return 0
}

// devNullFile is an open /dev/null.
type devNullFile struct {
	vetSafeSeek[int64]
	d                                  *devFS
	mu                                 sync.Mutex
	readable, writable, append, closed bool
}

func (f *devNullFile) Dev() (uint64, experimentalsys.Errno)    { return f.d.dev, 0 }
func (f *devNullFile) Ino() (sys.Inode, experimentalsys.Errno) { return devFSNullIno, 0 }
func (f *devNullFile) IsDir() (bool, experimentalsys.Errno)    { return false, 0 }

func (f *devNullFile) IsAppend() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.append
}

func (f *devNullFile) SetAppend(enable bool) experimentalsys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return experimentalsys.EBADF
	}
	f.append = enable
	return 0
}

func (f *devNullFile) check(needRead, needWrite bool) experimentalsys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.closed, needRead && !f.readable, needWrite && !f.writable:
		return experimentalsys.EBADF
	}
	return 0
}

func (f *devNullFile) Stat() (sys.Stat_t, experimentalsys.Errno) {
	if errno := f.check(false, false); errno != 0 {
		return sys.Stat_t{}, errno
	}
	return f.d.stat(devNull), 0
}

// Read implements experimentalsys.File: always end of file.
func (f *devNullFile) Read([]byte) (int, experimentalsys.Errno) {
	return 0, f.check(true, false)
}

func (f *devNullFile) Pread(_ []byte, off int64) (int, experimentalsys.Errno) {
	if errno := f.check(true, false); errno != 0 {
		return 0, errno
	}
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	return 0, 0
}

// Write implements experimentalsys.File: discards everything.
func (f *devNullFile) Write(buf []byte) (int, experimentalsys.Errno) {
	if errno := f.check(false, true); errno != 0 {
		return 0, errno
	}
	return len(buf), 0
}

func (f *devNullFile) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if errno := f.check(false, true); errno != 0 {
		return 0, errno
	}
	if off < 0 {
		return 0, experimentalsys.EINVAL
	}
	return len(buf), 0
}

// seek implements experimentalsys.File.Seek: like Linux, the offset stays 0.
func (f *devNullFile) seek(_ int64, whence int) (int64, experimentalsys.Errno) {
	if errno := f.check(false, false); errno != 0 {
		return 0, errno
	}
	if whence < io.SeekStart || whence > io.SeekEnd {
		return 0, experimentalsys.EINVAL
	}
	return 0, 0
}

func (f *devNullFile) Readdir(int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	return nil, experimentalsys.EBADF // closed or not a directory
}

func (f *devNullFile) Truncate(size int64) experimentalsys.Errno {
	if errno := f.check(false, false); errno != 0 {
		return errno
	}
	if size < 0 || !f.writable {
		return experimentalsys.EINVAL
	}
	return 0
}

func (f *devNullFile) Sync() experimentalsys.Errno     { return f.check(false, false) }
func (f *devNullFile) Datasync() experimentalsys.Errno { return f.check(false, false) }

func (f *devNullFile) Utimens(int64, int64) experimentalsys.Errno { return f.check(false, false) }

func (f *devNullFile) Close() experimentalsys.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return 0
}
