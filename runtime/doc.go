// Package runtime is the wazero host of the WasmFaaS sandbox: it owns the
// CPython-for-WASI guest image (built by pybuild/build.sh), the memory
// snapshot that makes a new interpreter instance cheap, the guest's view of
// the world (read-only stdlib, pyshim, capped in-memory /tmp, /dev/null,
// nothing else), the limits, and the pool of sandbox processes that the
// dispatcher and workers run tasks on.
//
// Layout of one sandbox slot:
//
//	Pool (host process: dispatcher or worker)
//	  └─ slot ── pipes, length-prefixed frames ──> child process `faas sandbox`
//	                                               └─ wazero runtime, one compiled module
//	                                                  └─ instance restored from the snapshot
//	                                                     (CPython + pyshim + dill)
//
// Each slot is its own OS process because wazero can only interrupt guest
// code by instrumenting it (WithCloseOnContextDone), which made CPU-bound
// Python several times slower here. A child that exceeds its wall-clock
// timeout reports what it captured and exits; the host kills it if it does
// not, and starts a replacement. Crashes stay inside the child too.
//
// Instances are restored from a snapshot of linear memory taken right after
// the interpreter booted and imported pyshim and dill: the snapshot file is
// mapped copy-on-write, so a fresh interpreter costs a module instantiation
// and the pages it touches, not a boot. A spent instance is reset in place
// for the next (memreuse_linux.go, hoststate.go: its written pages copied
// back, its stack pointer, tables and /tmp put back) instead of being
// instantiated again, and fresh tasks of a function start from that
// function's image, an instance that loaded it for an earlier task
// (funcimage.go), instead of loading it again.
//
// runtime is a leaf of the architecture: it takes a faastype.Task (payloads
// already decoded; Task.Function names the function, so a warm instance
// that already holds it is reused) and returns a faastype.Result, and
// imports nothing of WasmFaaS but faastype and the guest's pyshim. A
// failure the host detects itself (timeout, crash, limits) is a
// faastype.Failure without a pickle: the store writes the exception a
// client gets for it (pickle.FailurePayload).
package runtime
