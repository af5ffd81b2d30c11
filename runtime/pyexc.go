package runtime

import (
	"encoding/binary"
	"regexp"
	"strings"
)

// The course protocol wants the result of a FAILED task to be a pickled
// exception instance, so that a Python client can `raise deserialize(result)`.
// The host never runs Python; for failures it detects itself (timeout,
// crash, worker lost, ...) the pickle is written here, byte for byte what
// pickletools.optimize(pickle.dumps(exc, 3)) produces for an exception with
// one string argument:
//
//	PROTO 3, GLOBAL "<module>\n<name>\n", BINUNICODE message, TUPLE1, REDUCE, STOP

var pyIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// PickleException returns a pickle equivalent to pickle.dumps(<pyType>(message)).
// pyType is a built-in exception name such as "TimeoutError", or a dotted
// "module.Name" for a class outside builtins; anything that is not a dotted
// Python identifier becomes RuntimeError. Invalid UTF-8 in message is
// replaced by U+FFFD.
func PickleException(pyType, message string) []byte {
	if !pyIdent.MatchString(pyType) {
		pyType = "RuntimeError"
	}
	module, name := "builtins", pyType
	if i := strings.LastIndexByte(pyType, '.'); i >= 0 {
		module, name = pyType[:i], pyType[i+1:]
	}
	return PickleCall(module, name, message)
}

// PickleCall returns a pickle that loads as module.name(*args) with string
// arguments: PROTO 3, GLOBAL, one BINUNICODE per argument, TUPLE1..3 (or
// MARK ... TUPLE), REDUCE, STOP, as CPython writes it. Invalid UTF-8 in an
// argument is replaced by U+FFFD.
func PickleCall(module, name string, args ...string) []byte {
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
	return PickleCall("pyshim", "_from_source", source, entrypoint, name)
}

// JSONArgsPayload is the arguments payload of a call made with JSON
// arguments: text is {"args": [...], "kwargs": {...}} (pyshim._json_args).
func JSONArgsPayload(text string) []byte {
	return PickleCall("pyshim", "_json_args", text)
}

// PyExceptionType is the built-in exception a platform failure of the given
// kind is reported as.
func PyExceptionType(k ErrorKind) string {
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

// platformFailure is a FAILED result for a failure the host detected.
func platformFailure(kind ErrorKind, message string) *Result {
	return &Result{
		Status:  Failed,
		Payload: PickleException(PyExceptionType(kind), message),
		Error:   &TaskError{Kind: kind, Message: message},
	}
}
