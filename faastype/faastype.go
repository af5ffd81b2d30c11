// Package faastype is the task model every part of WasmFaaS shares: task
// statuses, isolation levels, limits, error kinds, timings, the task a
// sandbox runs and the result it produces, and the statistics of a sandbox
// pool. It also owns the one binary form of a task and a result (codec.go),
// which the sandbox pipes and the dispatcher-worker wire both carry, so that
// a field cannot travel one way and be dropped the other.
//
// It imports nothing of the project's and nothing outside the standard
// library: storage (store), the HTTP API (api), the sandbox host (runtime),
// the wire protocol (wire), the dispatcher and the workers all depend on it,
// and it depends on none of them. Like river's rivertype, it is the leaf of
// the dependency graph.
package faastype

import (
	"fmt"
	"time"
)

// Status is a task's status (course protocol). Statuses only move forward:
// QUEUED -> RUNNING -> COMPLETED|FAILED, and QUEUED -> FAILED on cancel.
type Status string

const (
	Queued    Status = "QUEUED"
	Running   Status = "RUNNING"
	Completed Status = "COMPLETED"
	Failed    Status = "FAILED"
)

// Final reports whether s is COMPLETED or FAILED.
func (s Status) Final() bool { return s == Completed || s == Failed }

// Isolation says when a sandbox instance may be reused.
type Isolation string

const (
	// Warm reuses an instance only for tasks of the same registered
	// function (Task.Function), never across functions.
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
// runs unchanged (runtime's TestGuestVersions checks them against the
// image).
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
	// Function keys warm reuse: an interpreter only ever runs tasks whose
	// Function is that of its first task. Dispatchers set it to the
	// registered function's id, so two registrations never share an
	// interpreter even when they send the same bytes. Empty means a
	// function of its own: the task never runs on an interpreter that ran
	// something else, nor leaves one for another task.
	Function  string
	Isolation Isolation
	// Timeout overrides the pool's timeout for this task when positive and
	// smaller.
	Timeout time.Duration
	// MemoryBytes caps the interpreter's memory for this task when positive
	// and smaller than the pool's cap (a function's own memory setting).
	MemoryBytes uint64
	// Env is the interpreter's whole environment, "NAME=value" entries
	// (the function's variables and secrets), set when the function is
	// loaded: os.environ holds exactly these. Functions share no
	// interpreter, so a warm one keeps its function's.
	Env []string
	// WantJSON asks for the return value as JSON too (Result.JSON).
	WantJSON bool
	Fn       []byte // the pickled function
	Args     []byte // the pickled (args, kwargs)
	// Bundle is the content hash of the modules and packages the function
	// was registered with (package bundle), "" for none; the sandbox mounts
	// them read-only on sys.path. BundleData is that bundle's zip. Callers
	// of a sandbox pool always give it with Bundle; the pool passes it on to
	// a sandbox process only when the process does not hold it already, and
	// a dispatcher never sends it to a worker (workers fetch a bundle by
	// hash, once, and cache it).
	Bundle     string
	BundleData []byte
}

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

// ErrorKinds lists every kind, in the order the API documents them.
var ErrorKinds = []ErrorKind{
	KindUserException, KindUserExit, KindTimeout, KindMemoryLimit, KindSandboxCrash, KindBadPayload,
	KindResultTooLarge, KindUnpicklable, KindPayloadTooLarge, KindWorkerLost, KindCancelled,
}

// PythonException is the built-in exception a failure of this kind is
// reported as when the platform, not the function, decided it (the
// result of such a task unpickles to PythonException()(message)).
func (k ErrorKind) PythonException() string {
	switch k {
	case KindTimeout:
		return "TimeoutError"
	case KindMemoryLimit:
		return "MemoryError"
	case KindBadPayload, KindPayloadTooLarge, KindResultTooLarge:
		return "ValueError"
	case KindUnpicklable:
		return "TypeError"
	default:
		// WORKER_LOST, CANCELLED, SANDBOX_CRASH, USER_EXIT, and a
		// USER_EXCEPTION whose own pickle was lost.
		return "RuntimeError"
	}
}

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
// client can raise: a user exception as raised, with the traceback attached
// as a note. A FAILED result with an empty Payload stands for the built-in
// exception of its kind (Error.Kind.PythonException()(Error.Message));
// the store writes that pickle when it records the outcome. Error always
// says what happened.
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

// Failure is the FAILED result of a failure the platform detected (a
// timeout, a crash, a lost worker, a payload that cannot be loaded): its
// Payload is left empty, standing for the built-in exception of kind (see
// Result).
func Failure(kind ErrorKind, message string) *Result {
	return &Result{Status: Failed, Error: &TaskError{Kind: kind, Message: message}}
}

// PoolStats are counters of a sandbox pool since it started.
type PoolStats struct {
	Size         int    `json:"size"`
	Ready        int    `json:"ready"`
	Busy         int    `json:"busy"`
	Tasks        uint64 `json:"tasks"`
	WarmRuns     uint64 `json:"warm_runs"`
	ColdRuns     uint64 `json:"cold_runs"`
	Timeouts     uint64 `json:"timeouts"`
	Crashes      uint64 `json:"crashes"`
	Restarts     uint64 `json:"restarts"`
	WaitingTasks int    `json:"waiting_tasks"`
	// Walls says which OS-level walls the sandbox processes put up around
	// themselves ("up: ...; missing: ... (why)").
	Walls string `json:"walls,omitempty"`
}

// Bounds of a function's environment (Task.Env).
const (
	MaxEnvVars  = 128
	MaxEnvBytes = 32 << 10 // names and values together
)
