package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// enqueueFor enqueues n tasks of tenant, one call each, with ids
// "<tenant>-0", "<tenant>-1", ... ("def-..." for the default tenant).
func enqueueFor(t *testing.T, st *store.Store, tenant string, n int) []string {
	t.Helper()
	ctx := testCtx(t)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", tenantLabel(tenant), i)
		task := newTask(ids[i])
		task.Owner = tenant
		if err := st.Enqueue(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func tenantLabel(tenant string) string {
	if tenant == "" {
		return "def"
	}
	return tenant
}

// queueOf is the name of tenant's queue.
func queueOf(tenant string) string {
	if tenant == "" {
		return "faas:queue"
	}
	return "faas:queue:" + tenant
}

func claimN(t *testing.T, st *store.Store, n int) []string {
	t.Helper()
	cs, err := st.Claim(testCtx(t), "w", n, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return claimIDs(cs)
}

// checkRunning checks that the per-tenant running counts agree with the
// lease set: every leased task counted once, for its owner.
func checkRunning(t *testing.T, rdb redis.UniversalClient) {
	t.Helper()
	ctx := testCtx(t)
	leased, err := rdb.ZRange(ctx, "faas:leases", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, id := range leased {
		owner, _ := rdb.HGet(ctx, id, "owner").Result()
		n, _ := strconv.Atoi(want[owner])
		want[owner] = strconv.Itoa(n + 1)
	}
	got, err := rdb.HGetAll(ctx, "faas:running").Result()
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("running counts %v, but the leases say %v", got, want)
	}
}

func TestTenantFields(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		f := store.Function{ID: "fa", Name: "sqrt", Payload: fnPayload, Owner: "alice"}
		if err := st.PutFunction(ctx, f); err != nil {
			t.Fatal(err)
		}
		if got, err := st.GetFunction(ctx, "fa"); err != nil || got.Owner != "alice" {
			t.Fatalf("GetFunction = %+v, %v", got, err)
		}
		// The default tenant writes no owner field: the course layout.
		if err := st.PutFunction(ctx, store.Function{ID: "fd", Name: "sqrt", Payload: fnPayload}); err != nil {
			t.Fatal(err)
		}
		if ok, _ := rdb.HExists(ctx, "fd", "owner").Result(); ok {
			t.Fatal("a default-tenant function has an owner field")
		}
		enqueueFor(t, st, "alice", 1)
		enqueueFor(t, st, "", 1)
		for id, want := range map[string]string{"alice-0": "alice", "def-0": ""} {
			task, err := st.GetTask(ctx, id)
			if err != nil || task.Owner != want {
				t.Fatalf("GetTask(%s) owner %q, %v; want %q", id, task.Owner, err, want)
			}
			sum, _ := st.GetTaskSummary(ctx, id)
			ts, err := st.TaskStatus(ctx, id)
			if sum.Owner != want || ts.Status != faastype.Queued || ts.Owner != want || err != nil {
				t.Fatalf("summary owner %q, TaskStatus %+v %v", sum.Owner, ts, err)
			}
		}
		if _, err := st.TaskStatus(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("TaskStatus(unknown): %v", err)
		}
		if ok, _ := rdb.HExists(ctx, "def-0", "owner").Result(); ok {
			t.Fatal("a default-tenant task has an owner field")
		}
		// Each tenant has its own queue and recent-task index.
		if q, _ := rdb.LRange(ctx, "faas:queue:alice", 0, -1).Result(); !slices.Equal(q, []string{"alice-0"}) {
			t.Fatalf("alice's queue %v", q)
		}
		if q, _ := rdb.LRange(ctx, "faas:queue", 0, -1).Result(); !slices.Equal(q, []string{"def-0"}) {
			t.Fatalf("the default queue %v", q)
		}
		for tenant, want := range map[string]string{"alice": "alice-0", "": "def-0", "bob": ""} {
			recent, err := st.TenantRecentTasks(ctx, tenant, 10)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range recent {
				ids = append(ids, r.ID)
			}
			if fmt.Sprint(ids) != fmt.Sprint(slices.DeleteFunc([]string{want}, func(s string) bool { return s == "" })) {
				t.Fatalf("recent tasks of %q: %v, want %q", tenant, ids, want)
			}
		}
		if def, _ := st.RecentTasks(ctx, 10); len(def) != 1 || def[0].ID != "def-0" {
			t.Fatalf("RecentTasks = %+v", def)
		}
		// Names that could break key names are refused.
		for _, bad := range []string{"a:b", "a b", "-a", "x/y", string(make([]byte, 65))} {
			task := newTask("bad")
			task.Owner = bad
			if err := st.Enqueue(ctx, task); err == nil {
				t.Errorf("Enqueue with owner %q: no error", bad)
			}
			if err := st.PutFunction(ctx, store.Function{ID: "bad", Name: "f", Payload: fnPayload, Owner: bad}); err == nil {
				t.Errorf("PutFunction with owner %q: no error", bad)
			}
			if store.ValidTenant(bad) == nil {
				t.Errorf("ValidTenant(%q) = nil", bad)
			}
		}
		for _, good := range []string{"a", "A.b_c-9", "0team"} {
			if err := store.ValidTenant(good); err != nil {
				t.Errorf("ValidTenant(%q) = %v", good, err)
			}
		}
	})
}

// Claims take the tenants with queued work in turn, each tenant's tasks in
// order, whatever the claim sizes.
func TestClaimRoundRobin(t *testing.T) {
	want := []string{"a-0", "b-0", "def-0", "a-1", "b-1", "a-2", "a-3", "a-4"}
	for _, sizes := range [][]int{{1, 1, 1, 1, 1, 1, 1, 1, 1}, {3, 5, 1}, {100}} {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
				enqueueFor(t, st, "a", 5)
				enqueueFor(t, st, "b", 2)
				enqueueFor(t, st, "", 1)
				if n, err := st.QueueDepth(testCtx(t)); err != nil || n != 8 {
					t.Fatalf("QueueDepth = %d, %v; want 8", n, err)
				}
				var got []string
				for _, n := range sizes {
					got = append(got, claimN(t, st, n)...)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("claimed %v, want %v", got, want)
				}
				if n, _ := st.QueueDepth(testCtx(t)); n != 0 {
					t.Fatalf("QueueDepth = %d after claiming everything", n)
				}
				// The last tenant served stays in the ring, alone, until a
				// claim finds another; nobody is parked.
				for key, most := range map[string]int64{"faas:ring": 1, "faas:parked": 0} {
					if n, _ := rdb.ZCard(testCtx(t), key).Result(); n > most {
						t.Fatalf("%s has %d tenants with every queue empty", key, n)
					}
				}
				checkRunning(t, rdb)
			})
		})
	}
}

// A tenant that joins while another has thousands of tasks queued is
// served at the next claim but one.
func TestClaimFairnessUnderFlood(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		const flood = 10_000
		for b := 0; b < flood/1000; b++ {
			ids := make([]string, 1000)
			params := make([]string, 1000)
			for i := range ids {
				ids[i] = fmt.Sprintf("a-%d-%d", b, i)
				params[i] = paramPayload
			}
			tmpl := newTask("")
			tmpl.Owner = "a"
			if err := st.EnqueueBatch(ctx, tmpl, ids, params); err != nil {
				t.Fatal(err)
			}
		}
		if got := claimN(t, st, 2); !slices.Equal(got, []string{"a-0-0", "a-0-1"}) {
			t.Fatalf("first claims %v", got)
		}
		enqueueFor(t, st, "b", 1)
		start := time.Now()
		got := claimN(t, st, 1)
		got = append(got, claimN(t, st, 1)...)
		if !slices.Contains(got, "b-0") {
			t.Fatalf("b's task was not among the next two claims: %v", got)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("two claims with %d tasks queued took %v", flood, d)
		}
		if n, _ := st.QueueDepth(ctx); n != flood-3 {
			t.Fatalf("QueueDepth = %d, want %d", n, flood-3)
		}
	})
}

func TestRunningCap(t *testing.T) {
	eachBackend(t, store.Options{MaxRunning: 2}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueFor(t, st, "a", 5)
		enqueueFor(t, st, "b", 3)
		if got := claimN(t, st, 10); !slices.Equal(got, []string{"a-0", "b-0", "a-1", "b-1"}) {
			t.Fatalf("claimed %v, want two of each tenant", got)
		}
		if got := claimN(t, st, 10); len(got) != 0 {
			t.Fatalf("claimed %v past the caps", got)
		}
		checkRunning(t, rdb)
		if parked, _ := rdb.ZRange(ctx, "faas:parked", 0, -1).Result(); !slices.Equal(parked, []string{"a", "b"}) {
			t.Fatalf("parked %v", parked)
		}
		if q, r, err := st.TenantUsage(ctx, "a"); q != 3 || r != 2 || err != nil {
			t.Fatalf("TenantUsage(a) = %d, %d, %v", q, r, err)
		}
		// A completion frees a slot of its own tenant only.
		cs := map[string]store.Claim{}
		for _, id := range []string{"a-0", "a-1", "b-0", "b-1"} {
			task, _ := st.GetTask(ctx, id)
			cs[id] = store.Claim{TaskID: id, Owner: task.Owner, Fence: task.Fence}
		}
		if ok, err := st.Complete(ctx, cs["a-0"].Ref(), completed("gAQu")); !ok || err != nil {
			t.Fatalf("Complete: %v %v", ok, err)
		}
		if got := claimN(t, st, 10); !slices.Equal(got, []string{"a-2"}) {
			t.Fatalf("after a's completion, claimed %v, want [a-2]", got)
		}
		// A release gives b's task back as b's next, and b's slot with it.
		if err := st.Release(ctx, cs["b-0"].Ref()); err != nil {
			t.Fatal(err)
		}
		if got := claimN(t, st, 10); !slices.Equal(got, []string{"b-0"}) {
			t.Fatalf("after b's release, claimed %v, want [b-0]", got)
		}
		// Cancelling a running task frees its slot.
		if c, err := st.Cancel(ctx, "a-1"); err != nil || !c.Cancelled {
			t.Fatalf("Cancel: %+v %v", c, err)
		}
		if got := claimN(t, st, 10); !slices.Equal(got, []string{"a-3"}) {
			t.Fatalf("after a's cancel, claimed %v, want [a-3]", got)
		}
		checkRunning(t, rdb)
		// Requeued tasks (worker lost) free their slots and run next.
		task, _ := st.GetTask(ctx, "a-2")
		requeued, _, err := st.Requeue(ctx, []store.Ref{{TaskID: "a-2", Owner: task.Owner, Fence: task.Fence}})
		if err != nil || !slices.Equal(requeued, []string{"a-2"}) {
			t.Fatalf("Requeue = %v, %v", requeued, err)
		}
		if got := claimN(t, st, 10); !slices.Equal(got, []string{"a-2"}) {
			t.Fatalf("after the requeue, claimed %v, want [a-2]", got)
		}
		checkRunning(t, rdb)
		// Expired leases free their slots too.
		if _, _, err := st.ReapExpired(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if n, _ := rdb.HLen(ctx, "faas:running").Result(); n != 0 {
			t.Fatalf("running counts left after every lease expired: %v", rdb.HGetAll(ctx, "faas:running").Val())
		}
		if got := claimN(t, st, 10); len(got) != 4 {
			t.Fatalf("after the reap, claimed %v, want 2 + 2", got)
		}
		checkRunning(t, rdb)
	})
}

// A tenant parked by a dispatcher with a small cap is served by one
// without a cap after the next reap (caps raised, or dispatchers that
// disagree).
func TestParkedTenantsComeBackAtReap(t *testing.T) {
	eachBackend(t, store.Options{MaxRunning: 1}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueFor(t, st, "a", 3)
		if got := claimN(t, st, 10); !slices.Equal(got, []string{"a-0"}) {
			t.Fatalf("claimed %v", got)
		}
		uncapped := store.New(rdb, store.Options{})
		if got := claimN(t, uncapped, 10); len(got) != 0 {
			t.Fatalf("claimed %v from a parked tenant before a reap", got)
		}
		if _, _, err := uncapped.ReapExpired(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := claimN(t, uncapped, 10); !slices.Equal(got, []string{"a-1", "a-2"}) {
			t.Fatalf("claimed %v after the reap, want [a-1 a-2]", got)
		}
		checkRunning(t, rdb)
	})
}

func TestQueuedCap(t *testing.T) {
	eachBackend(t, store.Options{MaxQueued: 3}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueFor(t, st, "a", 2)
		tmpl := newTask("")
		tmpl.Owner = "a"
		err := st.EnqueueBatch(ctx, tmpl, []string{"x1", "x2"}, []string{paramPayload, paramPayload})
		var qf *store.QueueFullError
		if !errors.Is(err, store.ErrQueueFull) || !errors.As(err, &qf) || qf.Queued != 2 || qf.Adding != 2 || qf.Limit != 3 {
			t.Fatalf("EnqueueBatch over the cap: %v (%+v)", err, qf)
		}
		for _, id := range []string{"x1", "x2"} {
			if n, _ := rdb.Exists(ctx, id).Result(); n != 0 {
				t.Fatalf("task %s was created by a refused batch", id)
			}
		}
		if stats, _ := st.Stats(ctx); stats.Submitted != 2 || stats.Queued != 2 {
			t.Fatalf("stats after a refused batch: %+v", stats)
		}
		// Other tenants have their own cap.
		enqueueFor(t, st, "b", 3)
		task := newTask("b-extra")
		task.Owner = "b"
		if err := st.Enqueue(ctx, task); !errors.Is(err, store.ErrQueueFull) {
			t.Fatalf("Enqueue over b's cap: %v", err)
		}
		// Claiming makes room.
		claimN(t, st, 2) // a-0, b-0
		if err := st.EnqueueBatch(ctx, tmpl, []string{"x1", "x2"}, []string{paramPayload, paramPayload}); err != nil {
			t.Fatalf("EnqueueBatch within the cap: %v", err)
		}
		if n, _ := rdb.LLen(ctx, "faas:queue:a").Result(); n != 3 {
			t.Fatalf("a's queue has %d ids", n)
		}
	})
}

// Requeue, Release and ReapExpired put a task back at the consumer end of
// its own tenant's queue.
func TestRequeueIntoItsTenantsQueue(t *testing.T) {
	eachBackend(t, store.Options{MaxAttempts: 5}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueFor(t, st, "a", 3)
		enqueueFor(t, st, "b", 3)
		enqueueFor(t, st, "", 2)
		next := func(q string) string {
			ids, _ := rdb.LRange(ctx, q, -1, -1).Result()
			if len(ids) == 0 {
				return ""
			}
			// A requeued or released entry is marked for a size check.
			return strings.TrimPrefix(ids[0], "~")
		}
		ref := func(id string) store.Ref {
			task, _ := st.GetTask(ctx, id)
			return store.Ref{TaskID: id, Owner: task.Owner, Fence: task.Fence}
		}
		if got := claimN(t, st, 3); !slices.Equal(got, []string{"a-0", "b-0", "def-0"}) {
			t.Fatalf("claimed %v", got)
		}
		if requeued, _, err := st.Requeue(ctx, []store.Ref{ref("b-0")}); err != nil || len(requeued) != 1 {
			t.Fatalf("Requeue: %v %v", requeued, err)
		}
		if err := st.Release(ctx, ref("a-0")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.ReapExpired(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		for q, want := range map[string]string{"faas:queue:a": "a-0", "faas:queue:b": "b-0", "faas:queue": "def-0"} {
			if got := next(q); got != want {
				t.Fatalf("next of %s is %q, want %q", q, got, want)
			}
			ids, _ := rdb.LRange(ctx, q, 0, -1).Result()
			for _, id := range ids {
				owner, _ := rdb.HGet(ctx, strings.TrimPrefix(id, "~"), "owner").Result()
				if want := queueOf(owner); want != q {
					t.Fatalf("%s holds %s of tenant %q", q, id, owner)
				}
			}
		}
		checkRunning(t, rdb)
		if got := claimN(t, st, 3); !slices.Equal(got, []string{"a-0", "b-0", "def-0"}) {
			t.Fatalf("claimed %v after putting them back", got)
		}
		checkRunning(t, rdb)
	})
}

func TestCancelAs(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueFor(t, st, "a", 1)
		enqueueFor(t, st, "", 1)
		for _, c := range []struct{ tenant, id string }{{"b", "a-0"}, {"", "a-0"}, {"a", "def-0"}, {"a", "nope"}} {
			if _, err := st.CancelAs(ctx, c.tenant, c.id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("CancelAs(%q, %s): %v, want ErrNotFound", c.tenant, c.id, err)
			}
		}
		mustStatus(t, st, "a-0", faastype.Queued)
		mustStatus(t, st, "def-0", faastype.Queued)
		if c, err := st.CancelAs(ctx, "a", "a-0"); err != nil || !c.Cancelled {
			t.Fatalf("CancelAs(a, a-0): %+v %v", c, err)
		}
		if c, err := st.CancelAs(ctx, "", "def-0"); err != nil || !c.Cancelled {
			t.Fatalf("CancelAs('', def-0): %+v %v", c, err)
		}
		// Their queues are empty: no tenant is left in turn.
		if n, _ := rdb.ZCard(ctx, "faas:ring").Result(); n != 0 {
			t.Fatalf("the ring still has %v", rdb.ZRange(ctx, "faas:ring", 0, -1).Val())
		}
		if n, _ := st.QueueDepth(ctx); n != 0 {
			t.Fatalf("QueueDepth = %d", n)
		}
	})
}

// Ids pushed on the default queue by something that keeps no ring (an
// older version) are claimed after the next reap (dispatchers reap every
// few seconds).
func TestClaimServesALegacyQueue(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		enqueueFor(t, st, "", 2)
		if err := rdb.Del(ctx, "faas:ring").Err(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.ReapExpired(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := claimN(t, st, 5); !slices.Equal(got, []string{"def-0", "def-1"}) {
			t.Fatalf("claimed %v", got)
		}
	})
}

// Many claimers, many tenants, a running cap, tasks completed as soon as
// they are claimed: no task is claimed twice, every task is claimed, and a
// tenant never has more than its cap leased.
func TestConcurrentClaimersWithTenants(t *testing.T) {
	const claimers, tenants, perTenant, maxRunning = 6, 5, 120, 3
	eachBackend(t, store.Options{MaxRunning: maxRunning}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		var all []string
		for i := range tenants {
			tenant := fmt.Sprintf("t%d", i)
			if i == 0 {
				tenant = ""
			}
			ids := make([]string, perTenant)
			params := make([]string, perTenant)
			for j := range ids {
				ids[j] = fmt.Sprintf("%s-%d", tenantLabel(tenant), j)
				params[j] = paramPayload
			}
			tmpl := newTask("")
			tmpl.Owner = tenant
			if err := st.EnqueueBatch(ctx, tmpl, ids, params); err != nil {
				t.Fatal(err)
			}
			all = append(all, ids...)
		}
		var over atomic.Value
		stopWatch := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for {
				select {
				case <-stopWatch:
					return
				default:
				}
				time.Sleep(200 * time.Microsecond)
				counts, err := rdb.HGetAll(context.Background(), "faas:running").Result()
				if err != nil {
					continue
				}
				for tenant, v := range counts {
					if n, _ := strconv.Atoi(v); n > maxRunning {
						over.Store(fmt.Sprintf("tenant %q had %d tasks running", tenant, n))
					}
				}
			}
		}()
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		errs := make(chan error, claimers)
		for w := range claimers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				idle := 0
				for idle < 20 {
					cs, err := st.Claim(ctx, fmt.Sprintf("w%d", w), 1+w%3, time.Minute)
					if err != nil {
						errs <- err
						return
					}
					if len(cs) == 0 {
						idle++
						time.Sleep(time.Millisecond)
						continue
					}
					idle = 0
					for _, c := range cs {
						mu.Lock()
						seen[c.TaskID]++
						mu.Unlock()
						if ok, err := st.Complete(ctx, c.Ref(), store.Outcome{Status: faastype.Completed, Result: "gAQu"}); !ok || err != nil {
							errs <- fmt.Errorf("Complete %s: %v %v", c.TaskID, ok, err)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(stopWatch)
		<-watched
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if v := over.Load(); v != nil {
			t.Fatal(v)
		}
		for _, id := range all {
			if seen[id] != 1 {
				t.Errorf("task %s claimed %d times", id, seen[id])
			}
		}
		checkRunning(t, rdb)
		if n, _ := st.QueueDepth(ctx); n != 0 {
			t.Fatalf("QueueDepth = %d", n)
		}
		stats, _ := st.Stats(ctx)
		if stats.Finished[faastype.Completed] != int64(len(all)) || stats.Running != 0 || stats.Queued != 0 {
			t.Fatalf("stats %+v", stats)
		}
	})
}

// A completion and the claim that goes with it keep the running counts in
// step with the leases whichever tenants they serve: the completed task's
// tenant again (the counts cancel out and are not written), another
// tenant, none (an empty queue), a stale outcome, and with a running cap
// (counted at once, as the cap needs).
func TestCompleteAndClaimKeepsRunningCounts(t *testing.T) {
	for _, maxRunning := range []int{0, 3} {
		t.Run(fmt.Sprintf("max-running=%d", maxRunning), func(t *testing.T) {
			eachBackend(t, store.Options{MaxRunning: maxRunning}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
				ctx := testCtx(t)
				for _, tenant := range []string{"alice", "bob"} {
					tmpl := newTask("")
					tmpl.Owner = tenant
					ids := []string{tenant + "-1", tenant + "-2", tenant + "-3"}
					if err := st.EnqueueBatch(ctx, tmpl, ids, []string{paramPayload, paramPayload, paramPayload}); err != nil {
						t.Fatal(err)
					}
				}
				held, err := st.Claim(ctx, "w", 1, time.Minute)
				if err != nil || len(held) != 1 {
					t.Fatalf("Claim = %v %v", claimIDs(held), err)
				}
				checkRunning(t, rdb)
				done := store.Outcome{Status: faastype.Completed, Result: "gAROLg=="}
				for steps := 0; len(held) > 0; steps++ {
					c := held[0]
					ok, next, err := st.CompleteAndClaim(ctx, c.Ref(), done, "w", 1+steps%2, time.Minute)
					if err != nil || !ok {
						t.Fatalf("step %d: CompleteAndClaim(%s) = %v %v", steps, c.TaskID, ok, err)
					}
					checkRunning(t, rdb)
					// The same outcome again is stale: nothing changes but the claim.
					ok, more, err := st.CompleteAndClaim(ctx, c.Ref(), done, "w", 0, time.Minute)
					if err != nil || ok || len(more) != 0 {
						t.Fatalf("step %d: stale CompleteAndClaim = %v %v %v", steps, ok, claimIDs(more), err)
					}
					checkRunning(t, rdb)
					held = append(held[1:], next...)
				}
				if n, _ := rdb.HLen(ctx, "faas:running").Result(); n != 0 {
					t.Fatalf("running counts left with nothing leased: %v", rdb.HGetAll(ctx, "faas:running").Val())
				}
			})
		})
	}
}
