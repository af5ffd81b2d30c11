// Package storetest holds the test helpers of the packages that run tasks
// through a store: enqueue a task, wait until tasks are final.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/store"
)

// Enqueue queues a task of fn and args (base64 payloads) under a new task
// id and a new function id, and returns the task id.
func Enqueue(t testing.TB, st *store.Store, fn, args string) string {
	t.Helper()
	id := uuid.NewString()
	hash, _ := pickle.HashBase64(fn) // a test worker's payloads need not be base64
	if err := st.Enqueue(context.Background(), store.Task{ID: id, FunctionID: uuid.NewString(), FnPayload: fn, ParamPayload: args, FnHash: hash}); err != nil {
		t.Fatalf("storetest: enqueue: %v", err)
	}
	return id
}

// WaitFinal polls until every task of ids is COMPLETED or FAILED and
// returns them by id; the test fails if that takes longer than within.
func WaitFinal(t testing.TB, st *store.Store, ids []string, within time.Duration) map[string]store.Task {
	t.Helper()
	deadline := time.Now().Add(within)
	out := make(map[string]store.Task, len(ids))
	for len(out) < len(ids) {
		if time.Now().After(deadline) {
			t.Fatalf("storetest: only %d of %d tasks final after %s", len(out), len(ids), within)
		}
		for _, id := range ids {
			if _, ok := out[id]; ok {
				continue
			}
			task, err := st.GetTask(context.Background(), id)
			if err == nil && task.Status.Final() {
				out[id] = task
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return out
}
