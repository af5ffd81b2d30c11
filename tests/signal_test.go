package tests

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// A Ctrl-C in a terminal sends SIGINT to the whole foreground process
// group: the dispatcher or worker and its sandbox processes alike. The
// sandbox processes must leave the decision to their pool, so that tasks
// running at that moment drain and complete instead of failing with
// SANDBOX_CRASH.
func TestCtrlCDrainsRunningTasks(t *testing.T) {
	for _, role := range []string{"local dispatcher", "push worker", "pull worker"} {
		t.Run(role, func(t *testing.T) {
			mode := map[string]string{"local dispatcher": "push", "push worker": "push", "pull worker": "pull"}[role]
			c := newCluster(t, mode)
			c.drain = 10 * time.Second
			var target *proc
			const name = "node"
			if role == "local dispatcher" {
				target = startProc(t, name, "dispatcher", "-m", "local", "-w", "2", "--redis", c.redisURL,
					"--name", name, "--drain", c.drain.String())
			} else {
				d := c.dispatcher("d1")
				target = c.worker(name, 2)
				d.waitLog(c.joined(), 1, 60*time.Second)
			}
			xs := seq(2)
			fn, args := payloads(t, 1.5, xs)
			ids := c.enqueue(fn, args)
			deadline := time.Now().Add(60 * time.Second)
			for !allRunning(c, ids) {
				if time.Now().After(deadline) {
					t.Fatalf("the tasks did not start on %s", role)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// RUNNING is recorded at the claim; give a push worker the time to
			// receive the tasks and start them (each sleeps 1.5 s).
			time.Sleep(500 * time.Millisecond)
			// What a terminal does on Ctrl-C: the signal to every process of the group.
			if err := syscall.Kill(-target.cmd.Process.Pid, syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			if !target.exited(30 * time.Second) {
				t.Fatalf("%s did not exit after SIGINT", role)
			}
			if code := target.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("%s exit code %d\n%s", role, code, tail(target.logs(), 20))
			}
			tasks := c.waitFinal(ids, 30*time.Second)
			c.checkResults(ids, xs, tasks)
			for _, id := range ids {
				if a := tasks[id].Attempts; a != 1 {
					t.Errorf("task %s: %d attempts (worker %s); a Ctrl-C should let it finish where it ran", id, a, tasks[id].Worker)
				}
			}
		})
	}
}

func allRunning(c *cluster, ids []string) bool {
	for _, id := range ids {
		task, err := c.st.GetTask(context.Background(), id)
		if err != nil || task.Status != faastype.Running {
			return false
		}
	}
	return true
}
