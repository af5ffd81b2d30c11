package api

import (
	"net/http"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
)

type tasksResponse struct {
	Tasks []dashTask `json:"tasks" doc:"the caller's newest tasks, newest first"`
}

// taskStatuses are the values ?status= of GET /tasks takes.
var taskStatuses = []faastype.Status{faastype.Queued, faastype.Running, faastype.Completed, faastype.Failed}

// listTasks: GET /tasks[?limit=N][&status=S], the newest tasks of the
// caller's tenant, from the same index the dashboard reads (the last
// store.RecentTasks it submitted, less those removed after the result TTL);
// with status, only those of them in that status.
func (h *Handler) listTasks(w http.ResponseWriter, r *http.Request) error {
	limit, err := recentLimit(r)
	if err != nil {
		return err
	}
	var want faastype.Status
	if v := r.URL.Query().Get("status"); v != "" {
		for _, s := range taskStatuses {
			if v == string(s) {
				want = s
			}
		}
		if want == "" {
			return errorf(http.StatusBadRequest, "status must be QUEUED, RUNNING, COMPLETED or FAILED, not %q", truncate(v, 40))
		}
	}
	read := limit
	if want != "" {
		read = maxRecent // filtered below, then cut to limit
	}
	recent, err := h.st.TenantRecentTasks(r.Context(), tenantOf(r), read)
	if err != nil {
		return err
	}
	now := time.Now()
	resp := tasksResponse{Tasks: make([]dashTask, 0, min(limit, len(recent)))}
	for _, t := range recent {
		if len(resp.Tasks) == limit {
			break
		}
		if want == "" || t.Status == want {
			resp.Tasks = append(resp.Tasks, briefOf(t, now))
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
