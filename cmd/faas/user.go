package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// The user commands: faas fn register, faas call, faas result, faas tasks,
// a command-line client of a running API beside the Python client.

// Exit codes of the user commands, beyond 0 (done; the task COMPLETED) and
// 2 (bad usage).
const (
	exitFailed      = 1   // an error, or the task FAILED
	exitNotFinal    = 3   // the task is still QUEUED or RUNNING
	exitInterrupted = 130 // ^C while waiting
)

const exitCodesHelp = `Exit status: 0 done (a task waited for COMPLETED), 1 an error or the task FAILED,
2 bad usage, 3 the task is not final yet (QUEUED or RUNNING), 130 interrupted.`

const clientHelp = `The API is --url (FAAS_URL, default http://` + defaultAddr + `, where faas up
listens); with API tokens on the server, give yours with FAAS_TOKEN (or
--token). Errors print the server's detail.`

// userCommand is what every user command starts with: its flags, the
// positional arguments (want of them), the API client.
func userCommand(fs *flagSet, cf *clientFlags, args []string, want int) (*apiClient, []string, int) {
	pos, err := parseCommandLine(fs.FlagSet, args, true, clientEnvFlags)
	if err != nil {
		return nil, nil, 2
	}
	if len(pos) != want {
		fmt.Fprintf(fs.Output(), "%s: want %d argument(s), got %d: %q\n\n", fs.Name(), want, len(pos), pos)
		fs.Usage()
		return nil, nil, 2
	}
	c, err := cf.client()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", fs.Name(), err)
		return nil, nil, 2
	}
	return c, pos, 0
}

// interruptible ends on SIGINT or SIGTERM (the task itself goes on).
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// printJSON writes an answer of the API as it came, on one line.
func printJSON(w io.Writer, raw []byte) {
	fmt.Fprintf(w, "%s\n", bytes.TrimSpace(raw))
}

// ---- faas fn register ----

func cmdFn(args []string) int {
	if len(args) > 0 && args[0] == "register" {
		return cmdFnRegister(args[1:])
	}
	fmt.Fprintf(os.Stderr, "Usage: faas fn register FILE.py:NAME [flags]\n\n"+
		"Functions: register one from a Python file (faas fn register -h).\n")
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		return 0
	}
	return 2
}

func cmdFnRegister(args []string) int {
	fs := newFlagSet("fn register", "FILE.py:NAME [--name N] [--isolation warm|fresh] [--retries R] [--timeout D] [--memory-mb N] [--env K=V]... [--secret K[=V]]... [--callback-url U] [--json] [--url U] [--token T]", `
Registers the function NAME that FILE.py defines, as source text: the
sandbox runs the whole file as the function's module, so its imports,
helpers and constants come along (the standard library only, no packages of
yours). Call it with faas call and JSON arguments; it runs on the sandbox's
Python 3.11, whatever Python you have. Prints the function id (--json: the
API's answer).

Example: faas fn register geometry.py:area
         faas fn register fetch.py:fetch --retries '{"max": 3, "on": ["ValueError"]}' \
             --timeout 10s --memory-mb 128 --env MODE=prod --secret API_KEY

`+clientHelp)
	name := fs.String("name", "", "the function's name on the server (default NAME)")
	retries := fs.String("retries", "", `the tasks' retry policy: a number of retries, or JSON such as '{"max": 3, "backoff": "exponential", "base": "1s", "on": ["ValueError"]}'`)
	timeout := fs.String("timeout", "", `the function's own timeout ("10s"), below the nodes' (default the node's)`)
	memoryMB := fs.Int("memory-mb", 0, "the function's own memory cap in MiB, below the nodes' (default the node's)")
	callback := fs.String("callback-url", "", "the default completion webhook of the function's tasks (an http or https URL the server may call)")
	var env, secrets envFlag
	fs.Var(&env, "env", "an environment variable NAME=value for the function (repeat for more)")
	fs.Var(&secrets, "secret", "a secret variable NAME=value, or NAME to take the value from your environment (repeat for more; never shown back)")
	isolation := fs.String("isolation", "", "warm (an interpreter that ran the function may run it again) or fresh (a pristine one for every task); default the server's, warm")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	cf := addClientFlags(fs)
	c, pos, code := userCommand(fs, cf, args, 1)
	if c == nil {
		return code
	}
	file, entry, err := splitFunctionSpec(pos[0])
	if err != nil {
		return fail("fn register", err)
	}
	src, err := os.ReadFile(file)
	if err != nil {
		return fail("fn register", fmt.Errorf("read the function's file: %w", err))
	}
	if err := checkDefines(string(src), entry); err != nil {
		return fail("fn register", fmt.Errorf("%s: %w", file, err))
	}
	body := map[string]any{"name": entry, "source": string(src), "entrypoint": entry}
	if *name != "" {
		body["name"] = *name
	}
	if *isolation != "" {
		body["isolation"] = *isolation
	}
	if *retries != "" {
		if !json.Valid([]byte(*retries)) {
			return fail("fn register", fmt.Errorf("--retries must be a number or a JSON object, not %s", truncateText(*retries, 60)))
		}
		body["retries"] = json.RawMessage(*retries)
	}
	if *timeout != "" {
		body["timeout"] = *timeout
	}
	if *memoryMB != 0 {
		body["memory_mb"] = *memoryMB
	}
	if len(env.vars) > 0 {
		body["env"] = env.vars
	}
	if *callback != "" {
		body["callback_url"] = *callback
	}
	if len(secrets.vars) > 0 {
		body["secrets"] = secrets.vars
	}
	ctx, cancel := interruptible()
	defer cancel()
	var resp struct {
		FunctionID string `json:"function_id"`
	}
	raw, err := c.do(ctx, "POST", "/register_function", body, &resp, requestTimeout)
	if err != nil {
		return fail("fn register", err)
	}
	if *asJSON {
		printJSON(os.Stdout, raw)
	} else {
		fmt.Println(resp.FunctionID)
	}
	return 0
}

// splitFunctionSpec splits FILE.py:NAME at its last colon.
func splitFunctionSpec(spec string) (file, name string, err error) {
	i := strings.LastIndex(spec, ":")
	if i < 0 || i == len(spec)-1 || i == 0 {
		return "", "", fmt.Errorf("want FILE.py:NAME, the file and the name of a function it defines (example: geometry.py:area), not %q", spec)
	}
	return spec[:i], spec[i+1:], nil
}

// identifier is an ASCII Python identifier, as the server wants an
// entrypoint.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkDefines refuses source that plainly does not define name: the server
// stores source text without running it, so it could only tell when a task
// fails. Lenient by design: any def, class, assignment, import, for, with,
// as or := of the name, at any depth, passes; comments and strings are not
// told apart. A name that is not an identifier is left to the server.
func checkDefines(src, name string) error {
	if !identifier.MatchString(name) {
		return nil
	}
	n := regexp.QuoteMeta(name)
	targets := `[\w\s,\[\]*.]*` // what may stand beside the name in the targets of an assignment or a for
	for _, re := range []string{
		`(?m)^[ \t]*(async[ \t]+)?def[ \t]+` + n + `[ \t]*\(`,
		`(?m)^[ \t]*class[ \t]+` + n + `\b`,
		`(?m)^[ \t]*` + targets + `\b` + n + `\b` + targets + `(:[^=\n]*)?=[^=]`,
		`(?m)^[ \t]*(from[ \t]+[\w.]+[ \t]+)?import[ \t][^\n#]*\b` + n + `\b`,
		`(?s)\bimport[ \t]*\([^)]*\b` + n + `\b[^)]*\)`,
		`\bas[ \t]+` + n + `\b`,
		`(?m)^[ \t]*(async[ \t]+)?for[ \t]` + targets + `\b` + n + `\b` + targets + `[ \t]in\b`,
		`\b` + n + `[ \t]*:=`,
	} {
		if regexp.MustCompile(re).MatchString(src) {
			return nil
		}
	}
	return fmt.Errorf("defines no %s (no def %s, class %s, %s = ... or import of %s): give the name of a function the file defines",
		name, name, name, name, name)
}

// ---- faas call ----

func cmdCall(args []string) int {
	fs := newFlagSet("call", "FUNCTION_ID [--args '[1, 2]'] [--kwargs '{\"a\": 1}'] [--delay D | --run-at T] [--retries R] [--callback-url U] [--wait 30s] [--json] [--url U] [--token T]", `
Runs a registered function with JSON arguments and prints the new task's
id. With --wait, it waits for the task to finish instead (long-polling the
API) and prints its result as JSON; a task that FAILED prints its error
kind, message and traceback on stderr. faas result TASK_ID shows the task's
output (what it printed) as well.

Example: faas call $FID --args '[2]' --kwargs '{"unit": "cm"}' --wait 30s
         faas call $FID --delay 10m --retries 3

`+exitCodesHelp+`

`+clientHelp)
	argsJSON := fs.String("args", "", "positional arguments, a JSON array (default [])")
	kwargsJSON := fs.String("kwargs", "", "keyword arguments, a JSON object (default {})")
	wait := fs.Duration("wait", 0, "wait this long for the result (0: do not wait)")
	delay := fs.String("delay", "", `start the task no sooner than this from now ("30s", "2h", or seconds)`)
	runAt := fs.String("run-at", "", `start the task no sooner than this time (RFC 3339, "2026-12-24T18:00:00Z", or unix seconds)`)
	retries := fs.String("retries", "", "this call's retry policy instead of the function's: a number of retries (0: none) or a JSON object")
	callback := fs.String("callback-url", "", "this task's completion webhook, instead of the function's (an http or https URL)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer: the task id, or with --wait the whole result")
	cf := addClientFlags(fs)
	c, pos, code := userCommand(fs, cf, args, 1)
	if c == nil {
		return code
	}
	body, err := callBody(pos[0], *argsJSON, *kwargsJSON)
	if err != nil {
		return fail("call", err)
	}
	if *delay != "" && *runAt != "" {
		return fail("call", errors.New("give either --delay or --run-at, not both"))
	}
	if *delay != "" {
		body["delay"] = *delay
	}
	if *runAt != "" {
		if secs, err := strconv.ParseFloat(*runAt, 64); err == nil {
			body["run_at"] = secs
		} else {
			body["run_at"] = *runAt
		}
	}
	if *callback != "" {
		body["callback_url"] = *callback
	}
	if *retries != "" {
		if !json.Valid([]byte(*retries)) {
			return fail("call", fmt.Errorf("--retries must be a number or a JSON object, not %s", truncateText(*retries, 60)))
		}
		body["retries"] = json.RawMessage(*retries)
	}
	if *wait < 0 {
		return fail("call", fmt.Errorf("--wait must not be negative, got %s", *wait))
	}
	ctx, cancel := interruptible()
	defer cancel()
	var resp struct {
		TaskID string `json:"task_id"`
	}
	raw, err := c.do(ctx, "POST", "/execute_function", body, &resp, requestTimeout)
	if err != nil {
		return fail("call", err)
	}
	if *wait == 0 {
		if *asJSON {
			printJSON(os.Stdout, raw)
		} else {
			fmt.Println(resp.TaskID)
		}
		return 0
	}
	res, raw, err := waitResult(ctx, c, resp.TaskID, *wait)
	if err != nil {
		return waitFailed("call", resp.TaskID, ctx, err)
	}
	if *asJSON {
		printJSON(os.Stdout, raw)
	} else {
		switch text, ok := res.resultText(); {
		case ok:
			fmt.Println(text)
		case res.Status == "COMPLETED":
			fmt.Fprintf(os.Stderr, "faas call: task %s: %s\n", res.TaskID, text)
		}
	}
	return res.report("call", os.Stderr)
}

// callBody is the POST /execute_function body: JSON arguments, checked here
// so that a typo is named as the flag it is in.
func callBody(fnID, args, kwargs string) (map[string]any, error) {
	body := map[string]any{"function_id": fnID, "args": json.RawMessage("[]")}
	for _, a := range []struct {
		flag, text, open, what string
	}{{"args", args, "[", "array such as '[1, \"x\"]'"}, {"kwargs", kwargs, "{", `object such as '{"unit": "cm"}'`}} {
		if strings.TrimSpace(a.text) == "" {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(a.text), &v); err != nil {
			return nil, fmt.Errorf("--%s is not JSON: %v (want a JSON %s)", a.flag, err, a.what)
		}
		if !strings.HasPrefix(strings.TrimSpace(a.text), a.open) {
			return nil, fmt.Errorf("--%s must be a JSON %s, not %s", a.flag, a.what, truncateText(a.text, 60))
		}
		body[a.flag] = json.RawMessage(a.text)
	}
	return body, nil
}

// ---- faas result ----

func cmdResult(args []string) int {
	fs := newFlagSet("result", "TASK_ID [--wait 30s] [--json] [--url U] [--token T]", `
Shows a task: its status, its result (as JSON when it has a JSON form: a
call made with JSON arguments, as faas call makes them; otherwise the result
is a dill pickle, whose base64 --json shows), and what it printed on stdout
and stderr. A task that FAILED shows its error kind, message and traceback
on stderr. With --wait, it waits for the task to finish first.

`+exitCodesHelp+`

`+clientHelp)
	wait := fs.Duration("wait", 0, "wait this long for the task to finish (0: answer at once)")
	asJSON := fs.Bool("json", false, "print the API's JSON answer (with the result's base64)")
	cf := addClientFlags(fs)
	c, pos, code := userCommand(fs, cf, args, 1)
	if c == nil {
		return code
	}
	if *wait < 0 {
		return fail("result", fmt.Errorf("--wait must not be negative, got %s", *wait))
	}
	ctx, cancel := interruptible()
	defer cancel()
	res, raw, err := waitResult(ctx, c, pos[0], *wait)
	if err != nil {
		return waitFailed("result", pos[0], ctx, err)
	}
	if *asJSON {
		printJSON(os.Stdout, raw)
	} else {
		res.print(os.Stdout)
	}
	return res.report("result", os.Stderr)
}

// taskResult is the answer of GET /result/{task_id}.
type taskResult struct {
	TaskID string  `json:"task_id"`
	Status string  `json:"status"`
	Result *string `json:"result"`
	Error  *struct {
		Kind      string `json:"kind"`
		Message   string `json:"message"`
		Traceback string `json:"traceback"`
	} `json:"error"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	Attempts int    `json:"attempts"`
	// ResultJSON is empty when the answer has no result_json (a call with
	// dill arguments), "null" when it is null.
	ResultJSON json.RawMessage `json:"result_json"`
}

func (r *taskResult) final() bool { return r.Status == "COMPLETED" || r.Status == "FAILED" }

// resultText is a COMPLETED task's result as JSON, ok; else what to say
// instead.
func (r *taskResult) resultText() (text string, ok bool) {
	switch {
	case r.Status == "FAILED":
		return "none: the task FAILED", false
	case !r.final():
		return "none yet: the task is " + r.Status, false
	case len(r.ResultJSON) > 0 && string(r.ResultJSON) != "null":
		return string(r.ResultJSON), true
	}
	// A null result_json is None, or a value JSON cannot say: the pickle
	// tells them apart.
	var pickled []byte
	if r.Result != nil {
		pickled, _ = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(*r.Result), ""))
	}
	if len(r.ResultJSON) > 0 && isPickledNone(pickled) {
		return "null", true
	}
	what := "a dill pickle"
	if len(r.ResultJSON) > 0 {
		what = "a dill pickle (the value has no JSON form)"
	}
	return fmt.Sprintf("%s of %d bytes; --json prints its base64 (\"result\")", what, len(pickled)), false
}

// isPickledNone says whether p is pickle.dumps(None): an optional protocol
// header, then NONE and STOP.
func isPickledNone(p []byte) bool {
	if len(p) >= 2 && p[0] == 0x80 {
		p = p[2:]
	}
	return string(p) == "N."
}

// print writes the task for a person.
func (r *taskResult) print(w io.Writer) {
	fmt.Fprintf(w, "task      %s\n", r.TaskID)
	status := r.Status
	if r.Attempts > 1 {
		status += fmt.Sprintf(" (after %d attempts)", r.Attempts)
	}
	fmt.Fprintf(w, "status    %s\n", status)
	text, _ := r.resultText()
	fmt.Fprintf(w, "result    %s\n", text)
	for _, s := range []struct{ name, text string }{{"stdout", r.Stdout}, {"stderr", r.Stderr}} {
		if s.text == "" {
			continue
		}
		fmt.Fprintf(w, "%s:\n%s", s.name, s.text)
		if !strings.HasSuffix(s.text, "\n") {
			fmt.Fprintln(w)
		}
	}
}

// report writes a FAILED task's error to w and returns the exit code of
// the task's status.
func (r *taskResult) report(cmd string, w io.Writer) int {
	switch r.Status {
	case "COMPLETED":
		return 0
	case "FAILED":
		if r.Error == nil {
			fmt.Fprintf(w, "faas %s: task %s FAILED\n", cmd, r.TaskID)
			return exitFailed
		}
		fmt.Fprintf(w, "faas %s: task %s FAILED: %s: %s\n", cmd, r.TaskID, r.Error.Kind, r.Error.Message)
		if tb := strings.TrimRight(r.Error.Traceback, "\n"); tb != "" {
			fmt.Fprintln(w, tb)
		}
		return exitFailed
	}
	fmt.Fprintf(w, "faas %s: task %s is %s, not finished yet (faas result %s --wait 30s)\n", cmd, r.TaskID, r.Status, r.TaskID)
	return exitNotFinal
}

// pollSpin is the shortest time between two long-polls: a server that
// answers a long-poll at once (it is shutting down) is not asked again in
// a tight loop.
const pollSpin = 200 * time.Millisecond

// waitResult reads a task, long-polling up to wait for it to be final (the
// server caps one long-poll at its --max-wait: it asks again until wait
// has passed).
func waitResult(ctx context.Context, c *apiClient, taskID string, wait time.Duration) (*taskResult, []byte, error) {
	path := "/result/" + url.PathEscape(taskID)
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		q := ""
		if left > 0 {
			q = "?wait=" + strconv.FormatInt(left.Milliseconds(), 10) + "ms"
		}
		started := time.Now()
		var res taskResult
		raw, err := c.do(ctx, "GET", path+q, nil, &res, max(left, 0)+requestTimeout)
		if err != nil {
			return nil, nil, err
		}
		if res.final() || time.Until(deadline) <= 0 {
			return &res, raw, nil
		}
		if spent := time.Since(started); spent < pollSpin {
			select {
			case <-ctx.Done():
				return nil, nil, fmt.Errorf("GET %s: %w", path, ctx.Err())
			case <-time.After(pollSpin - spent):
			}
		}
	}
}

// waitFailed is the exit of a command whose wait for a task failed:
// interrupted (the task goes on), or an error.
func waitFailed(cmd, taskID string, ctx context.Context, err error) int {
	if ctx.Err() != nil {
		fmt.Fprintf(os.Stderr, "faas %s: interrupted; task %s goes on (faas result %s --wait 30s)\n", cmd, taskID, taskID)
		return exitInterrupted
	}
	var ae *apiError
	if cmd == "call" && !errors.As(err, &ae) {
		err = fmt.Errorf("task %s: %w", taskID, err)
	}
	return fail(cmd, err)
}

// ---- faas tasks ----

func cmdTasks(args []string) int {
	fs := newFlagSet("tasks", "[--limit 20] [--status QUEUED|RUNNING|COMPLETED|FAILED] [--json] [--url U] [--token T]", `
Lists your newest tasks, newest first (of the last 200 you submitted, the
dashboard's list; a task removed after the server's result TTL is left
out): id, status (with the error kind of a FAILED one), function, when it
was created (local time) and how long it ran.

`+clientHelp)
	limit := fs.Int("limit", 20, "how many tasks to list, at most 200")
	status := fs.String("status", "", "only the tasks in this status: QUEUED, RUNNING, COMPLETED or FAILED")
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	cf := addClientFlags(fs)
	c, _, code := userCommand(fs, cf, args, 0)
	if c == nil {
		return code
	}
	q := url.Values{"limit": {strconv.Itoa(*limit)}}
	if *status != "" {
		q.Set("status", strings.ToUpper(*status))
	}
	ctx, cancel := interruptible()
	defer cancel()
	var resp tasksAnswer
	raw, err := c.do(ctx, "GET", "/tasks?"+q.Encode(), nil, &resp, requestTimeout)
	if err != nil {
		return fail("tasks", err)
	}
	if *asJSON {
		printJSON(os.Stdout, raw)
		return 0
	}
	if len(resp.Tasks) == 0 {
		fmt.Fprintln(os.Stderr, "no tasks")
		return 0
	}
	printTasks(os.Stdout, resp.Tasks, time.Local)
	return 0
}

// tasksAnswer is the answer of GET /tasks.
type tasksAnswer struct {
	Tasks []taskRow `json:"tasks"`
}

// taskRow is what faas tasks shows of a task of GET /tasks.
type taskRow struct {
	TaskID       string    `json:"task_id"`
	FunctionID   string    `json:"function_id"`
	FunctionName string    `json:"function_name"`
	Status       string    `json:"status"`
	ErrorKind    string    `json:"error_kind"`
	CreatedAt    time.Time `json:"created_at"`
	Duration     *float64  `json:"duration_seconds"`
}

// printTasks writes a table of tasks, their times in loc.
func printTasks(w io.Writer, tasks []taskRow, loc *time.Location) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK ID\tSTATUS\tFUNCTION\tCREATED\tDURATION")
	for _, t := range tasks {
		status := t.Status
		if t.ErrorKind != "" {
			status += " (" + t.ErrorKind + ")"
		}
		fn := t.FunctionName
		if fn == "" {
			fn = t.FunctionID + " (gone)"
		}
		dur := "-"
		if t.Duration != nil {
			dur = time.Duration(*t.Duration * float64(time.Second)).Round(time.Microsecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.TaskID, status, fn, t.CreatedAt.In(loc).Format(time.DateTime), dur)
	}
	tw.Flush()
}

// envFlag collects repeated NAME=value flags (--env, --secret); a bare NAME
// takes the value from this process's environment, so that a secret need
// not be typed on the command line.
type envFlag struct{ vars map[string]string }

func (f *envFlag) String() string { return "" }

func (f *envFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok {
		if value, ok = os.LookupEnv(name); !ok {
			return fmt.Errorf("%s is not NAME=value, and no variable %s is set here to take the value from", v, name)
		}
	}
	if name == "" {
		return fmt.Errorf("%q has no name before the '='", v)
	}
	if f.vars == nil {
		f.vars = map[string]string{}
	}
	if _, dup := f.vars[name]; dup {
		return fmt.Errorf("%s given twice", name)
	}
	f.vars[name] = value
	return nil
}
