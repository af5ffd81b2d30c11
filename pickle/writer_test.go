package pickle_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/pickle"
)

func TestPickleExceptionLoadsInPython(t *testing.T) {
	cases := []struct {
		pyType, message      string
		wantType, wantModule string
		wantStr              string
	}{
		{"RuntimeError", "worker lost", "RuntimeError", "builtins", "worker lost"},
		{"TimeoutError", "task exceeded 30s", "TimeoutError", "builtins", "task exceeded 30s"},
		{"MemoryError", "", "MemoryError", "builtins", ""},
		{"ValueError", "ünïcödé ✓ 🚀", "ValueError", "builtins", "ünïcödé ✓ 🚀"},
		{"TypeError", "quote ' \" backslash \\ newline \n end", "TypeError", "builtins", "quote ' \" backslash \\ newline \n end"},
		{"KeyError", "k", "KeyError", "builtins", "'k'"}, // str(KeyError) quotes its argument
		{"concurrent.futures.CancelledError", "gone", "CancelledError", "concurrent.futures._base", "gone"},
		{"not a type!", "fallback", "RuntimeError", "builtins", "fallback"},
		{"", "empty type", "RuntimeError", "builtins", "empty type"},
		{"RuntimeError", "bad utf-8 \xff\xfe here", "RuntimeError", "builtins", "bad utf-8 \ufffd here"},
		{"RuntimeError", strings.Repeat("long ", 20000), "RuntimeError", "builtins", strings.Repeat("long ", 20000)},
	}
	payloads := make([]string, len(cases))
	for i, c := range cases {
		payloads[i] = pickle.EncodeBase64(pickle.Exception(c.pyType, c.message))
	}
	got := pyfixture.LoadExceptions(t, payloads)
	for i, c := range cases {
		g := got[i]
		if g.LoadErr != "" {
			t.Errorf("%s(%.20q): dill.loads failed: %s", c.pyType, c.message, g.LoadErr)
			continue
		}
		if g.Type != c.wantType || g.Module != c.wantModule || g.Str != c.wantStr || !g.IsExc || !g.Raised {
			t.Errorf("%s(%.20q) loads as %s.%s(%.40q) exception=%v raised=%v; want %s.%s(%.40q)",
				c.pyType, c.message, g.Module, g.Type, g.Str, g.IsExc, g.Raised, c.wantModule, c.wantType, c.wantStr)
		}
	}
}

// The bytes are exactly what CPython writes for the same exception at
// protocol 3, once pickletools.optimize has dropped the unused memo puts.
func TestPickleExceptionMatchesCPython(t *testing.T) {
	cases := [][2]string{
		{"TimeoutError", "task exceeded 30s"},
		{"RuntimeError", "ünïcödé"},
		{"MemoryError", ""},
	}
	const prog = `
import json, pickle, pickletools, sys, base64, builtins
out = []
for typ, msg in json.load(sys.stdin):
    out.append(base64.b64encode(pickletools.optimize(pickle.dumps(getattr(builtins, typ)(msg), 3))).decode())
json.dump(out, sys.stdout)
`
	var want []string
	pyfixture.Run(t, prog, cases, &want)
	for i, c := range cases {
		got := pickle.EncodeBase64(pickle.Exception(c[0], c[1]))
		if got != want[i] {
			g, _ := base64.StdEncoding.DecodeString(got)
			w, _ := base64.StdEncoding.DecodeString(want[i])
			t.Errorf("%s(%q):\n got %q\nwant %q", c[0], c[1], g, w)
		}
	}
}

func TestPythonException(t *testing.T) {
	for _, c := range []struct {
		kind faastype.ErrorKind
		want string
	}{
		{faastype.KindTimeout, "TimeoutError"},
		{faastype.KindMemoryLimit, "MemoryError"},
		{faastype.KindBadPayload, "ValueError"},
		{faastype.KindUnpicklable, "TypeError"},
		{faastype.KindWorkerLost, "RuntimeError"},
		{faastype.KindCancelled, "RuntimeError"},
		{"SOMETHING_NEW", "RuntimeError"},
	} {
		if got := c.kind.PythonException(); got != c.want {
			t.Errorf("PythonException(%s) = %s, want %s", c.kind, got, c.want)
		}
	}
}

func TestDecodeBase64(t *testing.T) {
	long := strings.Repeat("x", 200)
	enc := base64.StdEncoding.EncodeToString([]byte(long))
	var wrapped strings.Builder // codecs style: a newline every 76 characters and at the end
	for i := 0; i < len(enc); i += 76 {
		wrapped.WriteString(enc[i:min(i+76, len(enc))])
		wrapped.WriteByte('\n')
	}
	for _, c := range []struct {
		name, in, want string
		ok             bool
	}{
		{"plain", "aGVsbG8=", "hello", true},
		{"codecs newlines", wrapped.String(), long, true},
		{"crlf and spaces", " aGVs\r\nbG8= \t", "hello", true},
		{"no padding", "aGVsbG8", "hello", true},
		{"empty", "", "", true},
		{"urlsafe alphabet", "-_-_", "", false},
		{"garbage", "not base64!", "", false},
		{"bad length", "aGVsb", "", false},
		{"padding in the middle", "aG=Vs", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := pickle.DecodeBase64(c.in)
			if (err == nil) != c.ok {
				t.Fatalf("DecodeBase64(%q) err = %v, want ok=%v", c.in, err, c.ok)
			}
			if c.ok && string(got) != c.want {
				t.Fatalf("DecodeBase64(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}
