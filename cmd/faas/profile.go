package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"

	"github.com/wasmfaas/wasmfaas/runtime"
)

// startCPUProfile writes a CPU profile of this process to
// $FAAS_CPUPROFILE_DIR/<role>-<pid>.pprof when that variable is set (the
// study behind `make bench` sets it; so can anyone chasing where the time
// goes). The returned function stops and flushes it; a process that is
// killed leaves no profile.
func startCPUProfile(role string) (stop func()) {
	dir := os.Getenv(runtime.EnvCPUProfileDir)
	if dir == "" {
		return func() {}
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", role, os.Getpid()))
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "faas: cpu profile: %v\n", err)
		if f != nil {
			f.Close()
		}
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
