package pickle

import (
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"

	"encoding/base64"
	"testing"
)

// FuzzInspectPickle: the inspector never panics, and whatever it accepts
// has a top object the payload checks can judge.
func FuzzInspectPickle(f *testing.F) {
	for _, s := range []string{
		"", ".", "N.", "\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00)}\x86\x94.",
		"(lp0\nI1\naI2\na.", "cmath\nsqrt\n.", "\x80\x04\x8c\x04math\x8c\x04sqrt\x93.",
		"\x80\x02c__builtin__\nset\n]\x85R.", "(I1\nI2\nd.", "\x80\x05\x96\x01\x00\x00\x00\x00\x00\x00\x00a\x98.",
		"\x80\x04(K\x01\x91.", "K\x01p7\n0g7\n.", "Vab\\u00e9\n.", "S'a\\x41'\n.",
	} {
		f.Add([]byte(s))
	}
	for _, b64 := range pyfixture.All(f) {
		if b, err := base64.StdEncoding.DecodeString(b64); err == nil && len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := inspectPickle(data)
		if err == nil && info.top == nil {
			t.Fatal("accepted without a top object")
		}
		if err != nil && info != nil {
			t.Fatal("returned both an error and a result")
		}
		_ = CheckFunction(data)
		_ = CheckArgs(data)
	})
}
