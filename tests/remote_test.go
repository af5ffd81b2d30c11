package tests

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// modes are the remote modes the tests run in: each without a worker
// secret, and with one on the dispatcher and every worker.
var modes = []string{"push", "pull", "push+secret", "pull+secret"}

// Tasks spread over three workers all complete, each run once (one
// attempt: no task ran on two workers) and recorded once, and every worker
// did some.
func TestSpreadOverWorkers(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode)
			done := countDone(t, c.rdb)
			d := c.dispatcher("d1")
			names := []string{"w1", "w2", "w3"}
			for _, n := range names {
				c.worker(n, 2)
			}
			d.waitLog(c.joined(), 3, 60*time.Second)
			xs := seq(30)
			fn, args := payloads(t, 0.2, xs)
			ids := c.enqueue(fn, args)
			tasks := c.waitFinal(ids, 60*time.Second)
			c.checkResults(ids, xs, tasks)
			perWorker := map[string]int{}
			for _, id := range ids {
				task := tasks[id]
				if task.Attempts != 1 {
					t.Errorf("task %s: %d attempts, want 1", id, task.Attempts)
				}
				perWorker[strings.SplitN(task.Worker, "/", 2)[0]]++
			}
			for _, n := range names {
				if perWorker[n] == 0 {
					t.Errorf("worker %s ran nothing: %v", n, perWorker)
				}
			}
			done.check(t, ids)
			if n := d.count("late result rejected"); n != 0 {
				t.Errorf("%d late results with nothing killed", n)
			}
			t.Logf("tasks per worker: %v", perWorker)
		})
	}
}

// SIGKILL a worker while it runs tasks: they finish on the others.
func TestKillWorker(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode)
			c.misses = 3
			done := countDone(t, c.rdb)
			d := c.dispatcher("d1")
			victim := c.worker("w1", 2)
			c.worker("w2", 2)
			c.worker("w3", 2)
			d.waitLog(c.joined(), 3, 60*time.Second)
			xs := seq(24)
			fn, args := payloads(t, 0.5, xs)
			ids := c.enqueue(fn, args)
			lost := c.waitRunningOn("w1", ids, 30*time.Second)
			victim.signal(syscall.SIGKILL)
			tasks := c.waitFinal(ids, 60*time.Second)
			c.checkResults(ids, xs, tasks)
			done.check(t, ids)
			for _, id := range lost {
				task := tasks[id]
				if task.Attempts < 2 || strings.HasPrefix(task.Worker, "w1/") {
					t.Errorf("task %s that ran on the killed worker: attempts %d, worker %s", id, task.Attempts, task.Worker)
				}
			}
			if c.mode == "push" {
				if d.count("worker declared dead") == 0 {
					t.Error("the dispatcher did not declare the killed worker dead")
				}
			} else if d.count("passed their deadline") == 0 {
				t.Error("the dispatcher did not requeue tasks at their deadline")
			}
		})
	}
}

// SIGSTOP a worker past its heartbeats (push) or its tasks' deadline
// (pull), then SIGCONT: its tasks ran elsewhere, its late results are
// rejected, and each task has exactly one recorded result.
func TestStopWorker(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode)
			c.misses = 3
			done := countDone(t, c.rdb)
			d := c.dispatcher("d1")
			victim := c.worker("w1", 2, "--log-level", "debug")
			c.worker("w2", 2)
			c.worker("w3", 2)
			d.waitLog(c.joined(), 3, 60*time.Second)
			xs := seq(24)
			fn, args := payloads(t, 0.5, xs)
			ids := c.enqueue(fn, args)
			// Stop it once it has started tasks, so that it has results to
			// deliver late.
			victim.waitLog("task started", 1, 30*time.Second)
			stuck, started := c.waitStartedOn(victim, ids, 30*time.Second)
			victim.signal(syscall.SIGSTOP)
			if c.mode == "push" {
				d.waitLog("worker declared dead", 1, 30*time.Second)
			} else {
				d.waitLog("passed their deadline", 1, 30*time.Second)
			}
			// Let the others finish the requeued tasks first.
			time.Sleep(time.Second)
			victim.signal(syscall.SIGCONT)
			tasks := c.waitFinal(ids, 60*time.Second)
			c.checkResults(ids, xs, tasks)
			for _, id := range stuck {
				if task := tasks[id]; task.Attempts < 2 || strings.HasPrefix(task.Worker, "w1/") {
					t.Errorf("task %s that ran on the stopped worker: attempts %d, worker %s", id, task.Attempts, task.Worker)
				}
			}
			// The stopped worker's results come too late: the lease check
			// rejects them, or the dispatcher has told the worker first
			// that the task is no longer its own (and it drops them). Only
			// the tasks it had started are sure to have results: one sent
			// to it just before the stop may never have been read (a worker
			// that reconnects after the stop opens a new socket).
			deadline := time.Now().Add(30 * time.Second)
			for _, id := range started {
				for !hasLine(d.logs(), "late result rejected", id) && !hasLine(victim.logs(), "took the task back", id) &&
					!hasLine(victim.logs(), "took it back", id) {
					if time.Now().After(deadline) {
						t.Fatalf("task %s: its late result was neither rejected nor dropped", id)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			t.Logf("late results rejected by the dispatcher: %d; dropped by the worker on CANCEL: %d",
				d.count("late result rejected"), victim.count("took the task back")+victim.count("took it back"))
			done.check(t, ids)
		})
	}
}

// SIGKILL the dispatcher mid-run and start another: every task ends
// COMPLETED, none is lost, each is recorded once.
func TestKillDispatcher(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode)
			done := countDone(t, c.rdb)
			d := c.dispatcher("d1")
			w1 := c.worker("w1", 2, "--log-level", "debug")
			c.worker("w2", 2)
			d.waitLog(c.joined(), 2, 60*time.Second)
			xs := seq(16)
			fn, args := payloads(t, 1.5, xs)
			ids := c.enqueue(fn, args)
			w1.waitLog("task started", 1, 30*time.Second)
			time.Sleep(200 * time.Millisecond)
			d.signal(syscall.SIGKILL)
			time.Sleep(300 * time.Millisecond)
			d2 := c.dispatcher("d2")
			tasks := c.waitFinal(ids, 60*time.Second)
			c.checkResults(ids, xs, tasks)
			done.check(t, ids)
			if !d2.alive() {
				t.Fatal("the second dispatcher died")
			}
			if w1.count("lost the dispatcher") == 0 {
				t.Error("the worker did not notice the dispatcher going away")
			}
			// The tasks the workers were running when the dispatcher died
			// were adopted by the new one (their leases are the workers').
			if d2.count("adopted the tasks a worker was running") == 0 {
				t.Error("the new dispatcher adopted nothing")
			}
		})
	}
}

// Restart redis-server (AOF, fsync always) during a run: nothing is lost.
func TestRestartRedis(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			needImage(t)
			r := startOwnRedis(t)
			rdb := newRedisClient(t, r.addr())
			c := newClusterOn(t, mode, rdb, "redis://"+r.addr()+"/0")
			d := c.dispatcher("d1")
			c.worker("w1", 2)
			c.worker("w2", 2)
			d.waitLog(c.joined(), 2, 60*time.Second)
			xs := seq(30)
			fn, args := payloads(t, 0.2, xs)
			ids := c.enqueue(fn, args)
			// Some done, some running, some queued.
			deadline := time.Now().Add(30 * time.Second)
			for {
				n, _ := c.rdb.LLen(context.Background(), "faas:queue").Result()
				if n < int64(len(ids))-6 || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			r.p.kill()
			time.Sleep(time.Second)
			r.start()
			tasks := c.waitFinal(ids, 90*time.Second)
			c.checkResults(ids, xs, tasks)
			if !d.alive() {
				t.Fatal("the dispatcher died")
			}
		})
	}
}

// A worker started before the dispatcher connects once the dispatcher is up.
func TestWorkerBeforeDispatcher(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode)
			w := c.worker("w1", 1)
			time.Sleep(1500 * time.Millisecond)
			if !w.alive() {
				t.Fatal("the worker gave up without a dispatcher")
			}
			d := c.dispatcher("d1")
			d.waitLog(c.joined(), 1, 60*time.Second)
			xs := seq(4)
			fn, args := payloads(t, 0, xs)
			ids := c.enqueue(fn, args)
			c.checkResults(ids, xs, c.waitFinal(ids, 60*time.Second))
		})
	}
}

// SIGTERM stops a worker gracefully: it finishes (or hands back) what it
// runs and exits; nothing is lost.
func TestWorkerGracefulStop(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode)
			done := countDone(t, c.rdb)
			d := c.dispatcher("d1")
			w1 := c.worker("w1", 2)
			c.worker("w2", 2)
			d.waitLog(c.joined(), 2, 60*time.Second)
			xs := seq(16)
			fn, args := payloads(t, 0.4, xs)
			ids := c.enqueue(fn, args)
			c.waitRunningOn("w1", ids, 30*time.Second)
			w1.signal(syscall.SIGTERM)
			if !w1.exited(20 * time.Second) {
				t.Fatal("the worker did not exit after SIGTERM")
			}
			if w1.cmd.ProcessState.ExitCode() != 0 {
				t.Errorf("worker exit code %d", w1.cmd.ProcessState.ExitCode())
			}
			tasks := c.waitFinal(ids, 60*time.Second)
			c.checkResults(ids, xs, tasks)
			done.check(t, ids)
			for _, id := range ids {
				if a := tasks[id].Attempts; a != 1 {
					t.Errorf("task %s: %d attempts; a graceful stop costs none", id, a)
				}
			}
		})
	}
}
