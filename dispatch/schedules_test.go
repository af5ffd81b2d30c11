package dispatch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/schedule"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// Three dispatchers' schedule loops fire a schedule created after they
// started (woken by its announcement, not their poll of an hour) at every
// tick, once; one of them stopped in the middle changes nothing.
func TestScheduleLoopsFireEachTickOnce(t *testing.T) {
	st := store.New(redistest.StartMini(t), store.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	stops := make([]context.CancelFunc, 3)
	for i := range stops {
		c, err := NewCore(Config{Store: st, Poll: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		cctx, stop := context.WithCancel(ctx)
		stops[i] = stop
		if err := c.Start(cctx, &wg); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // the subscriptions are up
	f := store.Function{ID: "fn", Name: "f", Payload: pickle.EncodeBase64([]byte("f"))}
	if err := st.PutFunction(ctx, f); err != nil {
		t.Fatal(err)
	}
	created := time.Now()
	sc := store.Schedule{ID: "s", FunctionID: "fn", ParamPayload: "x", Every: time.Second, Missed: schedule.RunOnce, CreatedAt: created}
	if err := st.PutSchedule(ctx, sc); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	stops[0]() // one dispatcher goes away between ticks 2 and 3
	time.Sleep(2 * time.Second)
	got, err := st.GetSchedule(ctx, "", "s")
	if err != nil {
		t.Fatal(err)
	}
	// Ticks 1..4 are past, the 5th is at 5 s.
	if got.TasksCreated != 4 || got.TicksMissed != 0 || !got.NextTick.Equal(time.UnixMilli(created.UnixMilli()).Add(5*time.Second)) {
		t.Fatalf("created %d, missed %d, next %v", got.TasksCreated, got.TicksMissed, got.NextTick)
	}
	cs, err := st.Claim(ctx, "w", 10, time.Minute)
	if err != nil || len(cs) != 4 {
		t.Fatalf("claimed %d tasks (%v), want 4", len(cs), err)
	}
}
