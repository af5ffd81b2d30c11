package runtime

import (
	"fmt"
	"time"
)

// Isolation says when a sandbox instance may be reused.
type Isolation string

const (
	// Warm reuses an instance only for tasks of the same function (keyed by
	// the SHA-256 of the function payload), never across functions.
	Warm Isolation = "warm"
	// Fresh gives every task a pristine interpreter restored from the
	// snapshot.
	Fresh Isolation = "fresh"
)

// ParseIsolation accepts "", "warm" and "fresh" ("" means Warm).
func ParseIsolation(s string) (Isolation, error) {
	switch s {
	case "", string(Warm):
		return Warm, nil
	case string(Fresh):
		return Fresh, nil
	}
	return "", fmt.Errorf("isolation must be %q or %q, not %q", Warm, Fresh, s)
}

// The guest's versions: a function pickled by this Python with this dill
// runs unchanged (TestGuestVersions checks them against the image).
const (
	PythonVersion = "3.11.2"
	DillVersion   = "0.3.6"
)

// Limits bound one task. Zero fields take the defaults of DefaultLimits.
type Limits struct {
	Timeout     time.Duration `json:"timeout_ns"`   // wall clock, from the start of the call
	MemoryBytes uint64        `json:"memory_bytes"` // guest linear memory cap
	OutputBytes int           `json:"output_bytes"` // captured stdout and stderr, each
	ResultBytes int           `json:"result_bytes"` // pickled result
	ArgBytes    int           `json:"args_bytes"`   // pickled function and arguments, each
	TmpBytes    int           `json:"tmp_bytes"`    // writable in-memory /tmp
}

// DefaultLimits are the limits a dispatcher or worker uses unless told
// otherwise.
var DefaultLimits = Limits{
	Timeout:     30 * time.Second,
	MemoryBytes: 256 << 20,
	OutputBytes: 1 << 20,
	ResultBytes: 10 << 20,
	ArgBytes:    16 << 20,
	TmpBytes:    16 << 20,
}

// WithDefaults returns l with every zero field taken from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	if l.Timeout > 0 {
		d.Timeout = l.Timeout
	}
	if l.MemoryBytes > 0 {
		d.MemoryBytes = l.MemoryBytes
	}
	if l.OutputBytes > 0 {
		d.OutputBytes = l.OutputBytes
	}
	if l.ResultBytes > 0 {
		d.ResultBytes = l.ResultBytes
	}
	if l.ArgBytes > 0 {
		d.ArgBytes = l.ArgBytes
	}
	if l.TmpBytes > 0 {
		d.TmpBytes = l.TmpBytes
	}
	return d
}

// Task is one function call to run in a sandbox. Payloads are raw dill
// pickles (already base64-decoded).
type Task struct {
	ID string
	// FnHash keys warm reuse: an interpreter only ever runs tasks with the
	// FnHash of its first task. Run uses SHA-256 of FnPayload when it is
	// zero; dispatchers derive it from the function id (dispatch.Task), so
	// two registrations of the same bytes never share an interpreter.
	FnHash      [32]byte
	FnPayload   []byte
	ArgsPayload []byte
	Isolation   Isolation
	// Timeout overrides the pool's timeout for this task when positive and
	// smaller.
	Timeout time.Duration
	// WantJSON asks for the return value as JSON too (Result.JSON).
	WantJSON bool
}

// Status is the outcome of a task.
type Status string

const (
	Completed Status = "COMPLETED"
	Failed    Status = "FAILED"
)

// ErrorKind classifies a FAILED task. The strings are part of the HTTP API.
type ErrorKind string

const (
	KindUserException   ErrorKind = "USER_EXCEPTION" // the function raised
	KindUserExit        ErrorKind = "USER_EXIT"      // the function called sys.exit or os._exit
	KindTimeout         ErrorKind = "TIMEOUT"        // wall clock exceeded; sandbox replaced
	KindMemoryLimit     ErrorKind = "MEMORY_LIMIT"   // linear memory cap reached
	KindSandboxCrash    ErrorKind = "SANDBOX_CRASH"  // trap, stack overflow, interpreter abort
	KindBadPayload      ErrorKind = "BAD_PAYLOAD"    // function or arguments could not be loaded
	KindResultTooLarge  ErrorKind = "RESULT_TOO_LARGE"
	KindUnpicklable     ErrorKind = "RESULT_UNPICKLABLE" // result (or exception) cannot be pickled
	KindPayloadTooLarge ErrorKind = "PAYLOAD_TOO_LARGE"
	KindWorkerLost      ErrorKind = "WORKER_LOST" // set by the store when attempts run out
	KindCancelled       ErrorKind = "CANCELLED"
)

// TaskError describes why a task FAILED, in plain text.
type TaskError struct {
	Kind      ErrorKind `json:"kind"`
	Message   string    `json:"message"`
	Traceback string    `json:"traceback,omitempty"`
}

func (e *TaskError) Error() string { return string(e.Kind) + ": " + e.Message }

// Timings split the time a task spent, in seconds.
type Timings struct {
	Queue       float64 `json:"queue"`       // waiting for a free sandbox
	Boot        float64 `json:"boot"`        // restoring or replacing an instance
	Deserialize float64 `json:"deserialize"` // dill.loads of function and arguments
	Run         float64 `json:"run"`         // the function itself
	Serialize   float64 `json:"serialize"`   // dill.dumps of the result
	Total       float64 `json:"total"`       // Run call, end to end
}

// Result is what running a task produced. For COMPLETED, Payload is the
// pickled return value. For FAILED it is a pickled exception instance the
// client can raise (user exceptions as raised, with the traceback attached
// as a note; platform failures as built-in exceptions); it may be empty if
// not even that could be made, and Error always says what happened.
type Result struct {
	Status          Status
	Payload         []byte
	Error           *TaskError
	Stdout          []byte
	Stderr          []byte
	OutputTruncated bool
	Warm            bool // ran on an instance that had already loaded this function
	Timings         Timings
	// JSON is the return value as JSON text, when the task asked for it and
	// JSON can represent the value exactly (nil otherwise).
	JSON []byte
}
