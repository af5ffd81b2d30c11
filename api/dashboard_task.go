package api

import (
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/store"
)

// The dashboard's task page (the #/task/<id> view of GET /) reads
// GET /dashboard/task/{task_id}: GET /result's answer, plus what the page
// shows besides (the function, the worker) and the result as text.

type resultPreview struct {
	Text      string `json:"text" doc:"repr() of the value for plain data (None, bool, int, float, str, bytes, and tuples, lists, dicts, sets of those) and built-in exceptions; otherwise what the pickle holds (\"a pickled function\"), or why it is not a valid pickle"`
	Literal   bool   `json:"literal" doc:"text is repr() of the value"`
	Truncated bool   `json:"truncated" doc:"text was cut"`
	Bytes     int    `json:"bytes" doc:"the size of the pickle"`
}

type dashTaskDetail struct {
	Task          resultResponse `json:"task" doc:"the task as GET /result/{task_id} answers"`
	FunctionID    string         `json:"function_id"`
	FunctionName  string         `json:"function_name" doc:"empty if the function is not known"`
	Worker        string         `json:"worker" doc:"the dispatcher or worker of the latest claim"`
	ResultPreview *resultPreview `json:"result_preview" doc:"the result pickle as text, made on the server from its opcodes without unpickling it; null until the task is final"`
}

// Results larger than this are not described; the text is cut at
// previewText bytes.
const (
	maxPreviewPickle = 4 << 20
	previewText      = 8 << 10
)

// dashboardTask: GET /dashboard/task/{task_id}, one task for the task page.
func (h *Handler) dashboardTask(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("task_id", chi.URLParam(r, "task_id"))
	if err != nil {
		return err
	}
	t, err := h.readTask(r.Context(), tenantOf(r), id)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "task %s not found", id)
	}
	if err != nil {
		return err
	}
	d := dashTaskDetail{Task: resultOf(t), FunctionID: t.FunctionID, Worker: t.Worker}
	if t.FunctionID != "" {
		f, err := h.getFunction(r, t.FunctionID)
		var he *httpError
		switch {
		case err == nil:
			d.FunctionName = f.Name
		case !errors.As(err, &he): // a function that is gone has no name
			return err
		}
	}
	if t.Status.Final() {
		d.ResultPreview = previewOf(t.Result)
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

// previewOf describes a base64 result pickle without unpickling it.
func previewOf(b64 string) *resultPreview {
	b, err := pickle.DecodeBase64(b64)
	switch {
	case err != nil:
		return &resultPreview{Text: "not base64: " + err.Error()}
	case len(b) > maxPreviewPickle:
		return &resultPreview{Text: "a pickle too large to describe here", Bytes: len(b)}
	}
	desc := pickle.Describe(b, previewText)
	return &resultPreview{Text: desc.Text, Literal: desc.Literal, Truncated: desc.Truncated, Bytes: len(b)}
}
