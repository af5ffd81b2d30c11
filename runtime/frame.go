package runtime

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// Frames between a Pool and its sandbox processes travel over pipes:
// a little-endian u32 length, then the body, whose first byte is its type.
const (
	frameRun    = 1 // host -> child: run a task
	frameResult = 2 // child -> host: outcome of the task
	frameReady  = 3 // child -> host: engine is up, first instance restored
	// frameProbe, both ways: host -> child "attempt this forbidden act"
	// (the act's name), child -> host what came of it. Only a process
	// started with envProbes=1 (tests) answers; any other ends on it as on
	// any unknown frame.
	frameProbe = 4
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

// A ready frame is frameReady then the boot time (f64 seconds), whether
// this process created the snapshot (bool), its size (uint) and the walls
// it put up (str, wallReport.String), in faastype's encodings.

func encodeReady(bootSecs float64, created bool, snapshotBytes uint64, walls string) []byte {
	e := faastype.Encoder{B: []byte{frameReady}}
	e.F64(bootSecs)
	e.Bool(created)
	e.Uint(snapshotBytes)
	e.Str(walls)
	return e.B
}

func decodeReady(b []byte) (bootSecs float64, created bool, walls string, err error) {
	if len(b) == 0 || b[0] != frameReady {
		return 0, false, "", errors.New("not a ready frame")
	}
	d := faastype.Decoder{B: b[1:]}
	bootSecs, created = d.F64(), d.Bool()
	d.Uint()
	walls = d.Str()
	return bootSecs, created, walls, d.Finish("ready frame")
}

// A run frame is frameRun then the task (faastype.AppendTask; its Timeout
// is the one the child enforces); a result frame is frameResult then the
// result (faastype.AppendResult): the same encoding the dispatcher-worker
// wire carries, so both carry every field.

func encodeRun(t *faastype.Task) []byte {
	return faastype.AppendTask(append(make([]byte, 0, 96+len(t.Fn)+len(t.Args)), frameRun), t)
}

func decodeRun(b []byte) (*faastype.Task, error) {
	if len(b) == 0 || b[0] != frameRun {
		return nil, errors.New("not a run frame")
	}
	return faastype.DecodeTask(b[1:])
}

func encodeResult(res *faastype.Result) []byte {
	n := 128 + len(res.Payload) + len(res.Stdout) + len(res.Stderr) + len(res.JSON)
	if res.Error != nil {
		n += len(res.Error.Message) + len(res.Error.Traceback)
	}
	return faastype.AppendResult(append(make([]byte, 0, n), frameResult), res)
}

func decodeResult(b []byte) (*faastype.Result, error) {
	if len(b) == 0 || b[0] != frameResult {
		return nil, errors.New("not a result frame")
	}
	return faastype.DecodeResult(b[1:])
}
