package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/schedule"
	"github.com/wasmfaas/wasmfaas/store"
)

// putFn registers a function of tenant and returns its id.
func putFn(t *testing.T, st *store.Store, tenant, id string) string {
	t.Helper()
	f := store.Function{ID: id, Name: "tick", Payload: pickle.EncodeBase64([]byte("fn-" + id)), Owner: tenant}
	if err := st.PutFunction(testCtx(t), f); err != nil {
		t.Fatal(err)
	}
	return id
}

// everySecond creates a schedule of tenant ticking every second from
// anchor, and returns it.
func everySecond(t *testing.T, st *store.Store, tenant, id, fn string, anchor time.Time, missed schedule.Missed) store.Schedule {
	t.Helper()
	sc := store.Schedule{ID: id, Name: "s-" + id, Owner: tenant, FunctionID: fn, ParamPayload: pickle.EncodeBase64([]byte("args-" + id)),
		Every: time.Second, Missed: missed, CreatedAt: anchor}
	if err := st.PutSchedule(testCtx(t), sc); err != nil {
		t.Fatal(err)
	}
	return sc
}

func getSchedule(t *testing.T, st *store.Store, tenant, id string) store.Schedule {
	t.Helper()
	sc, err := st.GetSchedule(testCtx(t), tenant, id)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// Three, then eight, dispatchers race for every tick of a schedule, each
// looking a little late by its own clock: exactly one task per tick, with
// the tick's id, none twice.
func TestScheduleTicksFireOnceAcrossDispatchers(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		fn := putFn(t, st, "alice", "fn-race")
		anchor := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
		for _, dispatchers := range []int{3, 8} {
			id := "sched-" + string(rune('0'+dispatchers))
			everySecond(t, st, "alice", id, fn, anchor, schedule.RunOnce)
			const ticks = 10
			var want []string
			for k := 1; k <= ticks; k++ {
				tick := anchor.Add(time.Duration(k) * time.Second)
				want = append(want, store.ScheduleTaskID(id, tick))
				var wg sync.WaitGroup
				for range dispatchers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						late := time.Duration(rand.IntN(300)) * time.Millisecond
						if _, err := st.FireDue(ctx, tick.Add(late)); err != nil {
							t.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			sc := getSchedule(t, st, "alice", id)
			if sc.TasksCreated != ticks || sc.TicksMissed != 0 || sc.TicksSkipped != 0 {
				t.Fatalf("%d dispatchers: created %d, missed %d, skipped %d; want %d, 0, 0", dispatchers, sc.TasksCreated, sc.TicksMissed, sc.TicksSkipped, ticks)
			}
			if !sc.NextTick.Equal(anchor.Add((ticks+1)*time.Second)) || !sc.LastTick.Equal(anchor.Add(ticks*time.Second)) || sc.LastTaskID != want[ticks-1] {
				t.Fatalf("next %v last %v last task %s", sc.NextTick, sc.LastTick, sc.LastTaskID)
			}
			got := claimN(t, st, 100)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("%d dispatchers: tasks %v, want %v", dispatchers, got, want)
			}
		}
	})
}

// The tasks of a tick are the function's and the schedule's: payloads,
// owner, retry policy, JSON results; and they are in the tenant's recent
// list and counted as submitted.
func TestScheduleTaskFields(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		fn := putFn(t, st, "bob", "fn-fields")
		anchor := time.Now().Add(-1500 * time.Millisecond)
		policy := &faastype.RetryPolicy{Max: 2, Backoff: "fixed", Base: time.Second, MaxDelay: time.Second}
		sc := store.Schedule{ID: "s-fields", Owner: "bob", FunctionID: fn, ParamPayload: "eyJhcmdzIjogWzFdfQ==", WantJSON: true,
			Retry: policy, Every: time.Second, CreatedAt: anchor}
		if err := st.PutSchedule(ctx, sc); err != nil {
			t.Fatal(err)
		}
		if err := st.PutSchedule(ctx, sc); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second PutSchedule: %v", err)
		}
		res, err := st.FireDue(ctx, time.Now())
		if err != nil || res.Created != 1 {
			t.Fatalf("FireDue: %+v %v", res, err)
		}
		cs, err := st.Claim(ctx, "w", 10, time.Minute)
		if err != nil || len(cs) != 1 {
			t.Fatalf("claim %v %v", cs, err)
		}
		c := cs[0]
		f, _ := st.GetFunction(ctx, fn)
		if c.FunctionID != fn || c.FnPayload != f.Payload || c.FnHash != f.Hash || c.ParamPayload != sc.ParamPayload ||
			c.Owner != "bob" || !c.WantJSON || c.Retry == nil || c.Retry.Max != 2 || c.Isolation != faastype.Warm {
			t.Fatalf("claim %+v", c)
		}
		recent, err := st.TenantRecentTasks(ctx, "bob", 10)
		if err != nil || len(recent) != 1 || recent[0].ID != c.TaskID {
			t.Fatalf("recent %v %v", recent, err)
		}
	})
}

// After an outage, run_once makes one catch-up task for the missed ticks
// (and one for the tick on time), skip none; both go on at the next tick.
func TestScheduleMissedTicks(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		fn := putFn(t, st, "", "fn-missed")
		anchor := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
		everySecond(t, st, "", "s-once", fn, anchor, schedule.RunOnce)
		everySecond(t, st, "", "s-skip", fn, anchor, schedule.Skip)
		// Down for a minute: ticks 1..59 missed, 60 on time.
		now := anchor.Add(60*time.Second + 200*time.Millisecond)
		res, err := st.FireDue(ctx, now)
		if err != nil || res.Created != 3 || res.Missed != 2*59 {
			t.Fatalf("FireDue: %+v %v", res, err)
		}
		once, skip := getSchedule(t, st, "", "s-once"), getSchedule(t, st, "", "s-skip")
		if once.TasksCreated != 2 || once.TicksMissed != 59 || skip.TasksCreated != 1 || skip.TicksMissed != 59 {
			t.Fatalf("run_once %+v\nskip %+v", once, skip)
		}
		for _, sc := range []store.Schedule{once, skip} {
			if !sc.NextTick.Equal(anchor.Add(61 * time.Second)) {
				t.Fatalf("%s: next tick %v", sc.ID, sc.NextTick)
			}
		}
		ids := claimN(t, st, 10)
		slices.Sort(ids)
		want := []string{store.ScheduleTaskID("s-once", anchor.Add(59*time.Second)), store.ScheduleTaskID("s-once", anchor.Add(60*time.Second)),
			store.ScheduleTaskID("s-skip", anchor.Add(60*time.Second))}
		slices.Sort(want)
		if !slices.Equal(ids, want) {
			t.Fatalf("tasks %v, want %v", ids, want)
		}
		// Looking again at the same moment fires nothing.
		if res, err := st.FireDue(ctx, now); err != nil || res.Created != 0 || !res.Next.Equal(anchor.Add(61*time.Second)) {
			t.Fatalf("FireDue again: %+v %v", res, err)
		}
	})
}

// A tick the queue cap refuses is skipped with the reason; the schedule
// goes on, and fires again once there is room. So is a tick whose
// function is gone.
func TestScheduleTickOverQueueCap(t *testing.T) {
	eachBackend(t, store.Options{MaxQueued: 1}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		fn := putFn(t, st, "alice", "fn-cap")
		enqueueFor(t, st, "alice", 1)
		anchor := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
		everySecond(t, st, "alice", "s-cap", fn, anchor, schedule.RunOnce)
		res, err := st.FireDue(ctx, anchor.Add(time.Second))
		if err != nil || res.Created != 0 || res.Skipped != 1 {
			t.Fatalf("FireDue: %+v %v", res, err)
		}
		sc := getSchedule(t, st, "alice", "s-cap")
		if sc.TicksSkipped != 1 || !strings.Contains(sc.LastSkip, "queue full") || !sc.LastSkipTick.Equal(anchor.Add(time.Second)) ||
			!sc.NextTick.Equal(anchor.Add(2*time.Second)) {
			t.Fatalf("%+v", sc)
		}
		claimN(t, st, 1)
		if res, err := st.FireDue(ctx, anchor.Add(2*time.Second)); err != nil || res.Created != 1 {
			t.Fatalf("FireDue with room: %+v %v", res, err)
		}
		if err := rdb.Del(ctx, fn).Err(); err != nil {
			t.Fatal(err)
		}
		claimN(t, st, 1)
		if res, err := st.FireDue(ctx, anchor.Add(3*time.Second)); err != nil || res.Skipped != 1 {
			t.Fatalf("FireDue without the function: %+v %v", res, err)
		}
		if sc := getSchedule(t, st, "alice", "s-cap"); !strings.Contains(sc.LastSkip, "is gone") || sc.TasksCreated != 1 || sc.TicksSkipped != 2 {
			t.Fatalf("%+v", sc)
		}
	})
}

// Pause, resume, delete and list are per tenant; a paused schedule does not
// tick, and a resumed one goes on from its next tick after the resume.
func TestSchedulePauseResumeDelete(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		fn := putFn(t, st, "alice", "fn-state")
		anchor := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
		everySecond(t, st, "alice", "s-a", fn, anchor, schedule.RunOnce)
		everySecond(t, st, "alice", "s-b", fn, anchor.Add(time.Millisecond), schedule.Skip)
		for _, err := range []error{
			st.PauseSchedule(ctx, "bob", "s-a"), st.ResumeSchedule(ctx, "bob", "s-a", time.Now()), st.DeleteSchedule(ctx, "bob", "s-a"),
			st.PauseSchedule(ctx, "alice", "nope"),
		} {
			if !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("another tenant's or unknown schedule: %v", err)
			}
		}
		if _, err := st.GetSchedule(ctx, "bob", "s-a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("bob reads alice's schedule: %v", err)
		}
		if l, err := st.ListSchedules(ctx, "bob"); err != nil || len(l) != 0 {
			t.Fatalf("bob's list: %v %v", l, err)
		}
		if err := st.PauseSchedule(ctx, "alice", "s-a"); err != nil {
			t.Fatal(err)
		}
		sc := getSchedule(t, st, "alice", "s-a")
		if !sc.Paused || !sc.NextTick.IsZero() {
			t.Fatalf("paused: %+v", sc)
		}
		now := anchor.Add(10*time.Second + 100*time.Millisecond)
		res, err := st.FireDue(ctx, anchor.Add(time.Second))
		if err != nil || res.Created != 0 {
			t.Fatalf("FireDue with s-a paused: %+v %v", res, err) // s-b's first tick is at anchor+1.001s
		}
		if err := st.ResumeSchedule(ctx, "alice", "s-a", now); err != nil {
			t.Fatal(err)
		}
		if err := st.ResumeSchedule(ctx, "alice", "s-a", now.Add(time.Hour)); err != nil {
			t.Fatal(err) // not paused: left alone
		}
		sc = getSchedule(t, st, "alice", "s-a")
		if sc.Paused || !sc.NextTick.Equal(anchor.Add(11*time.Second)) {
			t.Fatalf("resumed: %+v", sc)
		}
		l, err := st.ListSchedules(ctx, "alice")
		if err != nil || len(l) != 2 || l[0].ID != "s-a" || l[1].ID != "s-b" || l[1].Missed != schedule.Skip || l[0].Every != time.Second {
			t.Fatalf("list: %+v %v", l, err)
		}
		if err := st.DeleteSchedule(ctx, "alice", "s-b"); err != nil {
			t.Fatal(err)
		}
		if l, _ := st.ListSchedules(ctx, "alice"); len(l) != 1 {
			t.Fatalf("list after delete: %+v", l)
		}
		res, err = st.FireDue(ctx, anchor.Add(11*time.Second))
		if err != nil || res.Created != 1 {
			t.Fatalf("FireDue after resume and delete: %+v %v", res, err)
		}
	})
}

// A cron schedule ticks on its expression, in its time zone.
func TestScheduleCron(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		fn := putFn(t, st, "", "fn-cron")
		created := time.Date(2026, 12, 7, 10, 2, 0, 0, time.UTC)
		sc := store.Schedule{ID: "s-cron", FunctionID: fn, ParamPayload: "x", Cron: "*/5 * * * *", Timezone: "Asia/Kolkata", CreatedAt: created}
		if err := st.PutSchedule(ctx, sc); err != nil {
			t.Fatal(err)
		}
		// Kolkata is UTC+5:30: */5 is on :05 UTC too.
		if got := getSchedule(t, st, "", "s-cron"); !got.NextTick.Equal(created.Add(3*time.Minute)) || got.Cron != "*/5 * * * *" || got.Timezone != "Asia/Kolkata" {
			t.Fatalf("%+v", got)
		}
		bad := store.Schedule{ID: "s-bad", FunctionID: fn, Cron: "* * *"}
		if err := st.PutSchedule(ctx, bad); err == nil {
			t.Fatal("a bad cron expression was stored")
		}
		if res, err := st.FireDue(ctx, created.Add(3*time.Minute)); err != nil || res.Created != 1 || !res.Next.Equal(created.Add(8*time.Minute)) {
			t.Fatalf("FireDue: %+v %v", res, err)
		}
	})
}

// A member of the active set whose schedule hash is gone (deleted by hand)
// is dropped at its tick.
func TestScheduleStaleMemberIsDropped(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		fn := putFn(t, st, "", "fn-stale")
		anchor := time.UnixMilli(time.Now().Add(-24 * time.Hour).UnixMilli())
		everySecond(t, st, "", "s-stale", fn, anchor, schedule.RunOnce)
		if err := rdb.Del(ctx, "faas:schedule:s-stale").Err(); err != nil {
			t.Fatal(err)
		}
		res, err := st.FireDue(ctx, time.Now())
		if err != nil || res.Created != 0 || !res.Next.IsZero() {
			t.Fatalf("FireDue: %+v %v", res, err)
		}
		if n := rdb.ZCard(ctx, "faas:schedules").Val(); n != 0 {
			t.Fatalf("%d members left", n)
		}
	})
}

// The stats hash counts the schedules' ticks by outcome, cluster-wide, in
// the script that fires them: the sums of the schedules' own counters, once
// per tick however many dispatchers race; Stats reads the active and paused
// schedules of every tenant.
func TestScheduleStats(t *testing.T) {
	eachBackend(t, store.Options{MaxQueued: 2}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		check := func(step string, active, paused, fired, missed, skipped int64) {
			t.Helper()
			got, err := st.Stats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{"fired": fired, "missed": missed, "skipped": skipped}
			if got.SchedulesActive != active || got.SchedulesPaused != paused || fmt.Sprint(got.ScheduleTicks) != fmt.Sprint(want) {
				t.Fatalf("%s: active %d paused %d ticks %v; want %d %d %v", step,
					got.SchedulesActive, got.SchedulesPaused, got.ScheduleTicks, active, paused, want)
			}
		}
		check("empty", 0, 0, 0, 0, 0)
		fn := putFn(t, st, "alice", "fn-stats")
		bobFn := putFn(t, st, "bob", "fn-stats-bob")
		anchor := time.UnixMilli(time.Now().Add(-time.Hour).UnixMilli())
		everySecond(t, st, "alice", "s-once", fn, anchor, schedule.RunOnce)
		everySecond(t, st, "alice", "s-skip", fn, anchor, schedule.Skip)
		created := store.Schedule{ID: "s-created-paused", Owner: "bob", FunctionID: bobFn, Every: time.Second, Paused: true, CreatedAt: anchor}
		if err := st.PutSchedule(ctx, created); err != nil {
			t.Fatal(err)
		}
		everySecond(t, st, "bob", "s-paused", bobFn, anchor, schedule.RunOnce)
		check("created", 3, 1, 0, 0, 0)
		if err := st.PauseSchedule(ctx, "bob", "s-paused"); err != nil {
			t.Fatal(err)
		}
		// Pausing twice counts it once.
		if err := st.PauseSchedule(ctx, "bob", "s-paused"); err != nil {
			t.Fatal(err)
		}
		check("paused", 2, 2, 0, 0, 0)

		// Down for a minute: each schedule missed ticks 1..59. s-once (fired
		// first: same tick, smaller id) makes the catch-up task and tick 60's,
		// which fill alice's queue (cap 2); s-skip's tick 60 is refused.
		now := anchor.Add(60*time.Second + 200*time.Millisecond)
		if res, err := st.FireDue(ctx, now); err != nil || res.Created != 2 || res.Skipped != 1 || res.Missed != 2*59 {
			t.Fatalf("FireDue: %+v %v", res, err)
		}
		check("after the outage", 2, 2, 2, 2*59, 1)
		sum := func() (fired, missed, skipped int64) {
			for _, id := range []string{"s-once", "s-skip"} {
				sc := getSchedule(t, st, "alice", id)
				fired, missed, skipped = fired+sc.TasksCreated, missed+sc.TicksMissed, skipped+sc.TicksSkipped
			}
			return
		}
		if f, m, s := sum(); f != 2 || m != 2*59 || s != 1 {
			t.Fatalf("the schedules' own counters: %d %d %d", f, m, s)
		}
		claimN(t, st, 2)

		// Five dispatchers race for tick 61: one task per schedule, counted
		// once.
		var wg sync.WaitGroup
		errs := make(chan error, 5)
		for range 5 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := st.FireDue(ctx, anchor.Add(61*time.Second+100*time.Millisecond)); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		check("after the race", 2, 2, 4, 2*59, 1)
		if f, m, s := sum(); f != 4 || m != 2*59 || s != 1 {
			t.Fatalf("the schedules' own counters: %d %d %d", f, m, s)
		}

		// Resume, delete: the gauges follow; the counters stay.
		if err := st.ResumeSchedule(ctx, "bob", "s-created-paused", now); err != nil {
			t.Fatal(err)
		}
		check("resumed", 3, 1, 4, 2*59, 1)
		for _, d := range []struct{ tenant, id string }{{"bob", "s-paused"}, {"alice", "s-once"}} {
			if err := st.DeleteSchedule(ctx, d.tenant, d.id); err != nil {
				t.Fatal(err)
			}
		}
		check("deleted", 2, 0, 4, 2*59, 1)
	})
}

// A tick's task carries its function's settings, as Enqueue copies them:
// timeout, memory cap, variables and secrets, and the callback URL.
func TestScheduleTaskCarriesTheFunctionsSettings(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		set := store.Settings{Timeout: 2 * time.Second, MemoryBytes: 96 << 20,
			Env: map[string]string{"MODE": "prod", "URL": "https://example.org/a/b"}, Secrets: map[string]string{"KEY": "k=1"}}
		f := store.Function{ID: "fn-settings", Name: "f", Payload: fnPayload, Owner: "bob", Settings: set,
			CallbackURL: "https://example.com/hook"}
		if err := st.PutFunction(ctx, f); err != nil {
			t.Fatal(err)
		}
		sc := store.Schedule{ID: "s-settings", Owner: "bob", FunctionID: f.ID, ParamPayload: paramPayload, Every: time.Second,
			CreatedAt: time.Now().Add(-1500 * time.Millisecond)}
		if err := st.PutSchedule(ctx, sc); err != nil {
			t.Fatal(err)
		}
		if res, err := st.FireDue(ctx, time.Now()); err != nil || res.Created != 1 {
			t.Fatalf("FireDue: %+v %v", res, err)
		}
		cs, err := st.Claim(ctx, "w", 10, time.Minute)
		if err != nil || len(cs) != 1 {
			t.Fatalf("claim %v %v", cs, err)
		}
		c := cs[0]
		if c.Timeout != set.Timeout || c.MemoryBytes != set.MemoryBytes || !slices.Equal(c.Env, set.TaskEnv()) {
			t.Fatalf("the tick's task carries %v %d %q; want %v %d %q", c.Timeout, c.MemoryBytes, c.Env,
				set.Timeout, set.MemoryBytes, set.TaskEnv())
		}
		if got, _ := rdb.HGet(ctx, c.TaskID, "callback_url").Result(); got != f.CallbackURL {
			t.Fatalf("callback_url %q", got)
		}
	})
}
