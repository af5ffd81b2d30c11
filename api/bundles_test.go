package api

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/bundle"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/store"
)

// zipOf makes a zip of name/body pairs; a name ending in "@link" becomes
// a symbolic link (without the suffix).
func zipOf(t *testing.T, pairs ...string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < len(pairs); i += 2 {
		h := &zip.FileHeader{Name: pairs[i], Method: zip.Deflate}
		if name, ok := strings.CutSuffix(pairs[i], "@link"); ok {
			h.Name = name
			h.SetMode(fs.ModeSymlink | 0o777)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(pairs[i+1]))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(buf.Bytes())
}

const testsMod = "def double(x):\n    return 2 * x\n\n\nclass Point:\n    def __init__(self, x):\n        self.x = x\n"

func TestRegisterWithBundle(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		ctx := context.Background()
		byRef := pyfixture.Fixture(t, "byref_tests_mod")
		// By reference to tests.mod: refused alone, accepted with the module.
		expectError(t, e.do("POST", "/register_function", map[string]any{"name": "f", "payload": byRef}), 400, `"tests.mod"`)
		zipped := zipOf(t, "tests/__init__.py", "", "tests/mod.py", testsMod)
		var ids []string
		for _, body := range []map[string]any{
			{"name": "f", "payload": byRef, "bundle": zipped},
			{"name": "g", "payload": byRef, "modules": map[string]string{"tests/__init__.py": "", "tests/mod.py": testsMod}},
			{"name": "h", "payload": pyfixture.Fixture(t, "uses_mymod_recurse"), "modules": map[string]string{"mymod.py": "VALUE = 42\n"}},
			{"name": "s", "source": "import mymod\ndef s():\n    return mymod.VALUE", "modules": map[string]string{"mymod.py": "VALUE = 42\n"}},
		} {
			r := e.do("POST", "/register_function", body)
			if r.status != 200 {
				t.Fatalf("register %v: %d %s", body["name"], r.status, r.raw)
			}
			ids = append(ids, r.str("function_id"))
		}
		f, err := e.st.GetFunction(ctx, ids[0])
		if err != nil || f.Bundle == "" || strings.Join(f.BundleModules, ",") != "tests" {
			t.Fatalf("function: %+v, %v", f, err)
		}
		// The same content as a zip and as modules is one stored bundle.
		g, _ := e.st.GetFunction(ctx, ids[1])
		if g.Bundle != f.Bundle {
			t.Fatalf("same content, two bundles: %s %s", f.Bundle, g.Bundle)
		}
		if keys, _ := e.rdb.Keys(ctx, "faas:bundle:*").Result(); len(keys) != 2 {
			t.Fatalf("bundle keys %v, want 2 (tests, mymod)", keys)
		}
		// Arguments referring to the bundle are accepted for its function
		// only, and the task carries the bundle.
		args := pyfixture.Fixture(t, "args_point")
		expectError(t, e.do("POST", "/execute_function", map[string]any{"function_id": ids[2], "payload": args}), 400, `"tests.mod"`)
		tid := e.execute(ids[0], args)
		batch := e.do("POST", "/execute_batch", map[string]any{"function_id": ids[0], "payloads": []string{args, args}})
		if batch.status != 200 {
			t.Fatalf("batch: %d %s", batch.status, batch.raw)
		}
		task, err := e.st.GetTask(ctx, tid)
		if err != nil || task.Bundle != f.Bundle {
			t.Fatalf("task bundle %q, %v", task.Bundle, err)
		}
		cs, err := e.st.Claim(ctx, "w", 3, time.Minute)
		if err != nil || len(cs) != 3 || cs[0].Bundle != f.Bundle || cs[2].Bundle != f.Bundle {
			t.Fatalf("claims %+v, %v", cs, err)
		}
		zipBytes, err := e.st.GetBundle(ctx, "", f.Bundle)
		if err != nil || len(zipBytes) == 0 {
			t.Fatalf("GetBundle: %v", err)
		}
	})
}

func TestRegisterBundleErrors(t *testing.T) {
	many := make([]string, 0, 2*10000)
	for i := 0; i < 10000; i++ {
		many = append(many, "m/f"+strconv.Itoa(i)+".py", "")
	}
	bomb := zipOf(t, "bomb.txt", strings.Repeat("\x00", 40<<20)) // 40 MiB in ~40 KB
	fn := pyfixture.Fixture(t, "lambda_p4")
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		for _, c := range []struct {
			name   string
			extra  map[string]any
			status int
			detail string
		}{
			{"dot dot", map[string]any{"bundle": zipOf(t, "../evil.py", "x = 1")}, 400, `holds ".."`},
			{"absolute", map[string]any{"bundle": zipOf(t, "/abs.py", "")}, 400, "is absolute"},
			{"symlink", map[string]any{"bundle": zipOf(t, "mod.py@link", "/etc/passwd")}, 400, "symbolic link"},
			{"C extension", map[string]any{"bundle": zipOf(t, "pkg/__init__.py", "", "pkg/_c.cpython-311-x86_64-linux-gnu.so", "\x7fELF")}, 400, "compiled extension"},
			{"10,000 files", map[string]any{"bundle": zipOf(t, many...)}, 413, "10000 files, over the limit of 4096"},
			{"zip bomb", map[string]any{"bundle": bomb}, 413, "over the limit of 33554432"},
			{"not a zip", map[string]any{"bundle": base64.StdEncoding.EncodeToString([]byte("hello"))}, 400, "not a valid zip"},
			{"not base64", map[string]any{"bundle": "%%%"}, 400, `field "bundle" is not valid base64`},
			{"bundle not a string", map[string]any{"bundle": 5}, 422, `field "bundle" must be a string`},
			{"modules not an object", map[string]any{"modules": []string{"a.py"}}, 422, `field "modules" must be a JSON object`},
			{"module not text", map[string]any{"modules": map[string]any{"a.py": 1}}, 422, `field "modules" must be a JSON object`},
			{"module path escapes", map[string]any{"modules": map[string]string{"../../x.py": ""}}, 400, `holds ".."`},
			{"shadows pyshim", map[string]any{"modules": map[string]string{"pyshim.py": ""}}, 400, `"pyshim" would shadow`},
			{"shadows the stdlib", map[string]any{"modules": map[string]string{"json.py": ""}}, 400, `"json" would shadow`},
			{"in both", map[string]any{"modules": map[string]string{"a.py": ""}, "bundle": zipOf(t, "a.py", "")}, 400, "given twice"},
		} {
			t.Run(c.name, func(t *testing.T) {
				body := map[string]any{"name": "f", "payload": fn}
				for k, v := range c.extra {
					body[k] = v
				}
				expectError(t, e.do("POST", "/register_function", body), c.status, c.detail)
			})
		}
		if n, _ := e.rdb.DBSize(context.Background()).Result(); n != 0 {
			keys, _ := e.rdb.Keys(context.Background(), "*").Result()
			t.Fatalf("refused bundles left keys in Redis: %v", keys)
		}
	})
}

// Two tenants with the same bundle get a copy each, and one's functions
// never reach the other's.
func TestBundlesArePerTenant(t *testing.T) {
	eachBackend(t, Options{Auth: testAuth(t)}, func(t *testing.T, e *env) {
		ctx := context.Background()
		body := map[string]any{"name": "h", "payload": pyfixture.Fixture(t, "uses_mymod_recurse"), "modules": map[string]string{"mymod.py": "VALUE = 42\n"}}
		var hashes []string
		for _, tok := range []string{aliceToken, bobToken} {
			r := e.as(tok).do("POST", "/register_function", body)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			f, err := e.st.GetFunction(ctx, r.str("function_id"))
			if err != nil {
				t.Fatal(err)
			}
			hashes = append(hashes, f.Bundle)
		}
		if hashes[0] != hashes[1] {
			t.Fatal("same content, different hashes")
		}
		for _, owner := range []string{"alice", "bob"} {
			if _, err := e.st.GetBundle(ctx, owner, hashes[0]); err != nil {
				t.Fatalf("%s's copy: %v", owner, err)
			}
		}
		if _, err := e.st.GetBundle(ctx, "carol", hashes[0]); err != store.ErrNotFound && !strings.Contains(err.Error(), "not found") {
			t.Fatalf("carol reads a bundle: %v", err)
		}
	})
}

func TestRuntimeShowsBundleLimits(t *testing.T) {
	eachBackend(t, Options{BundleLimits: bundle.Limits{MaxFiles: 10}}, func(t *testing.T, e *env) {
		r := e.do("GET", "/runtime", nil)
		var body struct {
			Bundles struct {
				MaxFiles    int   `json:"max_files"`
				MaxBytes    int64 `json:"max_bytes"`
				MaxZipBytes int64 `json:"max_zip_bytes"`
			} `json:"bundle_limits"`
		}
		if err := json.Unmarshal([]byte(r.raw), &body); err != nil || r.status != 200 {
			t.Fatalf("%d %s %v", r.status, r.raw, err)
		}
		if b := body.Bundles; b.MaxFiles != 10 || b.MaxBytes != bundle.DefaultLimits.MaxBytes || b.MaxZipBytes != bundle.DefaultLimits.MaxZipBytes {
			t.Fatalf("bundle_limits %+v", b)
		}
	})
}
