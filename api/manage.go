package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/store"
)

type batchResponse struct {
	TaskIDs []string `json:"task_ids" doc:"one task id per call, in the order of the calls"`
}

// executeBatch: POST /execute_batch, many calls of one function in one
// request: {"function_id", "payloads": [serialize((args, kwargs)), ...]} or
// {"function_id", "calls": [{"args"?: [...], "kwargs"?: {...}}, ...]} (JSON
// arguments, JSON results too). Every call is checked as POST
// /execute_function checks its one, the errors naming the call's index;
// the tasks are created by one script, all or none, in order.
func (h *Handler) executeBatch(w http.ResponseWriter, r *http.Request) error {
	m, err := readObject(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	fnText, _, err := stringField(m, "function_id", false)
	if err != nil {
		return err
	}
	rawPayloads, hasPayloads := m["payloads"]
	rawCalls, hasCalls := m["calls"]
	field, raw := "payloads", rawPayloads
	switch {
	case hasPayloads && hasCalls:
		return errorf(http.StatusUnprocessableEntity, `give either "payloads" (dill pickles) or "calls" (JSON arguments), not both`)
	case hasCalls:
		field, raw = "calls", rawCalls
	case !hasPayloads:
		return errorf(http.StatusUnprocessableEntity, `field "payloads" (a list of dill pickles) or "calls" (a list of JSON arguments) is required`)
	}
	var items []json.RawMessage
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '[' {
		return errorf(http.StatusUnprocessableEntity, "field %q must be a JSON array", field)
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return errorf(http.StatusUnprocessableEntity, "field %q: %v", field, err)
	}
	if len(items) == 0 {
		return errorf(http.StatusUnprocessableEntity, "field %q is empty: a batch needs at least one call", field)
	}
	if len(items) > h.opts.MaxBatch {
		return errorf(http.StatusRequestEntityTooLarge, "a batch of %d calls is over the limit of %d calls per request; split it",
			len(items), h.opts.MaxBatch)
	}
	fnID, err := parseID("function_id", fnText)
	if err != nil {
		return err
	}
	f, err := h.getFunction(r, fnID)
	if err != nil {
		return err
	}
	params := make([]string, len(items))
	for i, it := range items {
		if hasCalls {
			params[i], err = callPayload(it)
		} else {
			params[i], err = picklePayload(it, f.BundleModules)
		}
		var he *httpError
		if errors.As(err, &he) {
			return errorf(he.status, "%s[%d]: %s", field, i, he.detail)
		}
		if err != nil {
			return err
		}
	}
	ids := make([]string, len(items))
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	opts, err := h.readCallOptions(m, f, time.Now())
	if err != nil {
		return err
	}
	tmpl := store.Task{FunctionID: f.ID, FnPayload: f.Payload, FnHash: f.Hash, Isolation: f.Isolation, WantJSON: hasCalls,
		Owner: f.Owner, Bundle: f.Bundle}
	opts.apply(&tmpl)
	for _, id := range ids { // before they exist: see executeFunction
		h.waiter.Expect(id, tmpl.Owner)
	}
	if err := h.st.EnqueueBatch(r.Context(), tmpl, ids, params); err != nil {
		for _, id := range ids {
			h.waiter.Forget(id)
		}
		return enqueueError(err)
	}
	writeJSON(w, http.StatusOK, batchResponse{TaskIDs: ids})
	return nil
}

// picklePayload checks one item of "payloads" as POST /execute_function
// checks its "payload" and returns it; bundled are the top-level modules
// of the function's bundle.
func picklePayload(raw json.RawMessage, bundled []string) (string, error) {
	var payload string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &payload) != nil {
		return "", errorf(http.StatusUnprocessableEntity, "must be a string (serialize((args, kwargs)))")
	}
	if err := checkArgsPayload(payload, bundled); err != nil {
		return "", err
	}
	return payload, nil
}

// callPayload checks one item of "calls", {"args"?: [...], "kwargs"?: {...}},
// and returns the argument payload the sandbox reads.
func callPayload(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0] != '{' {
		return "", errorf(http.StatusUnprocessableEntity, `must be a JSON object {"args": [...], "kwargs": {...}}`)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", errorf(http.StatusUnprocessableEntity, "%v", err)
	}
	for k := range m {
		if k != "args" && k != "kwargs" {
			return "", errorf(http.StatusUnprocessableEntity, `unknown field %q: a call has only "args" and "kwargs"`, truncate(k, 40))
		}
	}
	text, err := jsonArguments(m["args"], m["kwargs"])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(pickle.JSONArgsPayload(text)), nil
}

type cancelResponse struct {
	TaskID         string          `json:"task_id"`
	Status         faastype.Status `json:"status" doc:"the task's status now: always FAILED (error kind CANCELLED)" enum:"FAILED"`
	PreviousStatus faastype.Status `json:"previous_status" doc:"the status the task had when it was cancelled" enum:"QUEUED,RUNNING"`
}

// cancelTask: DELETE /task/{task_id}. A QUEUED or RUNNING task becomes
// FAILED with kind CANCELLED (the store's script does it, and tells the
// dispatcher that holds a RUNNING one to kill its sandbox); a final task is
// a 409.
func (h *Handler) cancelTask(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("task_id", chi.URLParam(r, "task_id"))
	if err != nil {
		return err
	}
	c, err := h.st.CancelAs(r.Context(), tenantOf(r), id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "task %s not found", id)
	}
	if err != nil {
		return err
	}
	if !c.Cancelled {
		return errorf(http.StatusConflict, "task %s is already %s; only a QUEUED or RUNNING task can be cancelled", id, c.Was)
	}
	writeJSON(w, http.StatusOK, cancelResponse{TaskID: id, Status: faastype.Failed, PreviousStatus: c.Was})
	return nil
}
