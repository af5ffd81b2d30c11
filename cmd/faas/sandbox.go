package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/wasmfaas/wasmfaas/runtime"
)

func cmdSandbox(args []string) int {
	fs := flag.NewFlagSet("faas sandbox", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: faas sandbox\n\n"+
			"Serves length-prefixed task frames on stdin and answers on stdout. Dispatchers and\n"+
			"workers start one such process per sandbox slot and configure it through\n"+
			"FAAS_SANDBOX_CONFIG; there is no reason to run it by hand.\n")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	return runtime.ChildMain(os.Getenv("FAAS_SANDBOX_CONFIG"), os.Stdin, os.Stdout)
}

func cmdPython(args []string) int {
	// Everything after `python` belongs to the interpreter, like python3's
	// own command line; limits come from the environment only.
	for _, a := range args {
		if a == "--faas-help" {
			fmt.Fprintf(os.Stderr, "Usage: faas python [python3 arguments...]\n\n"+
				"Runs the sandboxed CPython 3.11 with the task limits: no host files or\n"+
				"environment, a capped in-memory /tmp. Limits from the environment:\n")
			limitEnvHelp(os.Stderr)
			return 0
		}
	}
	lim, err := limitsFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faas python:", err)
		return 2
	}
	code, err := runtime.RunPython(context.Background(), runtime.EngineConfig{
		ImageDir: os.Getenv("FAAS_IMAGE"), Limits: lim,
	}, args, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faas python:", err)
		return 1
	}
	return code
}
