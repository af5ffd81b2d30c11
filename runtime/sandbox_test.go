package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/pickle"
)

// Each case is a function defined in a client's __main__, pickled by
// Debian's python3 + dill, run in the sandbox, and its result unpickled by
// python3 again.
func TestSandboxFunctions(t *testing.T) {
	p := pool(t)
	cases := []struct {
		name     string
		defs     string
		fn, args string
		status   faastype.Status
		kind     faastype.ErrorKind
		want     string // the described result must contain this
	}{
		{"no args", "def f(): return 42", "f", "((), {})", faastype.Completed, "", "42"},
		{"args and kwargs", "def f(a, b, *, c=0): return (a + b) * c", "f", "((2, 3), {'c': 4})", faastype.Completed, "", "20"},
		{"lambda", "", "lambda x: x * 2", "((21,), {})", faastype.Completed, "", "42"},
		{"closure", "def make(k):\n    def g(x): return x + k\n    return g", "make(100)", "((1,), {})", faastype.Completed, "", "101"},
		{"stdlib import inside", "def f(xs):\n    import statistics, json\n    return json.dumps(statistics.mean(xs))", "f", "(([1, 2, 3, 6],), {})", faastype.Completed, "", "'3'"},
		{"recursive __main__ function", "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)", "fib", "((20,), {})", faastype.Completed, "", "6765"},
		{"class defined in the function", "def f(x):\n    class P:\n        def __init__(s, x): s.x = x\n        def __repr__(s): return f'P({s.x})'\n    return P(x)", "f", "((7,), {})", faastype.Completed, "", "P(7)"},
		{"script globals with recurse", "dill.settings['recurse'] = True\nclass P:\n    def __init__(s, x): s.x = x\n    def __repr__(s): return f'P({s.x})'\nK = 3\ndef helper(x): return P(x * K)\ndef f(x): return helper(x)", "f", "((7,), {})", faastype.Completed, "", "P(21)"},
		{"script globals without recurse", "K = 3\ndef f(x): return x * K", "f", "((7,), {})", faastype.Failed, faastype.KindUserException, "dill.settings['recurse'] = True"},
		{"top-level stdlib import", "import json, math\ndef f(x): return json.dumps(math.floor(x))", "f", "((7.5,), {})", faastype.Completed, "", "'7'"},
		{"list argument", "def f(xs): return sum(xs)", "f", "((list(range(100000)),), {})", faastype.Completed, "", "4999950000"},
		{"by reference stdlib", "import math", "math.sqrt", "((16,), {})", faastype.Completed, "", "4.0"},
		{"raises", "def f(): raise ValueError('bad input 7')", "f", "((), {})", faastype.Failed, faastype.KindUserException, "raise ValueError: bad input 7\nTraceback in the sandbox:"},
		{"raises custom exception", "dill.settings['recurse'] = True\nclass MyErr(Exception): pass\ndef f(): raise MyErr('custom')", "f", "((), {})", faastype.Failed, faastype.KindUserException, "raise MyErr: custom"},
		{"exception that cannot round trip", "def f():\n    class E(Exception):\n        def __init__(self, a, b): super().__init__(f'{a}/{b}')\n    raise E(1, 2)", "f", "((), {})", faastype.Failed, faastype.KindUserException, "raise RuntimeError: f.<locals>.E: 1/2"},
		{"sys.exit", "import sys\ndef f(): sys.exit(3)", "f", "((), {})", faastype.Failed, faastype.KindUserExit, "sys.exit(3)"},
		{"os._exit", "def f():\n    import os\n    os._exit(0)", "f", "((), {})", faastype.Failed, faastype.KindUserExit, "os._exit(0)"},
		{"recursion 10**6 deep", "def f(n): return 0 if n == 0 else f(n - 1) + 1", "f", "((10**6,), {})", faastype.Failed, faastype.KindUserException, "RecursionError"},
		{"plain containers result", "def f(): return {'a': [1, 2.5, (3, b'x')], 'b': {1, 2}, 'c': frozenset({'z'}), 'd': None, 5: 1j}", "f", "((), {})", faastype.Completed, "", "{'a': [1, 2.5, (3, b'x')], 'b': {1, 2}, 'c': frozenset({'z'}), 'd': None, 5: 1j}"},
		{"cyclic result", "def f():\n    x = [1]\n    x.append(x)\n    return x", "f", "((), {})", faastype.Completed, "", "[1, [...]]"},
		{"object inside a container", "def f():\n    class P:\n        def __repr__(s): return 'P!'\n    return [1, {'k': P()}]", "f", "((), {})", faastype.Completed, "", "[1, {'k': P!}]"},
		{"dict subclass result", "def f():\n    class D(dict): pass\n    d = D(a=1)\n    return [type(d).__name__, d]", "f", "((), {})", faastype.Completed, "", "['D', {'a': 1}]"},
		{"unpicklable result", "def f(): return (x for x in range(3))", "f", "((), {})", faastype.Failed, faastype.KindUnpicklable, "cannot be pickled"},
		{"result too large", "def f(): return b'x' * (11 << 20)", "f", "((), {})", faastype.Failed, faastype.KindResultTooLarge, "over the limit"},
		{"not a callable", "", "'payload'", "((), {})", faastype.Failed, faastype.KindBadPayload, "not a callable"},
		{"args not a pair", "def f(): return 1", "f", "[1, 2, 3]", faastype.Failed, faastype.KindBadPayload, "(args_tuple, kwargs_dict)"},
		{"wrong arity", "def f(a): return a", "f", "((), {})", faastype.Failed, faastype.KindUserException, "missing 1 required positional argument"},
		{"no host files", "def f():\n    try:\n        open('/etc/passwd').read()\n    except OSError as e:\n        return type(e).__name__\n    return 'READ'", "f", "((), {})", faastype.Completed, "", "Error'"},
		{"no host environment", "def f():\n    import os\n    return dict(os.environ)", "f", "((), {})", faastype.Completed, "", "{}"},
		{"no sockets", "def f():\n    try:\n        import socket\n        socket.socket().connect(('127.0.0.1', 6379))\n    except Exception as e:\n        return 'denied ' + type(e).__name__\n    return 'CONNECTED'", "f", "((), {})", faastype.Completed, "", "'denied "},
		{"no ctypes", "def f():\n    import ctypes", "f", "((), {})", faastype.Failed, faastype.KindUserException, "ModuleNotFoundError"},
		{"tmp is writable", "def f():\n    with open('/tmp/a.txt', 'w') as fh: fh.write('hello')\n    return open('/tmp/a.txt').read()", "f", "((), {})", faastype.Completed, "", "'hello'"},
		{"tmp is capped", "def f():\n    try:\n        with open('/tmp/big', 'wb') as fh:\n            for _ in range(64): fh.write(b'x' * (1 << 20))\n    except OSError as e:\n        return e.errno\n    return 'UNCAPPED'", "f", "((), {})", faastype.Completed, "", "29"}, // EIO: wazero has no ENOSPC
		{"dev null", "def f():\n    with open('/dev/null', 'wb') as fh: fh.write(b'x' * 1000)\n    return open('/dev/null', 'rb').read()", "f", "((), {})", faastype.Completed, "", "b''"},
		{"tempfile", "def f():\n    import tempfile\n    with tempfile.NamedTemporaryFile() as fh:\n        fh.write(b'abc'); fh.flush(); fh.seek(0)\n        return fh.read()", "f", "((), {})", faastype.Completed, "", "b'abc'"},
		{"time and randomness", "def f():\n    import time, random, os\n    t = time.time(); time.sleep(0.01)\n    return (time.time() - t >= 0.01, t > 1.7e9, len(os.urandom(8)), 0 <= random.random() < 1)", "f", "((), {})", faastype.Completed, "", "(True, True, 8, True)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pk := pickles(t, tc.defs, tc.fn, tc.args)
			res := run(t, p, pk[0], pk[1], faastype.Warm)
			if res.Status != tc.status {
				t.Fatalf("status %s, want %s (error %+v, stderr %q)", res.Status, tc.status, res.Error, res.Stderr)
			}
			if tc.kind != "" && (res.Error == nil || res.Error.Kind != tc.kind) {
				t.Fatalf("error %+v, want kind %s", res.Error, tc.kind)
			}
			if tc.status == faastype.Completed && res.Error != nil {
				t.Fatalf("completed with error %+v", res.Error)
			}
			got := describe(t, raisable(res))[0]
			if !strings.Contains(got, tc.want) {
				t.Fatalf("result %q does not contain %q", got, tc.want)
			}
		})
	}
}

func TestTimeoutReplacesSandbox(t *testing.T) {
	p := newPool(t, PoolConfig{Size: 1, Limits: faastype.Limits{Timeout: time.Second}})
	pk := pickles(t, "def spin():\n    print('before the loop', flush=True)\n    while True: pass\ndef ok(): return 'fine'", "spin", "ok", "((), {})")
	start := time.Now()
	res := run(t, p, pk[0], pk[2], faastype.Warm)
	took := time.Since(start)
	if res.Error == nil || res.Error.Kind != faastype.KindTimeout {
		t.Fatalf("want TIMEOUT, got %s %+v", res.Status, res.Error)
	}
	if took > 2*time.Second {
		t.Errorf("timeout of 1s reported after %s", took)
	}
	if !bytes.Contains(res.Stdout, []byte("before the loop")) {
		t.Errorf("output before the timeout was lost: %q", res.Stdout)
	}
	if got := describe(t, raisable(res))[0]; got != "raise TimeoutError: task exceeded 1s" {
		t.Errorf("payload %q", got)
	}
	// The same pool (now with a replacement sandbox) runs the next task.
	res = run(t, p, pk[1], pk[2], faastype.Warm)
	if res.Status != faastype.Completed {
		t.Fatalf("task after timeout: %s %+v", res.Status, res.Error)
	}
	if st := p.Stats(); st.Timeouts != 1 || st.Restarts != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestMemoryLimit(t *testing.T) {
	p := pool(t)
	pk := pickles(t, "def hog(): return len(bytearray(1 << 30))\ndef hog_list():\n    xs = []\n    while True: xs.append('x' * 100000)\ndef ok(): return 'fine'",
		"hog", "hog_list", "ok", "((), {})")
	for _, fn := range [][]byte{pk[0], pk[1]} {
		res := run(t, p, fn, pk[3], faastype.Warm)
		if res.Error == nil || res.Error.Kind != faastype.KindMemoryLimit {
			t.Fatalf("want MEMORY_LIMIT, got %s %+v", res.Status, res.Error)
		}
		if got := describe(t, raisable(res))[0]; !strings.HasPrefix(got, "raise MemoryError: the task ran out of memory (sandbox limit 256 MiB)") {
			t.Errorf("payload %q", got)
		}
	}
	if res := run(t, p, pk[2], pk[3], faastype.Warm); res.Status != faastype.Completed {
		t.Fatalf("after memory limit: %+v", res.Error)
	}
}

func TestOutputIsCapped(t *testing.T) {
	p := pool(t)
	pk := pickles(t, "import sys\ndef f():\n    chunk = 'y' * 1000 + '\\n'\n    for _ in range(100000): sys.stdout.write(chunk)\n    print('err line', file=sys.stderr)\n    return 'done'", "f", "((), {})")
	res := run(t, p, pk[0], pk[1], faastype.Warm)
	if res.Status != faastype.Completed {
		t.Fatalf("%s %+v", res.Status, res.Error)
	}
	if len(res.Stdout) != faastype.DefaultLimits.OutputBytes || !res.OutputTruncated {
		t.Errorf("stdout %d bytes truncated=%v, want %d and true", len(res.Stdout), res.OutputTruncated, faastype.DefaultLimits.OutputBytes)
	}
	if string(res.Stderr) != "err line\n" {
		t.Errorf("stderr %q", res.Stderr)
	}
}

// A function that writes what looks like protocol frames to fd 1 only
// produces output: results travel through linear memory, not stdout.
func TestFakeFramesOnStdout(t *testing.T) {
	p := pool(t)
	pk := pickles(t, `import os, struct
def f():
    fake = struct.pack('<BBBxdddIII', 0, 0, 1, 0, 0, 0, 5, 0, 0) + b'SPOOF'
    os.write(1, struct.pack('<I', 1000) + fake * 50)
    os.write(1, b'\x02\x00\x00\x00' * 1000)
    print('still printing')
    return 'genuine'
`, "f", "((), {})")
	for i := 0; i < 3; i++ {
		res := run(t, p, pk[0], pk[1], faastype.Warm)
		if res.Status != faastype.Completed {
			t.Fatalf("%s %+v", res.Status, res.Error)
		}
		if got := describe(t, raisable(res))[0]; got != "'genuine'" {
			t.Fatalf("result %q", got)
		}
		if !bytes.Contains(res.Stdout, []byte("SPOOF")) || !bytes.Contains(res.Stdout, []byte("still printing")) {
			t.Fatalf("stdout %q", res.Stdout)
		}
	}
}

func TestMalformedPayloads(t *testing.T) {
	p := pool(t)
	pk := pickles(t, "def f(): return 1", "f", "((), {})")
	cases := []struct {
		name     string
		fn, args []byte
		want     string
	}{
		{"garbage function", []byte("not a pickle at all"), pk[1], "could not load the function"},
		{"truncated function", pk[0][:len(pk[0])/2], pk[1], "could not load the function"},
		{"garbage arguments", pk[0], []byte{0x80, 4, 0xff}, "could not load the arguments"},
		{"empty function", []byte{}, pk[1], "could not load the function"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := run(t, p, tc.fn, tc.args, faastype.Warm)
			if res.Error == nil || res.Error.Kind != faastype.KindBadPayload || !strings.Contains(res.Error.Message, tc.want) {
				t.Fatalf("got %s %+v", res.Status, res.Error)
			}
			describe(t, raisable(res)) // must be a loadable exception
		})
	}
}

// Two functions never share an interpreter; one function does (warm), unless
// it asks for fresh isolation.
func TestIsolationBetweenFunctions(t *testing.T) {
	p := newPool(t, PoolConfig{Size: 1, Limits: testLimits})
	pk := pickles(t, `import builtins
def a():
    seen = getattr(builtins, 'MARK', None)
    builtins.MARK = 'a'
    return seen
def b():
    seen = getattr(builtins, 'MARK', None)
    builtins.MARK = 'b'
    return seen
`, "a", "b", "((), {})")
	fa, fb, args := pk[0], pk[1], pk[2]
	steps := []struct {
		fn   []byte
		iso  faastype.Isolation
		want string
		warm bool
	}{
		{fa, faastype.Warm, "None", false},
		{fa, faastype.Warm, "'a'", true},   // same function: warm instance, state kept
		{fb, faastype.Warm, "None", false}, // another function: never sees a's state
		{fa, faastype.Warm, "None", false},
		{fa, faastype.Fresh, "None", false},
		{fa, faastype.Fresh, "None", false}, // fresh: a pristine interpreter every time
	}
	for i, s := range steps {
		res := run(t, p, s.fn, args, s.iso)
		if res.Status != faastype.Completed {
			t.Fatalf("step %d: %+v", i, res.Error)
		}
		if got := describe(t, raisable(res))[0]; got != s.want || res.Warm != s.warm {
			t.Fatalf("step %d: got %s warm=%v, want %s warm=%v", i, got, res.Warm, s.want, s.warm)
		}
	}
}

func TestConcurrentTasks(t *testing.T) {
	p := pool(t)
	pk := pickles(t, "def sq(x): return x * x", "sq", "((12,), {})")
	var wg sync.WaitGroup
	errs := make(chan string, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.Run(context.Background(), faastype.Task{Fn: pk[0], Args: pk[1]})
			if err != nil || res.Status != faastype.Completed {
				errs <- "task failed"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
}

func TestCancelRunningTask(t *testing.T) {
	p := newPool(t, PoolConfig{Size: 1, Limits: faastype.Limits{Timeout: 20 * time.Second}})
	pk := pickles(t, "import time\ndef slow(): time.sleep(15)\ndef ok(): return 1", "slow", "ok", "((), {})")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res, err := p.Run(ctx, faastype.Task{Fn: pk[0], Args: pk[2]})
	if err != nil {
		t.Fatal(err)
	}
	if res.Error == nil || res.Error.Kind != faastype.KindCancelled {
		t.Fatalf("want CANCELLED, got %+v", res.Error)
	}
	if res := run(t, p, pk[1], pk[2], faastype.Warm); res.Status != faastype.Completed {
		t.Fatalf("after cancel: %+v", res.Error)
	}
}

func TestPayloadTooLarge(t *testing.T) {
	p := pool(t)
	res := run(t, p, make([]byte, faastype.DefaultLimits.ArgBytes+1), []byte{}, faastype.Warm)
	if res.Error == nil || res.Error.Kind != faastype.KindPayloadTooLarge {
		t.Fatalf("got %+v", res.Error)
	}
}

// A pool configured for fresh isolation overrides a function's warm setting.
func TestPoolForcesFresh(t *testing.T) {
	p := newPool(t, PoolConfig{Size: 1, Limits: testLimits, Isolation: faastype.Fresh})
	pk := pickles(t, "import builtins\ndef a():\n    seen = getattr(builtins, 'MARK', None)\n    builtins.MARK = 1\n    return seen", "a", "((), {})")
	for i := 0; i < 3; i++ {
		res := run(t, p, pk[0], pk[1], faastype.Warm)
		if got := describe(t, raisable(res))[0]; got != "None" || res.Warm {
			t.Fatalf("run %d: %s warm=%v", i, got, res.Warm)
		}
	}
}

// Functions registered as source text and called with JSON arguments, with
// the result also as JSON.
func TestPortableFunctions(t *testing.T) {
	p := pool(t)
	src := "import math\ndef area(r, *, unit='m'):\n    return {'area': round(math.pi * r * r, 3), 'unit': unit + '2', 'ok': True}\n"
	cases := []struct {
		name      string
		fn, args  []byte
		status    faastype.Status
		wantJSON  string
		wantInErr string
	}{
		{"json in, json out", pickle.SourcePayload(src, "area", "geometry"), pickle.JSONArgsPayload(`{"args": [2], "kwargs": {"unit": "cm"}}`), faastype.Completed, `{"area":12.566,"unit":"cm2","ok":true}`, ""},
		{"no kwargs", pickle.SourcePayload("def f(*a): return list(a)", "f", "f"), pickle.JSONArgsPayload(`{"args": [1, "two", null, [3]]}`), faastype.Completed, `[1,"two",null,[3]]`, ""},
		{"not representable in JSON", pickle.SourcePayload("def f(): return {1, 2}", "f", "f"), pickle.JSONArgsPayload(`{}`), faastype.Completed, "", ""},
		{"syntax error", pickle.SourcePayload("def f(:\n  pass", "f", "broken"), pickle.JSONArgsPayload(`{}`), faastype.Failed, "", "the source does not compile: invalid syntax (line 1)"},
		{"missing entrypoint", pickle.SourcePayload("def g(): pass", "f", "x"), pickle.JSONArgsPayload(`{}`), faastype.Failed, "", "defines no 'f'"},
		{"entrypoint not callable", pickle.SourcePayload("f = 3", "f", "x"), pickle.JSONArgsPayload(`{}`), faastype.Failed, "", "is a int, not a callable"},
		{"source raises at import", pickle.SourcePayload("raise KeyError('at import')", "f", "x"), pickle.JSONArgsPayload(`{}`), faastype.Failed, "", "KeyError"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := p.Run(context.Background(), faastype.Task{Fn: tc.fn, Args: tc.args, WantJSON: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != tc.status {
				t.Fatalf("status %s (%+v), want %s", res.Status, res.Error, tc.status)
			}
			if string(res.JSON) != tc.wantJSON {
				t.Errorf("json %q, want %q", res.JSON, tc.wantJSON)
			}
			if tc.wantInErr != "" && (res.Error == nil || res.Error.Kind != faastype.KindBadPayload || !strings.Contains(res.Error.Message, tc.wantInErr)) {
				t.Errorf("error %+v, want BAD_PAYLOAD containing %q", res.Error, tc.wantInErr)
			}
		})
	}
	// Without WantJSON there is no JSON.
	res := run(t, p, pickle.SourcePayload(src, "area", "g"), pickle.JSONArgsPayload(`{"args": [1]}`), faastype.Warm)
	if res.Status != faastype.Completed || res.JSON != nil {
		t.Fatalf("%s %q", res.Status, res.JSON)
	}
}

// dill converts another Python's code object into a 3.11 one, bytecode and
// all; the sandbox refuses rather than run it wrongly.
func TestForeignBytecodeIsRefused(t *testing.T) {
	p := pool(t)
	pk := pickles(t, `import dill, pickle
def f(x): return x + 1
c = f.__code__
class Code310:
    def __reduce__(self):  # the 17 fields dill 0.3.6 writes on Python 3.10
        return (dill._dill._create_code, (c.co_lnotab, 1, 0, 0, 1, 2, c.co_flags, c.co_code, c.co_consts,
                c.co_names, c.co_varnames, 'f.py', 'f', 1, c.co_linetable, (), ()))
class Code312:
    def __reduce__(self):  # 3.11's fields, but bytecode with opcodes 3.11 does not have
        return (dill._dill._create_code, (c.co_lnotab, 1, 0, 0, 1, 2, c.co_flags, bytes([4, 0, 83, 0]),
                c.co_consts, c.co_names, c.co_varnames, 'f.py', 'f', 'f', 1, c.co_linetable,
                c.co_exceptiontable, (), ()))
`, "Code310()", "Code312()", "((1,), {})")
	for i, want := range []string{"pickled by Python 3.10, whose bytecode differs", "pickled by another Python (probably 3.12 or later)"} {
		res := run(t, p, pk[i], pk[2], faastype.Warm)
		if res.Error == nil || res.Error.Kind != faastype.KindBadPayload || !strings.Contains(res.Error.Message, want) ||
			!strings.Contains(res.Error.Message, "source text") {
			t.Fatalf("case %d: %+v", i, res.Error)
		}
	}
}

// The versions the platform advertises are the guest's.
func TestGuestVersions(t *testing.T) {
	requireImage(t)
	var out, errOut bytes.Buffer
	code, err := RunPython(context.Background(), EngineConfig{},
		[]string{"-c", "import sys, dill; print(sys.version.split()[0], dill.__version__)"},
		strings.NewReader(""), &out, &errOut)
	if err != nil || code != 0 {
		t.Fatalf("%v %d %s", err, code, errOut.String())
	}
	if got, want := strings.TrimSpace(out.String()), faastype.PythonVersion+" "+faastype.DillVersion; got != want {
		t.Fatalf("guest says %q, runtime advertises %q", got, want)
	}
}

// moduleDefs makes a package tests with a module test_x on a temporary
// sys.path and imports it as m, the way a course test suite's module is
// imported by pytest: the functions it defines inside functions are
// pickled by value, with "tests.test_x's __dict__" as their globals.
const moduleDefs = `
import os, sys, tempfile
_d = tempfile.mkdtemp()
os.makedirs(os.path.join(_d, "tests"))
open(os.path.join(_d, "tests", "__init__.py"), "w").close()
with open(os.path.join(_d, "tests", "test_x.py"), "w") as _f:
    _f.write('''
import math
import time

def helper(x):
    return x * 3

def plain():
    def double(x):
        return 2 * x
    return double

def closure(k):
    def add(x):
        return x + k
    return add

def recursive():
    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)
    return fact

def uses_math():
    def root(x):
        return math.sqrt(x) + (time.time() > 0)
    return root

def reads_helper():
    def f(x):
        return helper(x)
    return f

def reads_itself():
    def again(n):
        return n if n == 0 else again(n - 1)
    return lambda n: again(n)
''')
sys.path.insert(0, _d)
import tests.test_x as m
`

func TestFunctionsNestedInAModule(t *testing.T) {
	p := pool(t)
	for _, tc := range []struct {
		name, fn, args string
		status         faastype.Status
		want           string
	}{
		{"plain", "m.plain()", "((21,), {})", faastype.Completed, "42"},
		{"closure", "m.closure(100)", "((1,), {})", faastype.Completed, "101"},
		{"recursive through a closure", "m.recursive()", "((10,), {})", faastype.Completed, "3628800"},
		{"module's stdlib imports", "m.uses_math()", "((16,), {})", faastype.Completed, "5.0"},
		{"lambda calling a nested function", "m.reads_itself()", "((3,), {})", faastype.Completed, "0"},
		{"a module-level helper was not sent", "m.reads_helper()", "((1,), {})", faastype.Failed,
			"raise NameError: name 'helper' is not defined: it was a global of module 'tests.test_x', which was not sent"},
		{"argument nested in the module", "lambda f, x: f(x)", "((m.closure(2), 40), {})", faastype.Completed, "42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pk := pickles(t, moduleDefs, tc.fn, tc.args)
			res := run(t, p, pk[0], pk[1], faastype.Warm)
			if res.Status != tc.status {
				t.Fatalf("status %s, want %s (error %+v)", res.Status, tc.status, res.Error)
			}
			if got := describe(t, raisable(res))[0]; !strings.Contains(got, tc.want) {
				t.Fatalf("result %q does not contain %q", got, tc.want)
			}
		})
	}
}

// TestNativeStdlibLibraries runs the standard library modules backed by C
// libraries the image links (SQLite, bzip2, xz) in the sandbox.
func TestNativeStdlibLibraries(t *testing.T) {
	p := pool(t)
	for _, tc := range []struct{ name, defs, want string }{
		{"sqlite3 in memory and in /tmp", `
def f():
    import sqlite3
    out = []
    for where in (":memory:", "/tmp/t.db"):
        con = sqlite3.connect(where)
        con.execute("create table t (k integer primary key, v text)")
        con.executemany("insert into t (v) values (?)", ((str(i),) for i in range(10000)))
        con.commit()
        out.append(con.execute("select count(*), sum(length(v)), max(k) from t where k % 2 = 0").fetchone())
        con.close()
    import os
    return out, os.path.getsize("/tmp/t.db") > 0, sqlite3.sqlite_version`, "([(5000, 19445, 10000), (5000, 19445, 10000)], True, '3."},
		{"bz2 round trip", `
def f():
    import bz2
    data = b"wasmfaas " * 10000
    packed = bz2.compress(data)
    return bz2.decompress(packed) == data, len(packed) < len(data) // 10`, "(True, True)"},
		{"lzma round trip", `
def f():
    import lzma
    data = bytes(range(256)) * 400
    packed = lzma.compress(data, preset=6)
    with lzma.open("/tmp/x.xz", "wb") as fh:
        fh.write(data)
    with lzma.open("/tmp/x.xz") as fh:
        back = fh.read()
    return lzma.decompress(packed) == data, back == data`, "(True, True)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pk := pickles(t, tc.defs, "f", "((), {})")
			res := run(t, p, pk[0], pk[1], faastype.Fresh)
			if res.Status != faastype.Completed {
				t.Fatalf("status %s (error %+v)", res.Status, res.Error)
			}
			if got := describe(t, res.Payload)[0]; !strings.Contains(got, tc.want) {
				t.Fatalf("result %q does not contain %q", got, tc.want)
			}
		})
	}
}

// The structural check's idea of the sandbox (pickle.SandboxModule) agrees
// with the sandbox: every standard library module that imports in the
// guest may be referred to by a pickle, and none that fails to import.
func TestStdlibAgreesWithThePickleCheck(t *testing.T) {
	requireImage(t)
	const script = `import contextlib, importlib, io, json, sys
res = {}
for name in sorted(sys.stdlib_module_names):
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            importlib.import_module(name)
        res[name] = True
    except BaseException:
        res[name] = False
print(json.dumps(res))
`
	var out, errOut bytes.Buffer
	code, err := RunPython(context.Background(), EngineConfig{}, []string{"-c", script}, strings.NewReader(""), &out, &errOut)
	if err != nil || code != 0 {
		t.Fatalf("%v %d %s", err, code, errOut.String())
	}
	var imports map[string]bool
	if err := json.Unmarshal(out.Bytes(), &imports); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	var failing []string
	for name, ok := range imports {
		if ok != pickle.SandboxModule(name) {
			t.Errorf("%s: imports in the sandbox: %v; the pickle check accepts it: %v", name, ok, pickle.SandboxModule(name))
		}
		if !ok {
			failing = append(failing, name)
		}
	}
	slices.Sort(failing)
	t.Logf("%d of %d standard library modules do not import: %v", len(failing), len(imports), failing)
}
