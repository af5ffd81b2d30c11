package pickle

// The writer: the few pickles the host makes itself. The course protocol
// wants the result of a FAILED task to be a pickled exception instance, so
// that a Python client can `raise deserialize(result)`; for failures the
// platform detects (timeout, crash, worker lost, ...) the pickle is written
// here, byte for byte what pickletools.optimize(pickle.dumps(exc, 3))
// produces for an exception with one string argument:
//
//	PROTO 3, GLOBAL "<module>\n<name>\n", BINUNICODE message, TUPLE1, REDUCE, STOP
//
// A function registered as source text and arguments sent as JSON travel
// as pickles of calls into pyshim, made the same way.

import (
	"encoding/binary"
	"regexp"
	"strings"

	"github.com/wasmfaas/wasmfaas/faastype"
)

var pyIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// Exception returns a pickle equivalent to pickle.dumps(<pyType>(message)).
// pyType is a built-in exception name such as "TimeoutError", or a dotted
// "module.Name" for a class outside builtins; anything that is not a dotted
// Python identifier becomes RuntimeError. Invalid UTF-8 in message is
// replaced by U+FFFD.
func Exception(pyType, message string) []byte {
	if !pyIdent.MatchString(pyType) {
		pyType = "RuntimeError"
	}
	module, name := "builtins", pyType
	if i := strings.LastIndexByte(pyType, '.'); i >= 0 {
		module, name = pyType[:i], pyType[i+1:]
	}
	return Call(module, name, message)
}

// FailurePayload is the pickle a FAILED result stands for when its own
// payload is empty (see faastype.Result): the built-in exception of its
// error kind, with its message.
func FailurePayload(e *faastype.TaskError) []byte {
	if e == nil {
		return Exception("RuntimeError", "the task failed")
	}
	return Exception(e.Kind.PythonException(), e.Message)
}

// Call returns a pickle that loads as module.name(*args) with string
// arguments: PROTO 3, GLOBAL, one BINUNICODE per argument, TUPLE1..3 (or
// MARK ... TUPLE), REDUCE, STOP, as CPython writes it. Invalid UTF-8 in an
// argument is replaced by U+FFFD.
func Call(module, name string, args ...string) []byte {
	n := 16 + len(module) + len(name)
	for _, a := range args {
		n += 5 + len(a)
	}
	b := make([]byte, 0, n)
	b = append(b, 0x80, 3, 'c') // PROTO 3, GLOBAL
	b = append(b, module...)
	b = append(b, '\n')
	b = append(b, name...)
	b = append(b, '\n')
	if len(args) > 3 {
		b = append(b, '(') // MARK
	}
	for _, a := range args {
		a = strings.ToValidUTF8(a, "\uFFFD")
		b = append(b, 'X') // BINUNICODE
		b = binary.LittleEndian.AppendUint32(b, uint32(len(a)))
		b = append(b, a...)
	}
	tuple := [...]byte{')', 0x85, 0x86, 0x87} // EMPTY_TUPLE, TUPLE1..3
	if len(args) < len(tuple) {
		b = append(b, tuple[len(args)])
	} else {
		b = append(b, 't') // TUPLE (from the MARK)
	}
	return append(b, 'R', '.') // REDUCE, STOP
}

// SourcePayload is the function payload of a function registered as source
// text: loading it in the sandbox runs source as the function's __main__ and
// returns entrypoint (pyshim._from_source). name labels tracebacks.
func SourcePayload(source, entrypoint, name string) []byte {
	return Call("pyshim", "_from_source", source, entrypoint, name)
}

// JSONArgsPayload is the arguments payload of a call made with JSON
// arguments: text is {"args": [...], "kwargs": {...}} (pyshim._json_args).
func JSONArgsPayload(text string) []byte {
	return Call("pyshim", "_json_args", text)
}
