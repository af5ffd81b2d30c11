package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// RunPython runs the sandboxed interpreter like `python3 args...`, with the
// guest environment and limits tasks get: no host files, no environment,
// the memory cap, a capped /tmp, output capped at Limits.OutputBytes per
// stream and the wall-clock timeout. It returns the interpreter's exit code.
// A timeout ends the whole process (wazero cannot interrupt the guest
// otherwise), with exit code 124 as timeout(1) does.
func RunPython(ctx context.Context, cfg EngineConfig, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	e, err := newBareEngine(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer e.Close(ctx)
	compiled, err := e.rt.CompileModule(ctx, e.img.Wasm)
	if err != nil {
		return 0, fmt.Errorf("runtime: compile python.wasm: %w", err)
	}
	gio := &guestIO{
		stdout: &capWriter{limit: e.limits.OutputBytes, pass: stdout},
		stderr: &capWriter{limit: e.limits.OutputBytes, pass: stderr},
	}
	mc := e.moduleConfig(gio, NewMemFS(int64(e.limits.TmpBytes)), &bundleMount{}).
		WithArgs(append([]string{"python3"}, args...)...).
		WithStdin(stdin).
		WithStartFunctions("_initialize")
	timer := time.AfterFunc(e.limits.Timeout, func() {
		fmt.Fprintf(stderr, "\nfaas python: stopped after the %s timeout\n", formatDuration(e.limits.Timeout))
		os.Exit(124)
	})
	defer timer.Stop()
	mod, err := e.rt.InstantiateModule(ctx, compiled, mc)
	if err != nil {
		return 0, fmt.Errorf("runtime: instantiate python.wasm: %w", err)
	}
	defer mod.Close(ctx)
	res, err := mod.ExportedFunction("faas_main").Call(ctx)
	if gio.stdout.truncated || gio.stderr.truncated {
		fmt.Fprintf(stderr, "\nfaas python: output beyond %d bytes per stream was dropped\n", e.limits.OutputBytes)
	}
	if err != nil {
		if code, ok := exitCode(err); ok {
			return int(code), nil
		}
		return 0, errors.New("the sandbox crashed: " + err.Error())
	}
	return int(int32(res[0])), nil
}
