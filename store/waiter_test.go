package store_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// again checks that the waiter of id behind ch was not woken, unless by a
// resubscription: then it registers again and returns the new registration.
func again(t *testing.T, w *store.Waiter, id string, wk *store.Wakeup, stop func()) (*store.Wakeup, func()) {
	t.Helper()
	if !isClosed(wk.C) {
		return wk, stop
	}
	stop()
	if !wk.Resubscribed() {
		t.Fatalf("waiter of %s woken before it became final", id)
	}
	t.Logf("the subscription was re-established; waiting for %s again", id)
	return w.WaitTask(id)
}

func TestWaiterWakesOnCompletion(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		ids := enqueueN(t, st, 2)
		w := st.NewWaiter(ctx)
		defer w.Close()
		<-w.Ready()

		w0a, stop0a := w.WaitTask(ids[0])
		w0b, stop0b := w.WaitTask(ids[0]) // two waiters on one task
		w1, stop1 := w.WaitTask(ids[1])
		defer func() { stop0a(); stop0b(); stop1() }()
		if w.Waiting() != 2 {
			t.Fatalf("Waiting = %d, want 2", w.Waiting())
		}
		cs, _ := st.Claim(ctx, "w", 2, time.Minute)
		// A wake-up may come at any time when the subscription is
		// re-established (Waiter's contract: messages may have been lost);
		// then the waiters register again, as a caller would after
		// re-reading the task. Any other wake-up before a completion is a bug.
		w0a, stop0a = again(t, w, ids[0], w0a, stop0a)
		w0b, stop0b = again(t, w, ids[0], w0b, stop0b)
		w1, stop1 = again(t, w, ids[1], w1, stop1)
		if ok, err := st.Complete(ctx, cs[0].Ref(), completed("AAAA")); !ok || err != nil {
			t.Fatalf("Complete = %v, %v", ok, err)
		}
		for _, ch := range []<-chan struct{}{w0a.C, w0b.C} {
			select {
			case <-ch:
			case <-ctx.Done():
				t.Fatal("waiter not woken by Complete")
			}
		}
		// The other task's waiter is still waiting. Its own completion comes
		// later; by then the first wake-up has been fully handled.
		w1, stop1 = again(t, w, ids[1], w1, stop1)
		if ok, _ := st.Complete(ctx, cs[1].Ref(), completed("AAAA")); !ok {
			t.Fatal("Complete failed")
		}
		select {
		case <-w1.C:
		case <-ctx.Done():
			t.Fatal("second waiter not woken")
		}
		if w.Waiting() != 0 {
			t.Fatalf("Waiting = %d after every task finished", w.Waiting())
		}
	})
}

func TestWaiterStopAndClose(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		w := st.NewWaiter(ctx)
		<-w.Ready()
		_, stop := w.Wait("a")
		stop()
		stop() // twice is fine
		if w.Waiting() != 0 {
			t.Fatalf("Waiting = %d after stop", w.Waiting())
		}
		ch, stopB := w.Wait("b")
		defer stopB()
		w.Close()
		if !isClosed(ch) {
			t.Fatal("Close did not wake a waiter")
		}
		after, stopC := w.Wait("c")
		defer stopC()
		if isClosed(after) {
			t.Fatal("Wait after Close returned a closed channel (callers would spin)")
		}
		w.Close() // twice is fine
	})
}

func TestWaiterEndsWithContext(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx, cancel := context.WithCancel(testCtx(t))
		w := st.NewWaiter(ctx)
		<-w.Ready()
		ch, stop := w.Wait("a")
		defer stop()
		cancel()
		select {
		case <-ch:
		case <-testCtx(t).Done():
			t.Fatal("waiter not woken when its context ended")
		}
	})
}

// When the subscription connection is cut, messages may be lost, so every
// waiter is woken once it is back to re-read its task.
func TestWaiterWakesEveryoneAfterReconnect(t *testing.T) {
	rdb := redistest.Start(t) // miniredis cannot kill clients
	st := store.New(rdb, store.Options{})
	ctx := testCtx(t)
	w := st.NewWaiter(ctx)
	defer w.Close()
	<-w.Ready()
	ch, stop := w.Wait("some-task")
	defer stop()
	if isClosed(ch) {
		t.Fatal("woken too early")
	}
	if n, err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil || n != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %d, %v", n, err)
	}
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatal("waiter not woken after the subscription came back")
	}
	// And the subscription works again.
	if err := st.Enqueue(ctx, newTask("t")); err != nil {
		t.Fatal(err)
	}
	ch2, stop2 := w.Wait("t")
	defer stop2()
	if c, err := st.Cancel(ctx, "t"); !c.Cancelled || err != nil {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	select {
	case <-ch2:
	case <-ctx.Done():
		t.Fatal("waiter not woken after reconnect")
	}
}

func TestSubscribeTasks(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		ids, stop := st.SubscribeTasks(ctx)
		want := enqueueN(t, st, 3)
		for _, w := range want {
			select {
			case got := <-ids:
				if got != w {
					t.Fatalf("got %q, want %q", got, w)
				}
			case <-ctx.Done():
				t.Fatalf("%s not published", w)
			}
		}
		stop()
		for range ids { // drains, then ends because stop closed it
		}
	})
}

// When a cancel subscription's connection is cut, go-redis subscribes again
// by itself; the subscriber is told (store.Resubscribed: cancellations may
// have been lost meanwhile) and hears the next cancellation.
func TestSubscribeCancelsSaysWhenItSubscribedAgain(t *testing.T) {
	rdb := redistest.Start(t) // miniredis cannot kill clients
	st := store.New(rdb, store.Options{})
	ctx := testCtx(t)
	ids, stop := st.SubscribeCancels(ctx)
	defer stop()
	if n, err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil || n != 1 {
		t.Fatalf("CLIENT KILL TYPE pubsub = %d, %v", n, err)
	}
	select {
	case got := <-ids:
		if got != store.Resubscribed {
			t.Fatalf("got %q, want the resubscription", got)
		}
	case <-ctx.Done():
		t.Fatal("not told of the resubscription")
	}
	id := enqueueN(t, st, 1)[0]
	claimOne(t, st, id)
	if c, err := st.Cancel(ctx, id); !c.Cancelled || err != nil {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	select {
	case got := <-ids:
		if got != id {
			t.Fatalf("got %q, want %q", got, id)
		}
	case <-ctx.Done():
		t.Fatal("the cancellation after the resubscription was not delivered")
	}
}

// A done message carries a small final task, which the wake-up hands over
// exactly as GetTask would read it; a large one carries only its id.
func TestWakeupCarriesTheFinalTask(t *testing.T) {
	eachBackend(t, store.Options{}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		w := st.NewWaiter(ctx)
		defer w.Close()
		<-w.Ready()
		cases := []struct {
			name   string
			out    store.Outcome
			inline bool
		}{
			{"small", store.Outcome{Status: faastype.Completed, Result: "gAROLg==", Stdout: "hi\n\"quoted\" ünïcode",
				Timings: &faastype.Timings{Run: 0.000123, Total: 0.0005}}, true},
			{"failed", store.Outcome{Status: faastype.Failed, Error: &faastype.TaskError{Kind: faastype.KindUserException,
				Message: "ValueError: no", Traceback: "Traceback ...\n"}}, true},
			{"large", store.Outcome{Status: faastype.Completed, Result: strings.Repeat("QUFB", 2000)}, false},
		}
		for _, c := range cases {
			id := enqueueN(t, st, 1)[0]
			wk, stop := w.WaitTask(id)
			cl := claimOne(t, st, id)
			if ok, err := st.Complete(ctx, cl.Ref(), c.out); !ok || err != nil {
				t.Fatalf("%s: Complete = %v, %v", c.name, ok, err)
			}
			select {
			case <-wk.C:
			case <-ctx.Done():
				t.Fatalf("%s: not woken", c.name)
			}
			stop()
			if wk.Resubscribed() {
				// The subscription came back (a reconnection on a loaded
				// machine): no message to look at this time.
				t.Logf("%s: woken by a resubscription", c.name)
				rdb.Del(ctx, id)
				continue
			}
			got, ok := wk.Task()
			if ok != c.inline {
				t.Fatalf("%s: the message carried the task: %v, want %v", c.name, ok, c.inline)
			}
			if !ok {
				rdb.Del(ctx, id)
				continue
			}
			want, err := st.GetTaskSummary(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: the message says\n%+v\nthe store says\n%+v", c.name, got, want)
			}
			rdb.Del(ctx, id)
		}
	})
}

// The done message of a task this process created (Expect) is kept for a
// while, never longer than a quarter of the result TTL; one of a task it
// did not create is not kept at all.
func TestWaiterKeepsExpectedFinals(t *testing.T) {
	eachBackend(t, store.Options{ResultTTL: 2 * time.Second}, func(t *testing.T, st *store.Store, rdb redis.UniversalClient) {
		ctx := testCtx(t)
		w := st.NewWaiter(ctx)
		defer w.Close()
		<-w.Ready()
		ids := enqueueN(t, st, 2)
		w.Expect(ids[0], "")
		if owner, ok := w.Expecting(ids[0]); !ok || owner != "" {
			t.Fatal("Expecting after Expect:", owner, ok)
		}
		for _, id := range ids {
			wk, stop := w.WaitTask(id)
			cl := claimOne(t, st, id)
			if ok, err := st.Complete(ctx, cl.Ref(), completed("gAROLg==")); !ok || err != nil {
				t.Fatal(ok, err)
			}
			<-wk.C
			stop()
		}
		if _, ok := w.Expecting(ids[0]); ok {
			t.Fatal("still expecting a task whose done message came")
		}
		if got, ok := w.Final(ids[0]); !ok || got.Status != faastype.Completed || got.Result != "gAROLg==" {
			t.Fatalf("Final of an expected task: %+v %v", got, ok)
		}
		if _, ok := w.Final(ids[1]); ok {
			t.Fatal("kept the final of a task this process did not create")
		}
		time.Sleep(600 * time.Millisecond) // over a quarter of the 2 s TTL
		if _, ok := w.Final(ids[0]); ok {
			t.Fatal("kept a final task past a quarter of the result TTL")
		}
	})
}
