package runtime

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Frames between a Pool and its sandbox processes travel over pipes:
// a little-endian u32 length, then the body, whose first byte is its type.
const (
	frameRun    = 1 // host -> child: run a task
	frameResult = 2 // child -> host: outcome of the task
	frameReady  = 3 // child -> host: engine is up, first instance restored
)

func writeFrame(w *bufio.Writer, body []byte) error {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(body)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return w.Flush()
}

func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n == 0 || uint64(n) > uint64(max) {
		return nil, fmt.Errorf("frame of %d bytes (limit %d)", n, max)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// enc and dec are a minimal binary encoding for frame bodies.
type enc struct{ b []byte }

func (e *enc) u8(v byte)      { e.b = append(e.b, v) }
func (e *enc) u32(v uint32)   { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64)   { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *enc) f64(v float64)  { e.u64(math.Float64bits(v)) }
func (e *enc) bytes(v []byte) { e.u32(uint32(len(v))); e.b = append(e.b, v...) }
func (e *enc) str(v string)   { e.u32(uint32(len(v))); e.b = append(e.b, v...) }
func (e *enc) flag(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

type dec struct {
	b   []byte
	err error
}

var errShortFrame = errors.New("truncated frame")

func (d *dec) take(n uint64) []byte {
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errShortFrame
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) u8() byte {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *dec) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *dec) u64() uint64 {
	if v := d.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (d *dec) f64() float64  { return math.Float64frombits(d.u64()) }
func (d *dec) flag() bool    { return d.u8() != 0 }
func (d *dec) bytes() []byte { return d.take(uint64(d.u32())) }
func (d *dec) str() string   { return string(d.bytes()) }

// runRequest is a task as the child sees it.
type runRequest struct {
	taskID   string
	fnHash   [32]byte
	fresh    bool
	wantJSON bool
	timeout  uint32 // milliseconds
	fn       []byte
	args     []byte
}

func (r *runRequest) encode() []byte {
	e := enc{b: make([]byte, 0, 64+len(r.fn)+len(r.args))}
	e.u8(frameRun)
	e.str(r.taskID)
	e.bytes(r.fnHash[:])
	e.flag(r.fresh)
	e.flag(r.wantJSON)
	e.u32(r.timeout)
	e.bytes(r.fn)
	e.bytes(r.args)
	return e.b
}

func decodeRunRequest(b []byte) (*runRequest, error) {
	d := dec{b: b}
	if d.u8() != frameRun {
		return nil, errors.New("not a run frame")
	}
	r := &runRequest{taskID: d.str()}
	if h := d.bytes(); len(h) == len(r.fnHash) {
		copy(r.fnHash[:], h)
	} else if d.err == nil {
		d.err = errors.New("bad function hash")
	}
	r.fresh = d.flag()
	r.wantJSON = d.flag()
	r.timeout = d.u32()
	r.fn = d.bytes()
	r.args = d.bytes()
	return r, d.err
}

func encodeResult(res *Result) []byte {
	e := enc{b: make([]byte, 0, 128+len(res.Payload)+len(res.Stdout)+len(res.Stderr))}
	e.u8(frameResult)
	e.str(string(res.Status))
	var te TaskError
	if res.Error != nil {
		te = *res.Error
	}
	e.str(string(te.Kind))
	e.str(te.Message)
	e.str(te.Traceback)
	e.bytes(res.Payload)
	e.bytes(res.Stdout)
	e.bytes(res.Stderr)
	e.flag(res.OutputTruncated)
	e.flag(res.Warm)
	t := res.Timings
	for _, v := range []float64{t.Boot, t.Deserialize, t.Run, t.Serialize, t.Total} {
		e.f64(v)
	}
	e.bytes(res.JSON)
	return e.b
}

func decodeResult(b []byte) (*Result, error) {
	d := dec{b: b}
	if d.u8() != frameResult {
		return nil, errors.New("not a result frame")
	}
	res := &Result{Status: Status(d.str())}
	te := TaskError{Kind: ErrorKind(d.str()), Message: d.str(), Traceback: d.str()}
	if te.Kind != "" {
		res.Error = &te
	}
	res.Payload = d.bytes()
	res.Stdout = d.bytes()
	res.Stderr = d.bytes()
	res.OutputTruncated = d.flag()
	res.Warm = d.flag()
	res.Timings.Boot = d.f64()
	res.Timings.Deserialize = d.f64()
	res.Timings.Run = d.f64()
	res.Timings.Serialize = d.f64()
	res.Timings.Total = d.f64()
	if js := d.bytes(); len(js) > 0 {
		res.JSON = js
	}
	if d.err == nil && res.Status != Completed && res.Status != Failed {
		return nil, fmt.Errorf("result frame with status %q", res.Status)
	}
	return res, d.err
}
