// Package bundle owns the modules and pure-Python packages a function
// carries with it ("bundles"): the checks a bundle passes before anything
// stores it (Build: a real zip of Python source and data files, relative
// paths, no links, no compiled extensions, caps on files and bytes, a guard
// against zip bombs), its canonical form and content hash (one copy per
// distinct bundle), and the read-only file tree a sandbox mounts on
// sys.path (Open, Tree).
//
// It runs no code and imports only the standard library: the API, the
// sandbox host and the workers all use it.
package bundle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits cap a bundle. Zero fields take DefaultLimits'.
type Limits struct {
	MaxFiles int   // files, after __pycache__ and .pyc files are dropped
	MaxBytes int64 // all files uncompressed, together
	// MaxZipBytes caps the canonical zip, what is stored and sent to
	// workers (whose messages make room for 16 MiB: wire.BundleRoom).
	MaxZipBytes int64
}

// DefaultLimits are the caps the API applies unless told otherwise.
var DefaultLimits = Limits{MaxFiles: 4096, MaxBytes: 32 << 20, MaxZipBytes: 16 << 20}

// WithDefaults returns l with its zero fields taken from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxZipBytes <= 0 {
		l.MaxZipBytes = DefaultLimits.MaxZipBytes
	}
	return l
}

// Error is why a bundle is refused. TooLarge marks a cap (files or bytes),
// which the API answers with 413; every other refusal is a 400.
type Error struct {
	TooLarge bool
	Msg      string
}

func (e *Error) Error() string { return "bundle: " + e.Msg }

func refuse(format string, args ...any) error {
	return &Error{Msg: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) error {
	return &Error{TooLarge: true, Msg: fmt.Sprintf(format, args...)}
}

// Bundle is a checked bundle in canonical form.
type Bundle struct {
	// Hash is the hex SHA-256 of the bundle's content (sorted paths and
	// bytes), the name it is stored and fetched under.
	Hash string
	// Zip is the canonical zip: files sorted by path, deflated, no
	// directory entries, no timestamps or extra fields.
	Zip   []byte
	Files int
	Bytes int64 // uncompressed
	// Modules are the top-level module and package names the bundle makes
	// importable, sorted.
	Modules []string
}

type file struct {
	name string
	data []byte
}

// Build checks a bundle given as a zip (data, may be nil) and/or as source
// files by relative path (modules, may be nil) and returns its canonical
// form. The two are merged; a path in both is an error. reserved, if not
// nil, names top-level modules a bundle may not provide (the standard
// library's, which the sandbox's own code imports).
//
// Refused: anything that is not a zip, encrypted entries, paths that are
// absolute, hold "..", backslashes, control characters or are not clean,
// symbolic links and other non-regular files, compiled extensions (.so,
// .pyd, .dll, .dylib), duplicate paths, a file where another path needs a
// directory, an empty bundle, and bundles over lim (files or uncompressed
// bytes; declared sizes are checked before anything is inflated, and
// inflating stops at the cap whatever the headers claim). Compiled
// bytecode (__pycache__ directories, .pyc and .pyo files) is dropped: the
// sandbox compiles from source.
func Build(data []byte, modules map[string]string, lim Limits, reserved func(string) bool) (*Bundle, error) {
	lim = lim.WithDefaults()
	var files []file
	var total int64
	if data != nil {
		var err error
		if files, total, err = readZip(data, lim); err != nil {
			return nil, err
		}
	}
	for name, text := range modules {
		if err := checkPath(name); err != nil {
			return nil, err
		}
		if strings.HasSuffix(name, "/") {
			return nil, refuse("module path %q names a directory; give files", name)
		}
		if ext := extension(name); ext != "" {
			return nil, refuse("%q is a compiled extension (%s): the sandbox runs pure-Python code only", name, ext)
		}
		if dropped(name) {
			continue
		}
		total += int64(len(text))
		files = append(files, file{name: name, data: []byte(text)})
	}
	if len(files) > lim.MaxFiles {
		return nil, tooLarge("%d files, over the limit of %d", len(files), lim.MaxFiles)
	}
	if total > lim.MaxBytes {
		return nil, tooLarge("%d bytes uncompressed, over the limit of %d", total, lim.MaxBytes)
	}
	if len(files) == 0 {
		return nil, refuse("no files (after dropping compiled bytecode)")
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	if err := checkTree(files); err != nil {
		return nil, err
	}
	mods := topModules(files)
	if reserved != nil {
		for _, m := range mods {
			if reserved(m) {
				return nil, refuse("top-level module %q would shadow the module of that name the sandbox already has "+
					"(standard library or dill); rename it", m)
			}
		}
	}
	z, err := canonicalZip(files)
	if err != nil {
		return nil, fmt.Errorf("bundle: write canonical zip: %w", err)
	}
	if int64(len(z)) > lim.MaxZipBytes {
		return nil, tooLarge("%d bytes compressed, over the limit of %d", len(z), lim.MaxZipBytes)
	}
	return &Bundle{Hash: contentHash(files), Zip: z, Files: len(files), Bytes: total, Modules: mods}, nil
}

// readZip checks and inflates the files of a zip.
func readZip(data []byte, lim Limits) ([]file, int64, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, 0, refuse("not a valid zip archive: %v", err)
	}
	// Cheap checks first, on the central directory alone. Entries that are
	// not kept (directories, bytecode) count too, within a wider cap.
	if n := len(zr.File); n > 4*lim.MaxFiles {
		return nil, 0, tooLarge("%d zip entries, over the limit of %d (4 times the file limit)", n, 4*lim.MaxFiles)
	}
	var declared uint64
	kept := 0
	for _, f := range zr.File {
		if err := checkEntry(f); err != nil {
			return nil, 0, err
		}
		if f.FileInfo().IsDir() || dropped(f.Name) {
			continue
		}
		kept++
		declared += min(f.UncompressedSize64, 1<<62) // no wrap-around
	}
	if kept > lim.MaxFiles {
		return nil, 0, tooLarge("%d files, over the limit of %d", kept, lim.MaxFiles)
	}
	if declared > uint64(lim.MaxBytes) {
		return nil, 0, tooLarge("%d bytes uncompressed, over the limit of %d", declared, lim.MaxBytes)
	}
	files := make([]file, 0, kept)
	var total int64
	for _, f := range zr.File {
		if f.FileInfo().IsDir() || dropped(f.Name) {
			continue
		}
		b, err := inflate(f, lim.MaxBytes-total)
		if err != nil {
			return nil, 0, err
		}
		total += int64(len(b))
		files = append(files, file{name: f.Name, data: b})
	}
	return files, total, nil
}

// checkEntry refuses a zip entry for what its header says.
func checkEntry(f *zip.File) error {
	if err := checkPath(f.Name); err != nil {
		return err
	}
	if f.Flags&0x1 != 0 {
		return refuse("%q is encrypted", f.Name)
	}
	mode := f.Mode()
	switch {
	case mode&fs.ModeSymlink != 0:
		return refuse("%q is a symbolic link; bundles hold regular files only", f.Name)
	case mode.Type() != 0 && !mode.IsDir():
		return refuse("%q is not a regular file (%v)", f.Name, mode.Type())
	case mode.IsDir() && !strings.HasSuffix(f.Name, "/"):
		return refuse("%q is a directory entry without a trailing slash", f.Name)
	}
	if !mode.IsDir() {
		if ext := extension(f.Name); ext != "" {
			return refuse("%q is a compiled extension (%s): the sandbox runs pure-Python code only", f.Name, ext)
		}
	}
	return nil
}

// checkPath refuses a path that could leave the bundle or is ambiguous.
func checkPath(name string) error {
	switch {
	case name == "":
		return refuse("an entry has an empty path")
	case len(name) > 1024:
		return refuse("a path of %d bytes is over the limit of 1024", len(name))
	case !utf8.ValidString(name):
		return refuse("path %q is not UTF-8", name)
	case strings.ContainsRune(name, '\\'):
		return refuse("path %q holds a backslash; use forward slashes", name)
	case strings.HasPrefix(name, "/") || (len(name) >= 2 && name[1] == ':'):
		return refuse("path %q is absolute; bundle paths are relative", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return refuse("path %q holds a control character", name)
		}
	}
	trimmed := strings.TrimSuffix(name, "/")
	for _, part := range strings.Split(trimmed, "/") {
		if part == ".." {
			return refuse("path %q holds \"..\"", name)
		}
	}
	if path.Clean(trimmed) != trimmed || trimmed == "." {
		return refuse("path %q is not clean (no \".\", empty or repeated separators)", name)
	}
	return nil
}

// extension names the compiled-extension suffix of name, if it has one.
func extension(name string) string {
	base := strings.ToLower(path.Base(name))
	for _, ext := range []string{".so", ".pyd", ".dll", ".dylib"} {
		if strings.HasSuffix(base, ext) {
			return ext
		}
	}
	if strings.Contains(base, ".so.") {
		return ".so"
	}
	return ""
}

// dropped says a file is compiled bytecode, which a bundle leaves out.
func dropped(name string) bool {
	if strings.HasSuffix(name, ".pyc") || strings.HasSuffix(name, ".pyo") {
		return true
	}
	return slices.Contains(strings.Split(name, "/"), "__pycache__")
}

// inflate reads one entry, at most limit bytes of it.
func inflate(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, refuse("%q cannot be read: %v", f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		if errors.Is(err, zip.ErrChecksum) || errors.Is(err, zip.ErrFormat) || errors.Is(err, zip.ErrAlgorithm) {
			return nil, refuse("%q is corrupt: %v", f.Name, err)
		}
		return nil, refuse("%q cannot be inflated: %v", f.Name, err)
	}
	if int64(len(b)) > limit {
		return nil, tooLarge("%q inflates past the limit on uncompressed bytes (a zip bomb?)", f.Name)
	}
	return b, nil
}

// checkTree refuses duplicate paths and a file that is also a directory;
// files must be sorted by name.
func checkTree(files []file) error {
	names := make(map[string]bool, len(files))
	for _, f := range files {
		if names[f.name] {
			return refuse("path %q is given twice", f.name)
		}
		names[f.name] = true
	}
	for _, f := range files {
		for dir := path.Dir(f.name); dir != "."; dir = path.Dir(dir) {
			if names[dir] {
				return refuse("%q is a file, but %q needs it to be a directory", dir, f.name)
			}
		}
	}
	return nil
}

// topModules lists the importable top-level names: packages (directories
// named as identifiers, with or without __init__.py) and .py modules.
func topModules(files []file) []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		top, rest, isDir := strings.Cut(f.name, "/")
		name := ""
		switch {
		case isDir && rest != "":
			name = top
		case strings.HasSuffix(top, ".py"):
			name = strings.TrimSuffix(top, ".py")
		}
		if name != "" && identifier(name) && !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func identifier(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// contentHash is the SHA-256 of the sorted files: for each, its path, a
// NUL, its length as a varint and its bytes.
func contentHash(files []file) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, f := range files {
		io.WriteString(h, f.name)
		h.Write([]byte{0})
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(f.data)))])
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func canonicalZip(files []file) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	// Deflate's fastest level, and one compressor for all files (a new one
	// allocates 600 kB): a bundle is written once per registration.
	var fw *flate.Writer
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		if fw == nil {
			var err error
			fw, err = flate.NewWriter(w, flate.BestSpeed)
			return fw, err
		}
		fw.Reset(w)
		return fw, nil
	})
	for _, f := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Weight is what a bundle's zip costs in memory once opened: its files'
// declared sizes (Open refuses a zip whose files are not their declared
// sizes) plus the zip itself. Caches of open bundles weigh them by it; a
// zip that does not parse weighs its length.
func Weight(data []byte) int64 {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return int64(len(data))
	}
	w := int64(len(data))
	for _, f := range zr.File {
		w += int64(min(f.UncompressedSize64, 1<<40))
	}
	return w
}

// MaxOpen are the largest caps Open takes: a bundle Build accepted under
// larger ones does not open in a sandbox.
var MaxOpen = Limits{MaxFiles: 1 << 16, MaxBytes: 1 << 30, MaxZipBytes: 1 << 30}

// ValidHash says s looks like a bundle hash (64 lowercase hex digits).
func ValidHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
