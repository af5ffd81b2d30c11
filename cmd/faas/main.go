// Command faas is the single WasmFaaS binary: the HTTP API, the dispatcher
// in its three modes, the push and pull workers, the all-in-one `faas up`,
// the sandbox process the others start, `faas python` to try the
// sandboxed interpreter by hand, and the user commands (`faas fn register`,
// `faas call`, `faas result`, `faas tasks`), a client of a running API.
// Run `faas <command> -h` for each command's flags; every flag of the
// server commands can also be set with a FAAS_* environment variable, and
// the user commands take FAAS_URL and FAAS_TOKEN.
package main

import (
	"fmt"
	"os"

	"github.com/wasmfaas/wasmfaas/runtime"
)

type command struct {
	name, args, summary string
	run                 func(args []string) int
}

var commands []command

func init() {
	commands = []command{
		{"up", "[flags]", "API + local dispatcher + embedded Redis in one process", cmdUp},
		{"fn", "register FILE.py:NAME", "register a function of a Python file (as source text) with a running API", cmdFn},
		{"call", "FUNCTION_ID [--args JSON]", "run a function with JSON arguments; --wait for its result", cmdCall},
		{"result", "TASK_ID [--wait 30s]", "show a task's status, result and output", cmdResult},
		{"tasks", "[--limit N] [--status S]", "list your newest tasks", cmdTasks},
		{"api", "[flags]", "serve the HTTP API on Redis", cmdAPI},
		{"dispatcher", "-m local|push|pull [flags]", "run tasks from the Redis queue", cmdDispatcher},
		{"push-worker", "<num_sandboxes> <url>", "run tasks a push-mode dispatcher sends", cmdPushWorker},
		{"pull-worker", "<num_sandboxes> <url>", "run tasks asked of a pull-mode dispatcher", cmdPullWorker},
		{"bench", "[flags]", "load-test a running API and report throughput and latency", cmdBench},
		{"python", "[python args...]", "run the sandboxed interpreter like python3, with the task limits", cmdPython},
		{"sandbox", "", "serve tasks on stdin/stdout (started by dispatchers and workers, not by hand)", cmdSandbox},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "faas: WebAssembly-sandboxed Python functions as a service\n\nUsage:\n")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  faas %-12s %-28s %s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'faas <command> -h' for the flags of a command.\n")
}

func main() {
	// A sandbox process started by a pool becomes one before anything else.
	if runtime.ChildRequested() {
		// Profile tasks, not the start (compiling the guest, restoring).
		stop := func() {}
		code := runtime.RunChild(func() { stop = startCPUProfile("sandbox") })
		stop()
		os.Exit(code)
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	if name == "-h" || name == "--help" || name == "help" {
		usage()
		return
	}
	for _, c := range commands {
		if c.name == name {
			stop := startCPUProfile(name)
			code := c.run(os.Args[2:])
			stop()
			os.Exit(code)
		}
	}
	fmt.Fprintf(os.Stderr, "faas: unknown command %q\n\n", name)
	usage()
	os.Exit(2)
}
