package store

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// The fire script is given the tenant's queue and the function's hash as
// keys, from the owner and function the caller read: when the schedule it
// finds has another (changed between the read and the script), it refuses
// with -2 and writes nothing, and fire reads again.
func TestFireScheduleRefusesAStaleRead(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	st := New(rdb, Options{})
	for _, id := range []string{"fn-a", "fn-b"} {
		if err := st.PutFunction(ctx, Function{ID: id, Name: "tick", Payload: "ZnVuYw==", Owner: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	anchor := time.UnixMilli(time.Now().Add(-1500 * time.Millisecond).UnixMilli())
	sc := Schedule{ID: "s1", Owner: "alice", FunctionID: "fn-a", ParamPayload: "YXJncw==", Every: time.Second, CreatedAt: anchor}
	if err := st.PutSchedule(ctx, sc); err != nil {
		t.Fatal(err)
	}
	score, err := rdb.ZScore(ctx, st.keys.activeSchedules(), "s1").Result()
	if err != nil {
		t.Fatal(err)
	}
	tick := int64(score)
	task := st.keys.task(ScheduleTaskID("s1", time.UnixMilli(tick)))
	run := func(owner, fnID string) []int64 {
		t.Helper()
		keys := st.keys.tenancy(st.keys.stats(), st.keys.activeSchedules(), st.keys.schedule("s1"), st.keys.recentOf(owner),
			st.keys.scheduledCounts(), st.keys.tenantQueue(owner), st.keys.function(fnID), task)
		out, err := scriptFireSchedule.Run(ctx, rdb, keys, "s1", tick, tick+1000, time.Now().UnixMilli(), 0, 0, RecentTasks,
			st.keys.newTasksChannel(), owner, fnID, tick).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, stale := range [][2]string{{"alice", "fn-b"}, {"bob", "fn-a"}} {
		if out := run(stale[0], stale[1]); out[0] != -2 {
			t.Fatalf("fire with owner %q and function %q read: %v, want -2", stale[0], stale[1], out)
		}
		if n, _ := rdb.Exists(ctx, task).Result(); n != 0 {
			t.Fatal("a stale fire made a task")
		}
		if got, _ := rdb.ZScore(ctx, st.keys.activeSchedules(), "s1").Result(); int64(got) != tick {
			t.Fatalf("a stale fire moved the schedule to %v", got)
		}
	}
	if out := run("alice", "fn-a"); out[0] != 1 {
		t.Fatalf("fire with what is stored: %v, want 1 task", out)
	}
	if n, _ := rdb.LLen(ctx, st.keys.tenantQueue("alice")).Result(); n != 1 {
		t.Fatalf("alice's queue holds %d, want the tick's task", n)
	}
}
