package api

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/store"
)

// GET /result of a task this API created is answered from its done
// message: waited for without a read first, and once final served from
// memory for a few seconds, even with Redis gone. A task another API
// created reads Redis as always.
func TestResultFromTheDoneMessage(t *testing.T) {
	eachBackend(t, Options{}, func(t *testing.T, e *env) {
		other := newEnv(t, e.rdb, Options{}) // a second API on the same Redis
		fn := e.register(pyfixture.Fixture(t, "math_sqrt"))
		args := pyfixture.Fixture(t, "args_simple")
		<-e.h.waiter.Ready()
		<-other.h.waiter.Ready()
		id := e.execute(fn, args)
		got := make(chan response, 1)
		go func() { got <- e.do("GET", "/result/"+id+"?wait=10s", nil) }()
		time.Sleep(50 * time.Millisecond) // let it wait
		completeNext(t, e.st, id, store.Outcome{Status: faastype.Completed, Result: "gANLKi4="})
		var r response
		select {
		case r = <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("the long-poll did not end at the completion")
		}
		if r.status != 200 || r.str("status") != "COMPLETED" || r.str("result") != "gANLKi4=" {
			t.Fatalf("long-poll: %d %s", r.status, r.raw)
		}
		if r2 := other.do("GET", "/result/"+id, nil); r2.status != 200 || r2.str("result") != "gANLKi4=" {
			t.Fatalf("the other API: %d %s", r2.status, r2.raw)
		}
		if _, ok := other.h.waiter.Final(id); ok {
			t.Fatal("an API that did not create the task kept its result")
		}
		if err := e.rdb.Close(); err != nil {
			t.Fatal(err)
		}
		if r := e.do("GET", "/result/"+id, nil); r.status != 200 || r.str("status") != "COMPLETED" || r.str("result") != "gANLKi4=" {
			t.Fatalf("from memory with Redis gone: %d %s", r.status, r.raw)
		}
		if r := e.do("GET", "/result/"+uuid.NewString(), nil); r.status != 503 {
			t.Fatalf("an unknown task with Redis gone: %d %s", r.status, r.raw)
		}
	})
}
