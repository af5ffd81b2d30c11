package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
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
			sen := redistest.StartSentinel(t, true)
			rdb := sen.Client(t)
			url := "redis-sentinel://" + strings.Join(sen.Sentinels, ",") + "/0?master=" + redistest.SentinelMaster
			c := newClusterOn(t, mode, rdb, url)
			d := c.dispatcher("d1")
			c.worker("w1", 2)
			xs := seq(40)
			fn, args := payloads(t, 0.05, xs)
			ids := c.enqueue(fn, args)
			// Some done, some running, some queued: then the primary dies.
			deadline := time.Now().Add(60 * time.Second)
			for {
				s, err := c.st.Stats(context.Background())
				if err == nil && s.Finished[faastype.Completed] >= 8 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("tasks did not start: %+v %v\n%s", s, err, tail(d.logs(), 20))
				}
				time.Sleep(20 * time.Millisecond)
			}
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
