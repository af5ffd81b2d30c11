package api

import (
	"os"
	"testing"

	"github.com/wasmfaas/wasmfaas/runtime"
)

func TestMain(m *testing.M) {
	// The metrics test runs real sandboxes: this binary is their process.
	runtime.RunChildIfRequested()
	os.Exit(m.Run())
}
