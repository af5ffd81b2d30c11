package runtime

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed pybuild/build.sh pybuild/shim.c
var recipeFS embed.FS

// RecipeHash is the cache key of the guest image this binary expects; it
// matches the one pybuild/build.sh computes.
func RecipeHash() string {
	var all []byte
	for _, name := range []string{"pybuild/build.sh", "pybuild/shim.c"} {
		b, err := recipeFS.ReadFile(name)
		if err != nil {
			panic("runtime: embedded recipe missing: " + err.Error())
		}
		all = append(all, b...)
	}
	sum := sha256.Sum256(all)
	return hex.EncodeToString(sum[:])[:16]
}

// CacheDir is where images, compiled code and snapshots live:
// $FAAS_CACHE, else $XDG_CACHE_HOME/wasmfaas, else ~/.cache/wasmfaas.
func CacheDir() string {
	if d := os.Getenv("FAAS_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "wasmfaas")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "wasmfaas")
	}
	return filepath.Join(os.TempDir(), "wasmfaas")
}

// DefaultImageDir is where pybuild/build.sh puts the image for this recipe.
func DefaultImageDir() string {
	return filepath.Join(CacheDir(), "python-"+RecipeHash())
}

// Image is a built guest: the reactor module and its read-only library tree.
type Image struct {
	Dir  string // holds python.wasm and lib/
	Wasm []byte
	Hash string // hex SHA-256 of Wasm
}

// ErrNoImage means the guest image has not been built.
var ErrNoImage = errors.New("sandbox image not built")

// LoadImage reads the image in dir ("" means DefaultImageDir).
func LoadImage(dir string) (*Image, error) {
	if dir == "" {
		dir = DefaultImageDir()
	}
	wasm, err := os.ReadFile(filepath.Join(dir, "python.wasm"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no python.wasm; build it with `make build` "+
			"(runtime/pybuild/build.sh), or point FAAS_IMAGE at an image directory", ErrNoImage, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("runtime: read image: %w", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "lib", "python3.11", "os.py")); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s has no lib/python3.11 standard library", ErrNoImage, dir)
	}
	sum := sha256.Sum256(wasm)
	return &Image{Dir: dir, Wasm: wasm, Hash: hex.EncodeToString(sum[:])}, nil
}

// wasm section ids used below.
const (
	secGlobal    = 6
	secData      = 11
	secDataCount = 12
)

// stripData returns the module without its data (and data count) sections.
// A restored instance gets all of memory from the snapshot, so applying the
// data segments would only dirty copy-on-write pages that are then
// overwritten.
func stripData(wasm []byte) ([]byte, error) {
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, errors.New("runtime: not a wasm module")
	}
	out := append([]byte(nil), wasm[:8]...)
	err := eachSection(wasm, func(id byte, whole, _ []byte) error {
		if id != secData && id != secDataCount {
			out = append(out, whole...)
		}
		return nil
	})
	return out, err
}

// mutableGlobals counts the module's own mutable globals. A snapshot
// restores linear memory and __stack_pointer only, so that must be the one.
func mutableGlobals(wasm []byte) (int, error) {
	n := -1
	err := eachSection(wasm, func(id byte, _, body []byte) error {
		if id != secGlobal {
			return nil
		}
		r := &byteReader{b: body}
		count := r.uleb()
		n = 0
		for i := uint64(0); i < count && r.err == nil; i++ {
			r.byte() // value type
			if r.byte() == 1 {
				n++
			}
			r.skipConstExpr()
		}
		return r.err
	})
	if n < 0 {
		n = 0
	}
	return n, err
}

func eachSection(wasm []byte, fn func(id byte, whole, body []byte) error) error {
	r := &byteReader{b: wasm, pos: 8}
	for r.pos < len(r.b) {
		start := r.pos
		id := r.byte()
		size := r.uleb()
		if r.err != nil || size > uint64(len(r.b)-r.pos) {
			return errors.New("runtime: malformed wasm section header")
		}
		body := r.b[r.pos : r.pos+int(size)]
		r.pos += int(size)
		if err := fn(id, r.b[start:r.pos], body); err != nil {
			return err
		}
	}
	return nil
}

type byteReader struct {
	b   []byte
	pos int
	err error
}

func (r *byteReader) byte() byte {
	if r.pos >= len(r.b) {
		r.err = errors.New("runtime: unexpected end of wasm")
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *byteReader) uleb() uint64 {
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		c := r.byte()
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			break
		}
	}
	return v
}

func (r *byteReader) skipConstExpr() {
	for r.err == nil {
		switch op := r.byte(); op {
		case 0x0b: // end
			return
		case 0x41, 0x42, 0x23, 0xd2: // i32.const, i64.const, global.get, ref.func
			r.uleb()
		case 0x43:
			r.pos += 4
		case 0x44:
			r.pos += 8
		case 0xd0: // ref.null t
			r.byte()
		default:
			r.err = fmt.Errorf("runtime: unexpected opcode 0x%02x in constant expression", op)
		}
	}
}
