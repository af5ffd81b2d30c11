package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The user commands (faas fn register, call, result, tasks) against a real
// `faas up` with API tokens, run as a user runs them: the binary, a file of
// functions, FAAS_URL and FAAS_TOKEN in the environment.

const (
	cliAlice = "alice-cli-token-00000001"
	cliBob   = "bob-cli-token-000000002"
)

const cliFunctions = `import math
import time

def area(r, unit="m"):
    print("computing", r)
    return {"area": round(math.pi * r * r, 2), "unit": unit}

def boom(x):
    raise ValueError(f"bad value {x}")

def slow():
    time.sleep(20)
`

// cliRun is one run of the faas binary.
type cliRun struct {
	code           int
	stdout, stderr string
}

// faasCLI runs the faas binary with args, the variables of env (NAME=value)
// and no other FAAS_* variable; start, when set, is called with the started
// command before it is waited for.
func faasCLI(t *testing.T, env []string, start func(*exec.Cmd), args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, faasBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FAAS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("faas %q: %v", args, err)
	}
	if start != nil {
		start(cmd)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if err != nil && (!errors.As(err, &ee) || ctx.Err() != nil) {
		t.Fatalf("faas %q: %v (stderr %q)", args, err, stderr.String())
	}
	return cliRun{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// expect checks a run's exit code and that stdout and stderr contain the
// texts given (regular expressions).
func (r cliRun) expect(t *testing.T, what string, code int, stdout, stderr []string) {
	t.Helper()
	ok := r.code == code
	for _, re := range stdout {
		ok = ok && regexp.MustCompile(re).MatchString(r.stdout)
	}
	for _, re := range stderr {
		ok = ok && regexp.MustCompile(re).MatchString(r.stderr)
	}
	if !ok {
		t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s\nwant stdout %q, stderr %q", what, r.code, code, r.stdout, r.stderr, stdout, stderr)
	}
}

func waitHealthy(t *testing.T, url string, up *proc, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) || !up.alive() {
			t.Fatalf("faas up did not answer on %s within %s (alive %v):\n%s", url, within, up.alive(), tail(up.logs(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var uuidLine = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n$`)

func TestCLIAgainstFaasUp(t *testing.T) {
	needImage(t)
	port := freePort(t)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	up := startExeEnv(t, "up", []string{"FAAS_TOKENS=alice:" + cliAlice + ",bob:" + cliBob}, faasBin,
		"up", "--addr", "127.0.0.1:"+strconv.Itoa(port), "-w", "2", "--log-level", "warn")
	waitHealthy(t, url, up, time.Minute)

	dir := t.TempDir()
	file := filepath.Join(dir, "fns.py")
	if err := os.WriteFile(file, []byte(cliFunctions), 0o644); err != nil {
		t.Fatal(err)
	}
	alice := []string{"FAAS_URL=" + url, "FAAS_TOKEN=" + cliAlice}
	bob := []string{"FAAS_URL=" + url, "FAAS_TOKEN=" + cliBob}
	run := func(env []string, args ...string) cliRun { t.Helper(); return faasCLI(t, env, nil, args...) }

	// Tokens: none, a wrong one, the right one by flag.
	run([]string{"FAAS_URL=" + url}, "fn", "register", file+":area").
		expect(t, "no token", 1, nil, []string{`^faas fn register: POST /register_function: 401 Unauthorized: .*needs an API token.*FAAS_TOKEN`})
	run([]string{"FAAS_URL=" + url, "FAAS_TOKEN=not-a-token-of-anyone"}, "tasks").
		expect(t, "a bad token", 1, nil, []string{`^faas tasks: GET /tasks\?limit=20: 401 Unauthorized: .+`})
	run(nil, "tasks", "--url", url, "--token", cliBob).expect(t, "tokens by flag", 0, nil, []string{"^no tasks\n$"})

	// Registration and its errors.
	reg := run(alice, "fn", "register", file+":area")
	reg.expect(t, "register", 0, nil, nil)
	if !uuidLine.MatchString(reg.stdout) || reg.stderr != "" {
		t.Fatalf("register printed %q, stderr %q", reg.stdout, reg.stderr)
	}
	area := strings.TrimSpace(reg.stdout)
	reg = run(alice, "fn", "register", file+":boom", "--name", "exploder", "--isolation", "fresh", "--json")
	var regJSON struct {
		FunctionID string `json:"function_id"`
	}
	if reg.code != 0 || json.Unmarshal([]byte(reg.stdout), &regJSON) != nil || regJSON.FunctionID == "" {
		t.Fatalf("register --json: %d %q %q", reg.code, reg.stdout, reg.stderr)
	}
	boom := regJSON.FunctionID
	run(alice, "fn", "register", file+":volume").expect(t, "a name the file does not define", 1, nil,
		[]string{`^faas fn register: .*fns.py: defines no volume`})
	run(alice, "fn", "register", filepath.Join(dir, "none.py")+":area").expect(t, "no file", 1, nil, []string{"no such file or directory"})
	run(alice, "fn", "register", file).expect(t, "no :NAME", 1, nil, []string{"want FILE.py:NAME"})
	run(alice, "fn", "register", file+":area-2").expect(t, "not an identifier", 1, nil,
		[]string{`422 Unprocessable Entity: field "entrypoint" must name a function defined by the source \(a Python identifier\), not "area-2"`})
	run(alice, "fn", "register", file+":area", "--isolation", "hot").expect(t, "a bad isolation", 1, nil,
		[]string{`422 Unprocessable Entity: field "isolation": .*"hot"`})

	// Calls.
	run(alice, "call", area, "--args", "[2]", "--kwargs", `{"unit": "cm"}`, "--wait", "60s").
		expect(t, "call --wait", 0, []string{`^\{"area":12\.57,"unit":"cm"\}` + "\n$"}, []string{"^$"})
	c := run(alice, "call", area, "--args", "[3]")
	if c.code != 0 || !uuidLine.MatchString(c.stdout) {
		t.Fatalf("call: %d %q %q", c.code, c.stdout, c.stderr)
	}
	task := strings.TrimSpace(c.stdout)
	run(alice, "result", task, "--wait", "60s").expect(t, "result", 0,
		[]string{"(?m)^task +" + task + "$", "(?m)^status +COMPLETED$", `(?m)^result +\{"area":28\.27,"unit":"m"\}$`, "(?m)^stdout:\ncomputing 3$"}, nil)
	var res struct {
		Status     string          `json:"status"`
		Result     string          `json:"result"`
		ResultJSON json.RawMessage `json:"result_json"`
	}
	r := run(alice, "result", task, "--json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Status != "COMPLETED" || res.Result == "" ||
		string(res.ResultJSON) != `{"area":28.27,"unit":"m"}` {
		t.Errorf("result --json: %d %q %q", r.code, r.stdout, r.stderr)
	}
	run(bob, "result", task).expect(t, "another tenant's task", 1, nil, []string{"404 Not Found: task " + task + " not found"})
	run(alice, "call", "not-an-id").expect(t, "a bad function id", 1, nil, []string{`400 Bad Request: function_id "not-an-id" is not a UUID`})

	// A function that raises.
	f := run(alice, "call", boom, "--args", "[7]", "--wait", "60s")
	f.expect(t, "a failing call", 1, []string{"^$"},
		[]string{`faas call: task [0-9a-f-]{36} FAILED: USER_EXCEPTION: ValueError: bad value 7\n`, `Traceback \(most recent call last\)`,
			`(?m)^ValueError: bad value 7$`})
	failed := regexp.MustCompile(`task ([0-9a-f-]{36}) FAILED`).FindStringSubmatch(f.stderr)
	if failed == nil {
		t.Fatalf("no task id in %q", f.stderr)
	}
	run(alice, "result", failed[1]).expect(t, "result of a failed task", 1,
		[]string{"(?m)^status +FAILED$", "(?m)^result +none: the task FAILED$"}, []string{"FAILED: USER_EXCEPTION: ValueError: bad value 7"})

	// The list.
	run(alice, "tasks").expect(t, "tasks", 0, []string{
		`^TASK ID +STATUS +FUNCTION +CREATED +DURATION\n`,
		"(?m)^" + failed[1] + ` +FAILED \(USER_EXCEPTION\) +exploder +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\S+$`,
		"(?m)^" + task + ` +COMPLETED +area +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\S+$`,
	}, []string{"^$"})
	if n := strings.Count(run(alice, "tasks").stdout, "\n"); n != 4 {
		t.Errorf("tasks: %d lines, want a header and 3 tasks", n)
	}
	var list struct {
		Tasks []struct {
			TaskID, Status, FunctionName string
			ErrorKind                    string `json:"error_kind"`
		} `json:"tasks"`
	}
	l := run(alice, "tasks", "--status", "failed", "--json")
	if l.code != 0 || json.Unmarshal([]byte(l.stdout), &list) != nil || len(list.Tasks) != 1 || list.Tasks[0].Status != "FAILED" ||
		list.Tasks[0].ErrorKind != "USER_EXCEPTION" {
		t.Errorf("tasks --status failed --json: %d %q %q", l.code, l.stdout, l.stderr)
	}
	run(alice, "tasks", "--limit", "1").expect(t, "tasks --limit 1", 0, []string{"(?m)^" + failed[1] + " "}, nil)
	run(alice, "tasks", "--limit", "500").expect(t, "a bad limit", 1, nil, []string{"400 Bad Request: limit must be a whole number from 0 to 200"})
	run(alice, "tasks", "--status", "done").expect(t, "a bad status", 1, nil, []string{`400 Bad Request: status must be .*not "DONE"`})
	run(bob, "tasks").expect(t, "bob's tasks", 0, []string{"^$"}, []string{"^no tasks\n$"})

	// Tasks that do not finish in time: exit 3, and ^C while waiting.
	reg = run(alice, "fn", "register", file+":slow")
	slow := strings.TrimSpace(reg.stdout)
	c = run(alice, "call", slow)
	pending := strings.TrimSpace(c.stdout)
	run(alice, "result", pending, "--wait", "1s").expect(t, "a wait that runs out", 3,
		[]string{"(?m)^status +(QUEUED|RUNNING)$"}, []string{"task " + pending + " is (QUEUED|RUNNING), not finished yet"})
	started := time.Now()
	faasCLI(t, alice, func(cmd *exec.Cmd) {
		time.Sleep(time.Second)
		_ = cmd.Process.Signal(syscall.SIGINT)
	}, "call", slow, "--wait", "60s").expect(t, "^C during call --wait", 130, []string{"^$"},
		[]string{`^faas call: interrupted; task [0-9a-f-]{36} goes on \(faas result [0-9a-f-]{36} --wait 30s\)` + "\n$"})
	if d := time.Since(started); d > 10*time.Second {
		t.Errorf("call --wait took %s to stop on SIGINT", d)
	}
	if !up.alive() {
		t.Fatalf("faas up died:\n%s", tail(up.logs(), 40))
	}
}
