package runtime

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/wasmfaas/wasmfaas/bundle"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/pickle"
)

// bundleFiles are a user's module and package, as a bundle sends them.
var bundleFiles = map[string]string{
	"mymod.py": `
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __repr__(self):
        return f"Point({self.x}, {self.y})"

def area(p):
    return p.x * p.y

def scale(p, k):
    return Point(p.x * k, p.y * k)

def where():
    return __file__
`,
	"pkg/__init__.py":          "from .sub import deep\n",
	"pkg/sub/__init__.py":      "",
	"pkg/sub/deep.py":          "import os\n\ndef value():\n    with open(os.path.join(os.path.dirname(__file__), 'data.txt')) as f:\n        return f.read().strip()\n",
	"pkg/sub/data.txt":         "forty-two\n",
	"pkg-1.0.dist-info/RECORD": "",
}

// bundleDefs writes bundleFiles to a temporary directory on the client's
// sys.path and imports them, so that dill pickles their objects by
// reference, as it does for any importable module.
func bundleDefs() string {
	var b strings.Builder
	b.WriteString("import os, sys, tempfile\n_d = tempfile.mkdtemp()\n")
	for name, text := range bundleFiles {
		fmt.Fprintf(&b, "os.makedirs(os.path.dirname(os.path.join(_d, %q)), exist_ok=True)\n", name)
		fmt.Fprintf(&b, "open(os.path.join(_d, %q), 'w').write(%q)\n", name, text)
	}
	b.WriteString("sys.path.insert(0, _d)\nimport mymod, pkg\n")
	return b.String()
}

func testBundle(t testing.TB, files map[string]string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.Build(nil, files, bundle.Limits{}, pickle.SandboxModule)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func runBundled(t testing.TB, p *Pool, b *bundle.Bundle, fn, args []byte, iso faastype.Isolation) *faastype.Result {
	t.Helper()
	task := faastype.Task{ID: t.Name(), Function: pickle.Hash(fn) + b.Hash, Fn: fn, Args: args, Isolation: iso,
		Bundle: b.Hash, BundleData: b.Zip}
	res, err := p.Run(context.Background(), task)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func TestBundledModulesAndPackages(t *testing.T) {
	p := pool(t)
	b := testBundle(t, bundleFiles)
	defs := bundleDefs()
	for _, tc := range []struct {
		name, fn, args, want string
	}{
		{"module function by reference", "mymod.area", "((mymod.Point(3, 4),), {})", "12"},
		{"bundled class in the arguments and the result", "mymod.scale", "((mymod.Point(1, 2), 10), {})", "Point(10, 20)"},
		{"package with subpackages and a data file", "lambda: __import__('pkg').sub.deep.value()", "((), {})", "'forty-two'"},
		{"modules live under /bundle", "mymod.where", "((), {})", "'/bundle/mymod.py'"},
		{"the bundle is read-only", "lambda: open('/bundle/new.py', 'w')", "((), {})", "raise"},
		{"bundle first on sys.path", "lambda: __import__('sys').path[0]", "((), {})", "'/bundle'"},
	} {
		for _, iso := range []faastype.Isolation{faastype.Warm, faastype.Fresh} {
			t.Run(tc.name+"/"+string(iso), func(t *testing.T) {
				pk := pickles(t, defs, tc.fn, tc.args)
				res := runBundled(t, p, b, pk[0], pk[1], iso)
				var got []string
				pyfixture.Run(t, defs+`
import base64, dill, json, sys
v = dill.loads(base64.b64decode(json.loads(sys.stdin.read())))
print(json.dumps(["raise " + repr(v) if isinstance(v, BaseException) else repr(v)]))
`, base64.StdEncoding.EncodeToString(raisable(res)), &got)
				if !strings.HasPrefix(got[0], tc.want) {
					t.Fatalf("got %s (status %s, error %+v), want %s", got[0], res.Status, res.Error, tc.want)
				}
			})
		}
	}
}

// A function without the bundle, on the same sandbox processes, cannot see
// it: a bundle is mounted for its own function only.
func TestBundleIsPerFunction(t *testing.T) {
	p := newPool(t, PoolConfig{Size: 1, Limits: testLimits})
	b := testBundle(t, bundleFiles)
	pk := pickles(t, bundleDefs(), "mymod.area", "((mymod.Point(2, 3),), {})")
	probe := pickles(t, "", "lambda: (__import__('os').listdir('/bundle'), __import__('importlib.util').util.find_spec('mymod'))", "((), {})")
	for _, iso := range []faastype.Isolation{faastype.Warm, faastype.Fresh} {
		if res := runBundled(t, p, b, pk[0], pk[1], iso); res.Status != faastype.Completed {
			t.Fatalf("%s: bundled task: %+v", iso, res.Error)
		}
		res := run(t, p, probe[0], probe[1], iso)
		if got := describe(t, raisable(res))[0]; got != "([], None)" {
			t.Fatalf("%s: a function without a bundle sees %s", iso, got)
		}
	}
}

// The pool sends a bundle to a sandbox process only when the process lacks
// it, and both evict alike: with room for one bundle, alternating two
// bundles keeps working.
func TestBundleCacheMirror(t *testing.T) {
	b1 := testBundle(t, bundleFiles)
	other := map[string]string{"mymod.py": "class Point:\n    pass\n\ndef area(p):\n    return -1\n"}
	b2 := testBundle(t, other)
	p := newPool(t, PoolConfig{Size: 1, Limits: testLimits, BundleCache: max(bundle.Weight(b1.Zip), bundle.Weight(b2.Zip)) + 1})
	pk := pickles(t, bundleDefs(), "mymod.area", "((mymod.Point(2, 3),), {})")
	for i, step := range []struct {
		b    *bundle.Bundle
		want string
	}{{b1, "6"}, {b1, "6"}, {b2, "-1"}, {b1, "6"}, {b2, "-1"}, {b2, "-1"}} {
		res := runBundled(t, p, step.b, pk[0], pk[1], faastype.Fresh)
		if res.Status != faastype.Completed {
			t.Fatalf("step %d: %+v", i, res.Error)
		}
		if got := describe(t, res.Payload)[0]; got != step.want {
			t.Fatalf("step %d: got %s, want %s", i, got, step.want)
		}
	}
	// Data that does not match its hash fails the task, and the process
	// stays usable.
	bad := faastype.Task{ID: "bad", Fn: pk[0], Args: pk[1], Bundle: strings.Repeat("0", 64), BundleData: b1.Zip}
	res, err := p.Run(context.Background(), bad)
	if err != nil || res.Status != faastype.Failed || res.Error.Kind != faastype.KindBadPayload {
		t.Fatalf("corrupt bundle: %+v, %v", res, err)
	}
	if _, err := p.Run(context.Background(), faastype.Task{ID: "nodata", Fn: pk[0], Args: pk[1], Bundle: b1.Hash}); err == nil {
		t.Fatal("Run took a bundle hash without its data")
	}
}
