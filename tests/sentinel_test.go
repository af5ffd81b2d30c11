package tests

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// A dispatcher and its workers on Redis Sentinel (--redis
// redis-sentinel://...?master=...): the primary is SIGKILLed while tasks
// flow, the sentinels promote a replica, and the dispatcher carries on by
// itself. With appendfsync always and min-replicas-to-write 1 (the durable
// deployment), every task ends COMPLETED with its result, and none is
// counted twice.
func TestSentinelFailoverWhileTasksFlow(t *testing.T) {
	needImage(t)
	for _, mode := range []string{"push", "pull"} {
		t.Run(mode, func(t *testing.T) {
			sen, c, d := sentinelCluster(t, mode, true)
			xs := seq(40)
			fn, args := payloads(t, 0.05, xs)
			ids := c.enqueue(fn, args)
			// Some done, some running, some queued: then the primary dies.
			waitCompleted(t, c, d, 8)
			promoted := sen.KillPrimary(t)
			t.Logf("promoted %s", promoted)
			tasks := c.waitFinal(ids, 120*time.Second)
			c.checkResults(ids, xs, tasks)
			s, err := c.st.Stats(context.Background())
			if err != nil || s.Finished[faastype.Completed] != int64(len(ids)) || s.Finished[faastype.Failed] != 0 {
				t.Fatalf("counted %+v (%v), want %d COMPLETED once each", s.Finished, err, len(ids))
			}
			if strings.Contains(d.logs(), "late result rejected") {
				t.Logf("late results were rejected after the failover (a claim the new primary never saw): %d",
					d.count("late result rejected"))
			}
		})
	}
}

// The same failover with Redis's default asynchronous replication (no
// appendfsync always, no min-replicas-to-write) while tasks are still
// being enqueued: the promoted replica may miss the primary's last writes,
// so acknowledged enqueues may be lost (the test logs how many), lost
// claims and completions are run again. What it must not do is record
// anything twice: every task that still exists ends COMPLETED with its
// result, and Stats counts as many submissions and completions as there
// are tasks.
func TestSentinelFailoverWithoutDurableSettings(t *testing.T) {
	needImage(t)
	for _, mode := range []string{"push", "pull"} {
		t.Run(mode, func(t *testing.T) {
			sen, c, d := sentinelCluster(t, mode, false)
			const before, during = 20, 60
			xs := seq(before + during)
			fn, args := payloads(t, 0.05, xs)
			x := map[string]int{} // task id -> its x, for every task tried
			var acked []string
			ids := c.enqueue(fn, args[:before])
			for i, id := range ids {
				x[id] = xs[i]
			}
			acked = append(acked, ids...)
			waitCompleted(t, c, d, 8)

			// Enqueue the rest while the primary is killed and replaced.
			var mu sync.Mutex
			var refused int
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := before; i < len(args); i++ {
					id := uuid.NewString()
					err := c.tryEnqueue(id, fn, args[i])
					mu.Lock()
					x[id] = xs[i]
					if err == nil {
						acked = append(acked, id)
					} else {
						refused++
					}
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
				}
			}()
			time.Sleep(50 * time.Millisecond)
			promoted := sen.KillPrimary(t)
			<-done
			t.Logf("promoted %s; %d enqueues acknowledged, %d refused during the failover", promoted, len(acked), refused)

			// Which tasks the promoted primary has: acknowledged ones it
			// lacks are lost; refused ones it has were created all the same.
			var exist []string
			var existX []int
			lost := 0
			for id, xi := range x {
				_, err := getTaskRetrying(t, c, id)
				switch {
				case errors.Is(err, store.ErrNotFound):
					if slices.Contains(acked, id) {
						lost++
					}
				case err != nil:
					t.Fatalf("task %s: %v", id, err)
				default:
					exist = append(exist, id)
					existX = append(existX, xi)
				}
			}
			t.Logf("LOST %d of %d acknowledged tasks (%d tasks exist after the failover)", lost, len(acked), len(exist))
			tasks := c.waitFinal(exist, 120*time.Second)
			c.checkResults(exist, existX, tasks)
			again := 0
			for _, task := range tasks {
				if task.Attempts > 1 {
					again++
				}
			}
			// A task runs again when its lease expired while no primary
			// took the renewal, or when the promoted replica lacked its claim
			// or completion; its first run's result is then rejected.
			t.Logf("%d tasks ran more than once; late results rejected: %d", again, d.count("late result rejected"))
			s, err := c.st.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n := int64(len(exist)); s.Submitted != n || s.Finished[faastype.Completed] != n || s.Finished[faastype.Failed] != 0 {
				t.Fatalf("Stats counted %d submitted, %+v finished; want %d submitted and COMPLETED, each once",
					s.Submitted, s.Finished, n)
			}
		})
	}
}

// The flag form of a Sentinel deployment, --redis-sentinel host:port,...
// with --redis-master name, reaches the primary as the URL does: a
// dispatcher whose --redis names no server runs the tasks.
func TestSentinelFlagForm(t *testing.T) {
	needImage(t)
	sen := redistest.StartSentinel(t, false)
	c := newClusterOn(t, "push", sen.Client(t), "redis://127.0.0.1:1/0")
	c.dispatcher("d1", "--redis-sentinel", strings.Join(sen.Sentinels, ","), "--redis-master", redistest.SentinelMaster)
	c.worker("w1", 1)
	xs := seq(4)
	fn, args := payloads(t, 0, xs)
	ids := c.enqueue(fn, args)
	c.checkResults(ids, xs, c.waitFinal(ids, 60*time.Second))
}

// sentinelCluster starts a Sentinel deployment (durable or not, see
// redistest.StartSentinel), a dispatcher d1 of mode on it through its
// redis-sentinel:// URL and a worker w1 with 2 sandboxes.
func sentinelCluster(t *testing.T, mode string, durable bool) (*redistest.Sentinel, *cluster, *proc) {
	t.Helper()
	sen := redistest.StartSentinel(t, durable)
	url := "redis-sentinel://" + strings.Join(sen.Sentinels, ",") + "/0?master=" + redistest.SentinelMaster
	c := newClusterOn(t, mode, sen.Client(t), url)
	d := c.dispatcher("d1")
	c.worker("w1", 2)
	return sen, c, d
}

// waitCompleted waits until Stats counts n COMPLETED tasks.
func waitCompleted(t *testing.T, c *cluster, d *proc, n int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := c.st.Stats(context.Background())
		if err == nil && s.Finished[faastype.Completed] >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks did not complete: %+v %v\n%s", n, s, err, tail(d.logs(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getTaskRetrying reads a task, retrying errors other than ErrNotFound
// (the client finding the new primary) for up to 30 s.
func getTaskRetrying(t *testing.T, c *cluster, id string) (store.Task, error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		task, err := c.st.GetTask(context.Background(), id)
		if err == nil || errors.Is(err, store.ErrNotFound) || time.Now().After(deadline) {
			return task, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
