package faastype

// The binary form of a Task and a Result. The sandbox pipes (runtime) carry
// it inside their frames and the dispatcher-worker wire (wire) carries it as
// one field of its TASK, RESULT, PULL and WORK messages: one encoder and one
// decoder for both, so a field added here travels everywhere or nowhere
// (codec_test.go fills every field by reflection and checks the round
// trip).
//
// Field encodings (as in the wire format): uint is an unsigned LEB128
// varint; bytes and str are a uint length then the bytes; bool one byte, 0
// or 1; f64 8 bytes, IEEE 754 binary64, little endian.
//
//	Task   = id str, function str, isolation str, timeout_ms uint,
//	         want_json bool, fn bytes, args bytes, bundle str (hex content
//	         hash, "" none), bundle_data bytes (the bundle's zip, when the
//	         receiver does not hold it yet; empty otherwise), memory_bytes
//	         uint (0: the receiver's cap), env uint count then that many
//	         str "NAME=value"
//	Result = status str, kind str ("" if no error), message str,
//	         traceback str, payload bytes, stdout bytes, stderr bytes,
//	         flags byte (bit 0 output truncated, bit 1 warm),
//	         timings 6 f64 (queue, boot, deserialize, run, serialize,
//	         total; seconds), json bytes
//
// Decoders check lengths against the input before they allocate, return
// byte fields as sub-slices of the input, and reject what a correct encoder
// never writes: an unknown status or isolation, a FAILED result without an
// error kind, a timing that is not a finite number >= 0, trailing bytes.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// ErrCodec is wrapped by every decoding error.
var ErrCodec = errors.New("malformed encoding")

// maxIDBytes bounds a task id and a function key.
const maxIDBytes = 256

// AppendTask appends the binary form of t to b.
func AppendTask(b []byte, t *Task) []byte {
	e := Encoder{B: b}
	e.Task(t)
	return e.B
}

// DecodeTask reads a Task written by AppendTask (and nothing after it).
func DecodeTask(b []byte) (*Task, error) {
	d := Decoder{B: b}
	t := d.Task()
	if err := d.Finish("task"); err != nil {
		return nil, err
	}
	return &t, nil
}

// AppendResult appends the binary form of r to b.
func AppendResult(b []byte, r *Result) []byte {
	e := Encoder{B: b}
	e.Result(r)
	return e.B
}

// DecodeResult reads a Result written by AppendResult (and nothing after
// it). Empty byte fields decode as nil.
func DecodeResult(b []byte) (*Result, error) {
	d := Decoder{B: b}
	r := d.Result()
	if err := d.Finish("result"); err != nil {
		return nil, err
	}
	return r, nil
}

// Task writes t's fields, as AppendTask does, inside a larger encoding.
func (e *Encoder) Task(t *Task) {
	e.Str(t.ID)
	e.Str(t.Function)
	e.Str(string(t.Isolation))
	e.Uint(uint64(max(t.Timeout, 0) / time.Millisecond))
	e.Bool(t.WantJSON)
	e.Bytes(t.Fn)
	e.Bytes(t.Args)
	e.Str(t.Bundle)
	e.Bytes(t.BundleData)
	e.Uint(t.MemoryBytes)
	e.Uint(uint64(len(t.Env)))
	for _, kv := range t.Env {
		e.Str(kv)
	}
}

// Task reads what Encoder.Task wrote; a bad value sets Err.
func (d *Decoder) Task() Task {
	var t Task
	t.ID = d.Str()
	t.Function = d.Str()
	iso := d.Str()
	ms := d.Uint()
	t.WantJSON = d.Bool()
	t.Fn = d.Bytes()
	t.Args = d.Bytes()
	t.Bundle = d.Str()
	t.BundleData = d.Bytes()
	t.MemoryBytes = d.Uint()
	n := d.Uint()
	if n > MaxEnvVars {
		d.Fail("too many environment variables")
	}
	for i := uint64(0); i < n && d.Err == nil; i++ {
		kv := d.Str()
		if !strings.Contains(kv, "=") {
			d.Fail("environment entry without '='")
		}
		t.Env = append(t.Env, kv)
	}
	if d.Err != nil {
		return Task{}
	}
	switch {
	case len(t.ID) > maxIDBytes:
		d.Fail("task id too long")
	case len(t.Function) > maxIDBytes:
		d.Fail("function key too long")
	case len(t.Bundle) > maxIDBytes:
		d.Fail("bundle hash too long")
	case len(t.BundleData) > 0 && t.Bundle == "":
		d.Fail("bundle data without a bundle hash")
	case ms > uint64(math.MaxInt64/int64(time.Millisecond)):
		d.Fail("timeout out of range")
	}
	var err error
	if t.Isolation, err = ParseIsolation(iso); err != nil {
		d.Fail(err.Error())
	}
	if d.Err != nil {
		return Task{}
	}
	t.Timeout = time.Duration(ms) * time.Millisecond
	return t
}

// Result writes r's fields, as AppendResult does, inside a larger encoding.
func (e *Encoder) Result(r *Result) {
	e.Str(string(r.Status))
	var te TaskError
	if r.Error != nil {
		te = *r.Error
	}
	e.Str(string(te.Kind))
	e.Str(te.Message)
	e.Str(te.Traceback)
	e.Bytes(r.Payload)
	e.Bytes(r.Stdout)
	e.Bytes(r.Stderr)
	var flags byte
	if r.OutputTruncated {
		flags |= 1
	}
	if r.Warm {
		flags |= 2
	}
	e.Byte(flags)
	t := r.Timings
	for _, v := range [...]float64{t.Queue, t.Boot, t.Deserialize, t.Run, t.Serialize, t.Total} {
		e.F64(v)
	}
	e.Bytes(r.JSON)
}

// Result reads what Encoder.Result wrote; a bad value sets Err (and the
// result is nil).
func (d *Decoder) Result() *Result {
	r := &Result{Status: Status(d.Str())}
	te := TaskError{Kind: ErrorKind(d.Str()), Message: d.Str(), Traceback: d.Str()}
	r.Payload = d.Bytes()
	r.Stdout = d.Bytes()
	r.Stderr = d.Bytes()
	flags := d.Byte()
	r.OutputTruncated, r.Warm = flags&1 != 0, flags&2 != 0
	t := &r.Timings
	for _, p := range [...]*float64{&t.Queue, &t.Boot, &t.Deserialize, &t.Run, &t.Serialize, &t.Total} {
		*p = d.F64()
		if d.Err == nil && *p < 0 {
			d.Fail("negative timing")
		}
	}
	r.JSON = d.Bytes()
	if d.Err != nil {
		return nil
	}
	switch {
	case r.Status != Completed && r.Status != Failed:
		d.Fail(fmt.Sprintf("status %q", r.Status))
	case flags&^3 != 0:
		d.Fail("unknown flags")
	case te.Kind != "":
		r.Error = &te
	case r.Status == Failed:
		d.Fail("FAILED without an error kind")
	case te.Message != "" || te.Traceback != "":
		d.Fail("error text without an error kind")
	}
	if d.Err != nil {
		return nil
	}
	return r
}

// Encoder appends fields in the encodings above. The wire package builds
// its messages with it too.
type Encoder struct{ B []byte }

func (e *Encoder) Uint(v uint64)  { e.B = binary.AppendUvarint(e.B, v) }
func (e *Encoder) Bytes(v []byte) { e.Uint(uint64(len(v))); e.B = append(e.B, v...) }
func (e *Encoder) Str(v string)   { e.Uint(uint64(len(v))); e.B = append(e.B, v...) }
func (e *Encoder) F64(v float64)  { e.B = binary.LittleEndian.AppendUint64(e.B, math.Float64bits(v)) }
func (e *Encoder) Byte(v byte)    { e.B = append(e.B, v) }
func (e *Encoder) Bool(v bool) {
	if v {
		e.B = append(e.B, 1)
	} else {
		e.B = append(e.B, 0)
	}
}

// Decoder reads fields; after the first error every read returns a zero
// value and Err stays set.
type Decoder struct {
	B   []byte
	Err error
}

// Fail records what is wrong (the first failure wins).
func (d *Decoder) Fail(what string) {
	if d.Err == nil {
		d.Err = errors.New(what)
	}
	d.B = nil
}

// Finish reports the first failure, or trailing bytes, as an ErrCodec.
func (d *Decoder) Finish(what string) error {
	if d.Err == nil && len(d.B) > 0 {
		d.Fail(fmt.Sprintf("%d bytes after the last field", len(d.B)))
	}
	if d.Err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCodec, what, d.Err)
	}
	return nil
}

func (d *Decoder) Uint() uint64 {
	if d.Err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.Fail("bad varint")
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Bytes returns a sub-slice of the input (capacity clipped), nil if empty.
func (d *Decoder) Bytes() []byte {
	n := d.Uint()
	if d.Err != nil {
		return nil
	}
	if n > uint64(len(d.B)) {
		d.Fail(fmt.Sprintf("a %d-byte field in %d bytes", n, len(d.B)))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := d.B[:n:n]
	d.B = d.B[n:]
	return v
}

func (d *Decoder) Str() string { return string(d.Bytes()) }

func (d *Decoder) Byte() byte {
	if d.Err != nil {
		return 0
	}
	if len(d.B) < 1 {
		d.Fail("truncated")
		return 0
	}
	v := d.B[0]
	d.B = d.B[1:]
	return v
}

func (d *Decoder) Bool() bool {
	switch d.Byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.Fail("bad bool")
	return false
}

// F64 reads a finite number.
func (d *Decoder) F64() float64 {
	if d.Err != nil {
		return 0
	}
	if len(d.B) < 8 {
		d.Fail("truncated")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.B))
	d.B = d.B[8:]
	if math.IsNaN(v) || math.IsInf(v, 0) {
		d.Fail("number is not finite")
		return 0
	}
	return v
}
