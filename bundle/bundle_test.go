package bundle

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

type entry struct {
	name string
	body string
	mode fs.FileMode // 0: regular file
}

func makeZip(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.mode != 0 {
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(e.body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func stdlib(name string) bool { return name == "json" || name == "dill" }

func TestBuildAccepts(t *testing.T) {
	z := makeZip(t,
		entry{name: "pkg/", mode: fs.ModeDir | 0o755},
		entry{name: "pkg/__init__.py", body: "from .sub import x\n"},
		entry{name: "pkg/sub/__init__.py", body: ""},
		entry{name: "pkg/sub/x.py", body: "x = 1\n"},
		entry{name: "pkg/data.json", body: `{"a": 1}`},
		entry{name: "pkg/__pycache__/x.cpython-311.pyc", body: "\x00\x01"},
		entry{name: "pkg-1.0.dist-info/METADATA", body: "Name: pkg\n"},
	)
	b, err := Build(z, map[string]string{"mymod.py": "def f(): return 1\n"}, Limits{}, stdlib)
	if err != nil {
		t.Fatal(err)
	}
	if b.Files != 6 || strings.Join(b.Modules, ",") != "mymod,pkg" || !ValidHash(b.Hash) {
		t.Fatalf("got %d files, modules %v, hash %q", b.Files, b.Modules, b.Hash)
	}
	// The same content in another order and shape has the same hash.
	z2 := makeZip(t,
		entry{name: "mymod.py", body: "def f(): return 1\n"},
		entry{name: "pkg-1.0.dist-info/METADATA", body: "Name: pkg\n"},
		entry{name: "pkg/sub/x.py", body: "x = 1\n"},
		entry{name: "pkg/data.json", body: `{"a": 1}`},
		entry{name: "pkg/sub/__init__.py", body: ""},
		entry{name: "pkg/__init__.py", body: "from .sub import x\n"},
	)
	b2, err := Build(z2, nil, Limits{}, stdlib)
	if err != nil {
		t.Fatal(err)
	}
	if b2.Hash != b.Hash || !bytes.Equal(b2.Zip, b.Zip) {
		t.Fatalf("same content, different hash or canonical zip: %s %s", b.Hash, b2.Hash)
	}
	tree, err := Open(b.Zip, b.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(tree, "mymod.py", "pkg/__init__.py", "pkg/sub/x.py", "pkg/data.json", "pkg-1.0.dist-info/METADATA"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(b.Zip, strings.Repeat("0", 64)); err == nil {
		t.Fatal("Open accepted a zip under another hash")
	}
	if err := fstest.TestFS(Empty()); err != nil {
		t.Fatal(err)
	}
}

func TestBuildRefuses(t *testing.T) {
	many := make([]entry, 101)
	for i := range many {
		many[i] = entry{name: "m" + strings.Repeat("x", i) + ".py"}
	}
	bomb := entry{name: "bomb.txt", body: strings.Repeat("\x00", 2<<20)}
	for _, tc := range []struct {
		name     string
		zip      []byte
		modules  map[string]string
		tooLarge bool
		want     string
	}{
		{name: "not a zip", zip: []byte("PK\x03\x04 nope"), want: "not a valid zip"},
		{name: "dot dot", zip: makeZip(t, entry{name: "../evil.py"}), want: `".."`},
		{name: "inner dot dot", zip: makeZip(t, entry{name: "a/../../evil.py"}), want: `".."`},
		{name: "absolute", zip: makeZip(t, entry{name: "/etc/evil.py"}), want: "absolute"},
		{name: "drive", zip: makeZip(t, entry{name: "C:/evil.py"}), want: "absolute"},
		{name: "backslash", zip: makeZip(t, entry{name: "a\\b.py"}), want: "backslash"},
		{name: "unclean", zip: makeZip(t, entry{name: "a//b.py"}), want: "not clean"},
		{name: "symlink", zip: makeZip(t, entry{name: "link.py", body: "/etc/passwd", mode: fs.ModeSymlink | 0o777}), want: "symbolic link"},
		{name: "fifo", zip: makeZip(t, entry{name: "p", mode: fs.ModeNamedPipe | 0o644}), want: "not a regular file"},
		{name: "shared object", zip: makeZip(t, entry{name: "pkg/_speedups.cpython-311-x86_64-linux-gnu.so"}), want: "compiled extension"},
		{name: "pyd", zip: makeZip(t, entry{name: "pkg/x.pyd"}), want: "compiled extension"},
		{name: "versioned so", zip: makeZip(t, entry{name: "lib/libfoo.so.1"}), want: "compiled extension"},
		{name: "duplicate", zip: makeZip(t, entry{name: "a.py"}, entry{name: "a.py"}), want: "given twice"},
		{name: "file and dir", zip: makeZip(t, entry{name: "a"}, entry{name: "a/b.py"}), want: "needs it to be a directory"},
		{name: "in both", zip: makeZip(t, entry{name: "a.py"}), modules: map[string]string{"a.py": ""}, want: "given twice"},
		{name: "empty", zip: makeZip(t, entry{name: "__pycache__/a.pyc"}), want: "no files"},
		{name: "shadows stdlib", modules: map[string]string{"json/__init__.py": ""}, want: `"json" would shadow`},
		{name: "shadows dill", modules: map[string]string{"dill.py": ""}, want: `"dill" would shadow`},
		{name: "extension as a module", modules: map[string]string{"evil.so": "x", "m.py": ""}, want: "compiled extension"},
		{name: "too many entries", zip: makeZip(t, append(many[:0:0], dirs(401)...)...), tooLarge: true, want: "401 zip entries"},
		{name: "module path dot dot", modules: map[string]string{"../x.py": ""}, want: `".."`},
		{name: "too many files", zip: makeZip(t, many...), tooLarge: true, want: "101 files"},
		{name: "too many module files", modules: map[string]string{"a.py": "", "b.py": "", "c/d.py": "", "e.py": ""}, tooLarge: true, want: "4 files"},
		{name: "zip bomb", zip: makeZip(t, bomb), tooLarge: true, want: "over the limit"},
		{name: "too large modules", modules: map[string]string{"a.py": strings.Repeat("#", 1<<20+1)}, tooLarge: true, want: "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lim := Limits{MaxFiles: 100, MaxBytes: 1 << 20}
			if strings.HasPrefix(tc.name, "too many module") {
				lim.MaxFiles = 3
			}
			_, err := Build(tc.zip, tc.modules, lim, stdlib)
			var be *Error
			if !errors.As(err, &be) {
				t.Fatalf("got %v, want a *bundle.Error", err)
			}
			if be.TooLarge != tc.tooLarge || !strings.Contains(be.Msg, tc.want) {
				t.Fatalf("got %+v, want TooLarge=%v and %q", be, tc.tooLarge, tc.want)
			}
		})
	}
}

// A zip whose headers lie about the uncompressed size is stopped while it
// inflates, at the cap.
func TestLyingSizesStopAtTheCap(t *testing.T) {
	z := makeZip(t, entry{name: "big.txt", body: strings.Repeat("a", 3<<20)})
	// Patch the sizes in the central directory and the local header to 10.
	forged := bytes.Clone(z)
	for _, sig := range []string{"PK\x01\x02", "PK\x03\x04"} {
		i := bytes.Index(forged, []byte(sig))
		off := 24
		if sig == "PK\x03\x04" {
			off = 22
		}
		copy(forged[i+off:], []byte{10, 0, 0, 0})
	}
	_, err := Build(forged, nil, Limits{MaxBytes: 1 << 20}, nil)
	if err == nil {
		t.Fatal("a forged zip was accepted")
	}
}

func TestBuildCapsTheCompressedSize(t *testing.T) {
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(i*7919+i>>3*31) ^ byte(i>>11)
	}
	_, err := Build(nil, map[string]string{"blob.bin": string(random)}, Limits{MaxZipBytes: 1 << 10}, nil)
	var be *Error
	if !errors.As(err, &be) || !be.TooLarge || !strings.Contains(be.Msg, "compressed") {
		t.Fatalf("got %v", err)
	}
}

func dirs(n int) []entry {
	out := make([]entry, n)
	for i := range out {
		out[i] = entry{name: fmt.Sprintf("d%d/", i), mode: fs.ModeDir | 0o755}
	}
	return out
}

func TestWeightCountsUnpackedBytes(t *testing.T) {
	b, err := Build(nil, map[string]string{"zeros.txt": strings.Repeat("\x00", 1<<20)}, Limits{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := Weight(b.Zip); w < 1<<20 || len(b.Zip) > 64<<10 {
		t.Fatalf("weight %d of a %d-byte zip of 1 MiB", w, len(b.Zip))
	}
}
