package faastype

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/wasmfaas/wasmfaas/internal/fill"
)

// filler fills every field with a valid, distinct value.
func filler(seed int) *fill.Filler {
	return &fill.Filler{Seed: seed, Custom: func(path string, v reflect.Value) bool {
		switch v.Type() {
		case reflect.TypeOf(Status("")):
			v.SetString(string(Failed))
		case reflect.TypeOf(Isolation("")):
			v.SetString(string(Fresh))
		case reflect.TypeOf(ErrorKind("")):
			v.SetString(string(KindTimeout))
		case reflect.TypeOf([]string(nil)):
			if !strings.HasSuffix(path, "Env") {
				return false
			}
			v.Set(reflect.ValueOf([]string{"A=1", "B_2=two=2"}))
		default:
			return false
		}
		return true
	}}
}

func TestTaskRoundTripEveryField(t *testing.T) {
	var in Task
	filler(1).Fill(&in)
	out, err := DecodeTask(AppendTask(nil, &in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&in, out) {
		t.Fatalf("round trip lost a field:\n in  %+v\n out %+v", in, *out)
	}
}

func TestResultRoundTripEveryField(t *testing.T) {
	var in Result
	filler(7).Fill(&in)
	out, err := DecodeResult(AppendResult([]byte("prefix"), &in)[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&in, out) {
		t.Fatalf("round trip lost a field:\n in  %+v\n out %+v", in, *out)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := AppendResult(nil, &Result{Status: Completed, Payload: []byte("x")})
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"bad status", AppendResult(nil, &Result{Status: "DONE"})},
		{"failed without kind", AppendResult(nil, &Result{Status: Failed})},
		{"negative timing", AppendResult(nil, &Result{Status: Completed, Timings: Timings{Run: -1}})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := DecodeResult(c.b); !errors.Is(err, ErrCodec) {
				t.Fatalf("err = %v, want ErrCodec", err)
			}
		})
	}
	tasks := []struct {
		name string
		t    Task
	}{
		{"id too long", Task{ID: strings.Repeat("x", 257)}},
		{"bad isolation", Task{ID: "a", Isolation: "hot"}},
	}
	for _, c := range tasks {
		t.Run(c.name, func(t *testing.T) {
			if _, err := DecodeTask(AppendTask(nil, &c.t)); !errors.Is(err, ErrCodec) {
				t.Fatalf("err = %v, want ErrCodec", err)
			}
		})
	}
}

func FuzzDecodeResult(f *testing.F) {
	f.Add(AppendResult(nil, &Result{Status: Failed, Error: &TaskError{Kind: KindTimeout, Message: "m"}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResult(b)
		if err != nil {
			return
		}
		again, err := DecodeResult(AppendResult(nil, r))
		if err != nil || !reflect.DeepEqual(r, again) {
			t.Fatalf("re-encoding a decoded result changed it: %v", err)
		}
	})
}
