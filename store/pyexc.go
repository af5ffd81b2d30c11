package store

import (
	"encoding/base64"
	"encoding/binary"
	"regexp"
	"strings"

	"github.com/wasmfaas/wasmfaas/runtime"
)

// The course protocol wants the result of a FAILED task to be
// base64(pickle of an exception instance), so that a Python client can
// `raise deserialize(result)`. The host never runs Python; for failures the
// platform itself decides (worker lost, cancelled, ...) the pickle is built
// here, byte for byte what pickletools.optimize(pickle.dumps(exc, 3))
// produces for a built-in exception with one string argument:
//
//	PROTO 3, GLOBAL "<module>\n<name>\n", BINUNICODE message, TUPLE1, REDUCE, STOP

var pyIdent = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)

// PickleException returns base64 of a pickle equivalent to
// pickle.dumps(<pyType>(message)). pyType is a built-in exception name such
// as "RuntimeError", "TimeoutError" or "MemoryError", or a dotted
// "module.Name" for an exception class outside builtins. A pyType that is not
// a dotted Python identifier is replaced by RuntimeError. Invalid UTF-8 in
// message is replaced by U+FFFD. The encoding has no newlines.
func PickleException(pyType, message string) string {
	if !pyIdent.MatchString(pyType) {
		pyType = "RuntimeError"
	}
	module, name := "builtins", pyType
	if i := strings.LastIndexByte(pyType, '.'); i >= 0 {
		module, name = pyType[:i], pyType[i+1:]
	}
	message = strings.ToValidUTF8(message, "\uFFFD")

	b := make([]byte, 0, 16+len(module)+len(name)+len(message))
	b = append(b, 0x80, 3) // PROTO 3
	b = append(b, 'c')     // GLOBAL
	b = append(b, module...)
	b = append(b, '\n')
	b = append(b, name...)
	b = append(b, '\n')
	b = append(b, 'X') // BINUNICODE
	b = binary.LittleEndian.AppendUint32(b, uint32(len(message)))
	b = append(b, message...)
	b = append(b, 0x85) // TUPLE1
	b = append(b, 'R')  // REDUCE
	b = append(b, '.')  // STOP
	return base64.StdEncoding.EncodeToString(b)
}

// PyExceptionType is the built-in Python exception a platform failure of
// the given kind is reported as (the same mapping as the runtime package).
func PyExceptionType(kind runtime.ErrorKind) string {
	switch kind {
	case runtime.KindTimeout:
		return "TimeoutError"
	case runtime.KindMemoryLimit:
		return "MemoryError"
	case runtime.KindBadPayload, runtime.KindPayloadTooLarge, runtime.KindResultTooLarge:
		return "ValueError"
	case runtime.KindUnpicklable:
		return "TypeError"
	default:
		// WORKER_LOST, CANCELLED, SANDBOX_CRASH, USER_EXIT, and a
		// USER_EXCEPTION whose own pickle was lost.
		return "RuntimeError"
	}
}
