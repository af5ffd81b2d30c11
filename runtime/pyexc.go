package runtime

import "encoding/binary"

// PickleException returns a pickle (protocol 2) of builtins.<pyType>(message),
// the same object `pickle.dumps(TimeoutError("..."))` describes, so a client
// can `raise deserialize(result)` for failures the host detects itself. The
// host never unpickles; it only writes this fixed shape.
func PickleException(pyType, message string) []byte {
	b := []byte{0x80, 2} // PROTO 2
	b = append(b, 'c')   // GLOBAL module\nname\n
	b = append(b, "builtins\n"...)
	b = append(b, pyType...)
	b = append(b, '\n')
	b = append(b, 'X') // BINUNICODE
	b = binary.LittleEndian.AppendUint32(b, uint32(len(message)))
	b = append(b, message...)
	b = append(b, 0x85, 'R', '.') // TUPLE1, REDUCE, STOP
	return b
}

// pyTypeFor is the built-in exception a platform failure is reported as.
func pyTypeFor(k ErrorKind) string {
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
		return "RuntimeError"
	}
}

// platformFailure is a FAILED result for a failure the host detected.
func platformFailure(kind ErrorKind, message string) *Result {
	return &Result{
		Status:  Failed,
		Payload: PickleException(pyTypeFor(kind), message),
		Error:   &TaskError{Kind: kind, Message: message},
	}
}
