package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/taskview"
)

// handle adapts a handler that returns an error: an *httpError becomes its
// status and detail, anything else is logged and answered with 503 (the
// store is the only thing that fails at run time).
func (h *Handler) handle(fn func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := fn(w, r)
		if err == nil {
			return
		}
		var he *httpError
		switch {
		case errors.As(err, &he):
			if he.retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(he.retryAfter))
			}
			writeError(w, he.status, he.detail)
		case r.Context().Err() != nil:
			// The client went away; nobody reads an answer.
			writeError(w, http.StatusServiceUnavailable, "request cancelled")
		default:
			h.log.ErrorContext(r.Context(), "api: request failed", "method", r.Method, "path", r.URL.Path,
				"request_id", requestIDFrom(r.Context()), "err", err)
			writeError(w, http.StatusServiceUnavailable, "the task store is unavailable; try again")
		}
	}
}

type registerResponse struct {
	FunctionID string `json:"function_id" doc:"the new function's id (a UUID)"`
}

// registerFunction: {"name": str, "payload": serialize(fn), "isolation"?: "warm"|"fresh"},
// or a portable function as source text: {"name", "source", "entrypoint"?};
// either may bring modules and packages along, as "modules"
// ({"path.py": "source", ...}) and/or "bundle" (base64 zip): readBundle.
func (h *Handler) registerFunction(w http.ResponseWriter, r *http.Request) error {
	m, err := readObject(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	name, _, err := stringField(m, "name", false)
	if err != nil {
		return err
	}
	isoText, _, err := stringField(m, "isolation", true)
	if err != nil {
		return err
	}
	iso, err := faastype.ParseIsolation(isoText)
	if err != nil {
		return errorf(http.StatusUnprocessableEntity, "field %q: %v", "isolation", err)
	}
	f := store.Function{ID: uuid.NewString(), Name: name, Isolation: iso, Owner: tenantOf(r)}
	if f.Retry, _, err = readRetry(m, "retries"); err != nil {
		return err
	}
	if f.Settings, err = h.readSettings(r.Context(), m); err != nil {
		return err
	}
	if f.CallbackURL, _, err = h.readCallbackURL(m); err != nil {
		return err
	}
	bnd, err := h.readBundle(m)
	if err != nil {
		return err
	}
	var bundled []string
	if bnd != nil {
		bundled = bnd.Modules
	}
	var fn []byte // the function pickle
	if _, isSource := m["source"]; isSource {
		if _, both := m["payload"]; both {
			return errorf(http.StatusUnprocessableEntity, `give either "payload" (a dill pickle) or "source" (source text), not both`)
		}
		if f.Source, _, err = stringField(m, "source", false); err != nil {
			return err
		}
		ep, given, err := stringField(m, "entrypoint", true)
		if err != nil {
			return err
		}
		if !given {
			ep = name
		}
		if !pyIdentifier.MatchString(ep) {
			return errorf(http.StatusUnprocessableEntity, "field %q must name a function defined by the source (a Python identifier), not %q",
				"entrypoint", truncate(ep, 100))
		}
		if strings.TrimSpace(f.Source) == "" {
			return errorf(http.StatusUnprocessableEntity, "field %q is empty", "source")
		}
		f.Entrypoint = ep
		fn = pickle.SourcePayload(f.Source, ep, name)
		f.Payload = pickle.EncodeBase64(fn)
	} else {
		payload, _, err := stringField(m, "payload", false)
		if err != nil {
			return withHint(err, ` (or "source" for a function as source text)`)
		}
		if fn, err = pickle.DecodeBase64(payload); err != nil {
			return errorf(http.StatusBadRequest, "payload is not valid base64: %v", err)
		}
		if err := pickle.CheckFunction(fn, bundled...); err != nil {
			return errorf(http.StatusBadRequest, "%v", err)
		}
		f.Payload = payload
	}
	f.Hash = pickle.Hash(fn)
	if bnd != nil {
		// Stored first, so that no function ever names a bundle that is
		// not there; a bundle whose function failed to store is kept, and
		// the next registration with the same content shares it.
		if _, err := h.st.PutBundle(r.Context(), f.Owner, bnd.Hash, bnd.Zip); err != nil {
			return err
		}
		f.Bundle, f.BundleModules = bnd.Hash, bnd.Modules
	}
	if err := h.st.PutFunction(r.Context(), f); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, registerResponse{FunctionID: f.ID})
	return nil
}

// pyIdentifier is an ASCII Python identifier (entrypoints of source functions).
var pyIdentifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

type executeResponse struct {
	TaskID string `json:"task_id" doc:"the new task's id (a UUID); the task is QUEUED"`
}

// executeFunction: {"function_id": uuid, "payload": serialize((args, kwargs))},
// or with JSON arguments {"function_id", "args"?: [...], "kwargs"?: {...}}, in
// which case the result comes back as JSON too.
func (h *Handler) executeFunction(w http.ResponseWriter, r *http.Request) error {
	m, err := readObject(w, r, h.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	fnText, _, err := stringField(m, "function_id", false)
	if err != nil {
		return err
	}
	payload, jsonCall, err := callArguments(m, false)
	if err != nil {
		return err
	}
	fnID, err := parseID("function_id", fnText)
	if err != nil {
		return err
	}
	f, err := h.getFunction(r, fnID)
	if err != nil {
		return err
	}
	if !jsonCall {
		if err := checkArgsPayload(payload, f.BundleModules); err != nil {
			return err
		}
	}
	opts, err := h.readCallOptions(m, f, time.Now())
	if err != nil {
		return err
	}
	t := store.Task{
		ID:           uuid.NewString(),
		FunctionID:   f.ID,
		FnPayload:    f.Payload,
		ParamPayload: payload,
		FnHash:       f.Hash,
		Isolation:    f.Isolation,
		WantJSON:     jsonCall,
		Owner:        f.Owner,
		Bundle:       f.Bundle,
	}
	opts.apply(&t)
	// Expected before it exists: its done message may come before Enqueue
	// returns.
	h.waiter.Expect(t.ID, t.Owner)
	if err := h.st.Enqueue(r.Context(), t); err != nil {
		h.waiter.Forget(t.ID)
		return enqueueError(err)
	}
	writeJSON(w, http.StatusOK, executeResponse{TaskID: t.ID})
	return nil
}

// callArguments reads a call's arguments: "payload" (a base64 dill
// pickle of (args, kwargs), returned as given, unchecked) or "args" and/or
// "kwargs" (JSON, returned as the pickle that loads them; jsonCall true),
// not both. With neither, jsonByDefault makes it a JSON call without
// arguments; otherwise "payload" is required.
func callArguments(m map[string]json.RawMessage, jsonByDefault bool) (payload string, jsonCall bool, err error) {
	rawArgs, hasArgs := m["args"]
	rawKwargs, hasKwargs := m["kwargs"]
	_, hasPayload := m["payload"]
	if hasPayload && (hasArgs || hasKwargs) {
		return "", false, errorf(http.StatusUnprocessableEntity, `give either "payload" (a dill pickle) or "args"/"kwargs" (JSON), not both`)
	}
	if hasArgs || hasKwargs || (!hasPayload && jsonByDefault) {
		text, err := jsonArguments(rawArgs, rawKwargs)
		if err != nil {
			return "", false, err
		}
		return pickle.EncodeBase64(pickle.JSONArgsPayload(text)), true, nil
	}
	if payload, _, err = stringField(m, "payload", false); err != nil {
		return "", false, withHint(err, ` (or "args"/"kwargs" for JSON arguments)`)
	}
	return payload, false, nil
}

// checkArgsPayload checks a base64 serialize((args, kwargs)) without
// unpickling it (pickle.CheckArgs), accepting references into the
// function's bundle (bundled: its top-level modules); the error is the 400
// answer.
func checkArgsPayload(payload string, bundled []string) error {
	args, err := pickle.DecodeBase64(payload)
	if err != nil {
		return errorf(http.StatusBadRequest, "payload is not valid base64: %v", err)
	}
	if err := pickle.CheckArgs(args, bundled...); err != nil {
		return errorf(http.StatusBadRequest, "%v", err)
	}
	return nil
}

// jsonArguments checks "args" (an array) and "kwargs" (an object), either
// may be absent or null, and returns {"args": ..., "kwargs": ...} as text.
func jsonArguments(args, kwargs json.RawMessage) (string, error) {
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("[]")
	}
	if len(kwargs) == 0 || string(kwargs) == "null" {
		kwargs = json.RawMessage("{}")
	}
	if args[0] != '[' {
		return "", errorf(http.StatusUnprocessableEntity, "field %q must be a JSON array", "args")
	}
	if kwargs[0] != '{' {
		return "", errorf(http.StatusUnprocessableEntity, "field %q must be a JSON object", "kwargs")
	}
	b, err := json.Marshal(struct {
		Args   json.RawMessage `json:"args"`
		Kwargs json.RawMessage `json:"kwargs"`
	}{args, kwargs})
	if err != nil {
		return "", errorf(http.StatusUnprocessableEntity, "arguments: %v", err)
	}
	return string(b), nil
}

type statusResponse struct {
	TaskID string          `json:"task_id"`
	Status faastype.Status `json:"status" enum:"QUEUED,RUNNING,COMPLETED,FAILED"`
	// RunAt and NextAttemptAt are absent unless set.
	RunAt         *time.Time `json:"run_at,omitempty" doc:"when a delayed task is (or was) due to start; absent for a task run at once"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty" doc:"for a RUNNING task whose last attempt failed and that its retry policy runs again: when the next attempt is due"`
}

// optTime is t in UTC, or nil for the zero time.
func optTime(t time.Time) *time.Time { return taskview.OptTime(t) }

func (h *Handler) status(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("task_id", chi.URLParam(r, "task_id"))
	if err != nil {
		return err
	}
	ts, err := h.st.TaskStatus(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && ts.Owner != tenantOf(r)) {
		return errorf(http.StatusNotFound, "task %s not found", id)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, statusResponse{TaskID: id, Status: ts.Status,
		RunAt: optTime(ts.RunAt), NextAttemptAt: optTime(ts.NextAttemptAt)})
	return nil
}

// resultResponse is the body of GET /result (taskview, which the
// webhooks share).
type resultResponse = taskview.Result

func (h *Handler) result(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("task_id", chi.URLParam(r, "task_id"))
	if err != nil {
		return err
	}
	wait, err := parseWait(r.URL.Query()["wait"], h.opts.MaxWait)
	if err != nil {
		return err
	}
	t, err := h.waitFinal(r.Context(), tenantOf(r), id, wait)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "task %s not found", id)
	}
	if err != nil {
		return err
	}
	resp := taskview.ResultOf(t)
	resp.TaskID = id
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// resultOf is the answer of GET /result for t.
func resultOf(t store.Task) resultResponse { return taskview.ResultOf(t) }

// parseWait reads ?wait=: a Go duration ("5s", "1m") or a number of seconds
// ("5", "0.5"), capped at max.
func parseWait(vals []string, max time.Duration) (time.Duration, error) {
	if len(vals) == 0 || vals[len(vals)-1] == "" {
		return 0, nil
	}
	v := vals[len(vals)-1]
	bad := errorf(http.StatusBadRequest,
		"wait must be a duration such as \"5s\" or a number of seconds such as \"5\", not %q", truncate(v, 40))
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0 {
			return 0, bad
		}
		if secs >= max.Seconds() {
			return max, nil
		}
		d = time.Duration(secs * float64(time.Second))
	} else if d, err = time.ParseDuration(v); err != nil || d < 0 {
		return 0, bad
	}
	return min(d, max), nil
}

// getFunction loads a function of the request's tenant: another tenant's
// is a 404, exactly as an unknown one.
func (h *Handler) getFunction(r *http.Request, id string) (store.Function, error) {
	f, ok := h.fns.get(id)
	var err error
	if !ok {
		if f, err = h.st.GetFunction(r.Context(), id); err == nil {
			h.fns.put(f)
		}
	}
	if errors.Is(err, store.ErrNotFound) || (err == nil && f.Owner != tenantOf(r)) {
		return store.Function{}, errorf(http.StatusNotFound, "function %s not found", id)
	}
	return f, err
}

// enqueueError maps a failed Enqueue: a full queue is the tenant's quota,
// 429 with a Retry-After.
func enqueueError(err error) error {
	var full *store.QueueFullError
	if errors.As(err, &full) {
		he := errorf(http.StatusTooManyRequests, "too many queued tasks: %d are queued and %d more would pass the limit of %d "+
			"queued tasks per tenant; wait for some to start", full.Queued, full.Adding, full.Limit)
		he.retryAfter = queueFullRetryAfter
		return he
	}
	return err
}

// queueFullRetryAfter is the Retry-After of a 429 for a full queue: a guess,
// since the queue drains as fast as the dispatchers run the tasks.
const queueFullRetryAfter = 5

// readTask reads a task of tenant (without payloads); another tenant's is
// store.ErrNotFound, exactly as an unknown one.
func (h *Handler) readTask(ctx context.Context, tenant, id string) (store.Task, error) {
	t, err := h.st.GetTaskSummary(ctx, id)
	if err == nil && t.Owner != tenant {
		return store.Task{}, store.ErrNotFound
	}
	return t, err
}

// waitFinal reads the task of tenant, waiting up to wait for it to become
// final. It subscribes before each read, so no completion slips between the
// two, and reads again only when woken: no polling. A task this process
// created is usually answered from its done message (store.Waiter.Expect):
// not read at all when final, not read before waiting when not.
func (h *Handler) waitFinal(ctx context.Context, tenant, id string, wait time.Duration) (store.Task, error) {
	if t, ok := h.waiter.Final(id); ok {
		if t.Owner != tenant {
			return store.Task{}, store.ErrNotFound
		}
		return t, nil
	}
	if wait <= 0 {
		return h.readTask(ctx, tenant, id)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	draining := drainingFrom(ctx)
	owner, expected := h.waiter.Expecting(id)
	expected = expected && owner == tenant
	for {
		woken, stop := h.waiter.WaitTask(id)
		var t store.Task
		var err error
		if expected {
			// Not final when Final looked, and its done message not in
			// since (Expecting is checked after registering).
			if _, still := h.waiter.Expecting(id); still {
				t = store.Task{ID: id, Status: faastype.Queued, Owner: owner}
			} else if t, expected = h.waiter.Final(id); !expected {
				t, err = h.readTask(ctx, tenant, id)
			}
		} else {
			t, err = h.readTask(ctx, tenant, id)
		}
		if err != nil || t.Status.Final() {
			stop()
			return t, err
		}
		select {
		case <-woken.C:
			// The done message usually carries the final task: no read back.
			if t, ok := woken.Task(); ok {
				if t.Owner != tenant {
					return store.Task{}, store.ErrNotFound
				}
				return t, nil
			}
			expected = false
			continue
		case <-timer.C:
		case <-draining:
		case <-ctx.Done():
		}
		stop()
		if expected {
			// Waited it out without a read: say where it is now.
			return h.readTask(context.WithoutCancel(ctx), tenant, id)
		}
		return t, nil
	}
}

type healthResponse struct {
	Status string `json:"status" enum:"ok,unavailable"`
	Detail string `json:"detail,omitempty" doc:"why it is unavailable"`
}

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := h.st.Ping(ctx); err != nil {
		h.log.WarnContext(r.Context(), "api: health check failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, healthResponse{Status: "unavailable", Detail: "redis does not answer"})
		return
	}
	writeJSON(w, http.StatusOK, healthResponse{Status: "ok"})
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("no route for %s %s", r.Method, truncate(r.URL.Path, 200)))
}

// methodNotAllowed answers 405 with the Allow header chi leaves out when
// the handler is custom.
func (h *Handler) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions} {
		if h.mux.Match(chi.NewRouteContext(), m, r.URL.Path) {
			allowed = append(allowed, m)
		}
	}
	for _, m := range allowed {
		w.Header().Add("Allow", m)
	}
	writeError(w, http.StatusMethodNotAllowed,
		fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, truncate(r.URL.Path, 200), strings.Join(allowed, ", ")))
}
