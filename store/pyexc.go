package store

import (
	"encoding/base64"

	"github.com/wasmfaas/wasmfaas/runtime"
)

// PickleException returns base64 of runtime.PickleException(pyType, message),
// the raisable result stored for a FAILED task whose failure the platform
// decided (worker lost, cancelled, ...).
func PickleException(pyType, message string) string {
	return base64.StdEncoding.EncodeToString(runtime.PickleException(pyType, message))
}
