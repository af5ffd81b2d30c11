package pickle

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
)

// TestDescribeAgreesWithRepr pickles plain data with CPython (every
// protocol, and dill as the sandbox does) and checks that Describe renders
// exactly repr() of the value, without unpickling; pickles that need a
// global (sets and bytes in the old protocols) are named instead.
func TestDescribeAgreesWithRepr(t *testing.T) {
	const program = `
import base64, json, pickle, pickletools, sys
import dill
rec = [1]; rec.append(rec)
shared = [1, 2]
d = {"k": 1}; d["self"] = [d]
values = [
    None, True, False, 0, 1, -1, 255, 256, 65535, 65536, 2**31 - 1, -2**31, 2**31, 2**63, -2**100, 10**50,
    0.0, -0.0, 1.0, 0.1, 1.5, -2.5e-3, 1e16, 1e15, 123456789012345678.0, 1e-4, 1e-5, 1.5e300, 5e-324,
    float("inf"), float("-inf"), float("nan"),
    "", "abc", "it's", 'say "hi"', "both ' and \"", "tab\t nl\n cr\r bs\\ end", "\x00\x1f\x7f\x80\x9f\xa0\xad",
    "é漢字😀", "\u2028\u200b\ufeff", "\ud800x", "\\u0041 \\\\u0041", "<script>alert(1)</script>",
    b"", b"abc", b"it's", b"\x00\xff\n\\", bytearray(b"xy"),
    (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((),), [], [1, [2, [3]]], {}, {"a": 1, "b": [1, 2]},
    {1: "a", 2: "b"}, {(1, 2): frozenset()}, set(), {1, 2, 3}, frozenset({"a"}), {1: {True: None}},
    rec, [shared, shared], d, list(range(2500)), {str(i): i for i in range(1200)}, set(range(1500)),
    ("x" * 300,), [[[[[[1]]]]]], [1.0, 2, "3", b"4", None, (5,)],
]
out = []
for v in values:
    for p in list(range(6)) + ["dill"]:
        b = dill.dumps(v) if p == "dill" else pickle.dumps(v, protocol=p)
        needs_global = any(op.name in ("GLOBAL", "STACK_GLOBAL", "REDUCE") for op, _, _ in pickletools.genops(b))
        out.append([base64.b64encode(b).decode(), repr(v), needs_global, str(p)])
json.dump(out, sys.stdout)
`
	var cases [][4]any
	pyfixture.Run(t, program, nil, &cases)
	if len(cases) < 400 {
		t.Fatalf("only %d cases", len(cases))
	}
	literal := 0
	for _, c := range cases {
		b, _ := base64.StdEncoding.DecodeString(c[0].(string))
		want, needsGlobal, proto := c[1].(string), c[2].(bool), c[3].(string)
		got := Describe(b, 1<<20)
		switch {
		case got.Truncated:
			t.Errorf("protocol %s, %.80s: truncated", proto, want)
		case got.Literal && got.Text != want:
			t.Errorf("protocol %s: Describe = %.200q, repr = %.200q", proto, got.Text, want)
		case !got.Literal && !needsGlobal:
			t.Errorf("protocol %s, %.80s: not rendered: %s", proto, want, got.Text)
		case !got.Literal && !strings.HasPrefix(got.Text, "a pickled "):
			t.Errorf("protocol %s, %.80s: %s", proto, want, got.Text)
		}
		if got.Literal {
			literal++
		}
	}
	t.Logf("%d pickles, %d rendered as their repr", len(cases), literal)
}

// Anything but plain data is named, never run; the text is cut at the
// length asked for; an invalid pickle says why.
func TestDescribeNamesWhatItDoesNotRender(t *testing.T) {
	for _, c := range []struct {
		fixture, want string
	}{
		{"lambda_p4", "a pickled function"},
		{"math_sqrt_p0", "a pickled reference to math.sqrt"},
		{"builtins_len_p2", "a pickled reference to builtins.len"},
	} {
		if got := Describe(pyfixture.Bytes(t, c.fixture), 100); got.Text != c.want || got.Literal {
			t.Errorf("%s: %+v, want %q", c.fixture, got, c.want)
		}
	}
	var exc [][2]string
	pyfixture.Run(t, `
import base64, json, sys, dill
class Point:
    def __init__(self): self.x = 1
import pickle
noted = ValueError("noted")
noted.add_note("Traceback in the sandbox: ...")  # as the sandbox sends a failure
values = [ValueError("boom"), KeyError("k", 2), RuntimeError(), [ZeroDivisionError("division by zero")], Point(), ValueError, noted]
out = [[base64.b64encode(dill.dumps(v)).decode(), base64.b64encode(pickle.dumps(v, protocol=2)).decode()] for v in values]
json.dump(out, sys.stdout)
`, nil, &exc)
	for i, want := range []struct {
		text    string
		literal bool
	}{
		{"ValueError('boom')", true},
		{"KeyError('k', 2)", true},
		{"RuntimeError()", true},
		{"[ZeroDivisionError('division by zero')]", true},
		{"a pickled instance of an unknown class", false}, // dill builds the class itself
		{"a pickled reference to builtins.ValueError", false},
		{"ValueError('noted')", true},
	} {
		for j, b64 := range exc[i] {
			b, _ := base64.StdEncoding.DecodeString(b64)
			got := Describe(b, 100)
			if j == 1 && i == 4 {
				want.text = "a pickled instance of __main__.Point" // by reference with plain pickle
			}
			if got.Text != want.text || got.Literal != want.literal {
				t.Errorf("%d/%d: %+v, want %+v", i, j, got, want)
			}
		}
	}

	long := Describe([]byte("\x80\x04\x95\x0e\x00\x00\x00\x00\x00\x00\x00\x8c\x0aabcdefghij\x94."), 16)
	if long.Text != "'abcdefghij'" || !long.Literal || long.Truncated {
		t.Errorf("short enough: %+v", long)
	}
	cut := Describe([]byte("(K\x01K\x02K\x03K\x04K\x05K\x06K\x07K\x08K\x09K\x0al."), 16)
	if cut.Text != "[1, 2, 3, 4, 5, …" || !cut.Truncated || !cut.Literal {
		t.Errorf("cut: %+v", cut)
	}
	if bad := Describe([]byte("K\x01"), 100); bad.Literal || !strings.HasPrefix(bad.Text, "not a valid pickle: truncated") {
		t.Errorf("invalid: %+v", bad)
	}
}

// Describe of arbitrary bytes never panics (the fuzz corpus of the
// inspector reaches it too).
func FuzzDescribe(f *testing.F) {
	f.Add([]byte("(K\x01K\x02l."))
	f.Add([]byte("]q\x00h\x00a."))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := Describe(b, 200)
		if len(d.Text) > 200+len("…") && d.Literal {
			t.Fatalf("%d bytes of text", len(d.Text))
		}
	})
}
