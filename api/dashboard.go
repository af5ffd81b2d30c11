package api

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// The dashboard is one static page (no build step, nothing fetched from
// elsewhere) whose script polls GET /dashboard/state.
//
//go:embed web/dashboard.html
var dashboardHTML []byte

// dashboardCSP allows the page's own inline script and style (by hash) and
// requests to this server, nothing else.
var dashboardCSP = pageCSP(dashboardHTML)

// pageCSP is the Content-Security-Policy of one of our pages: nothing but
// its own inline <script> and <style> elements (allowed by hash) and
// requests to this server.
func pageCSP(page []byte) string {
	return "default-src 'none'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; " +
		"frame-ancestors 'none'; " + inlineHashes(string(page))
}

// inlineHashes is the CSP script-src and style-src of a page's inline
// <script> and <style> elements.
func inlineHashes(page string) string {
	src := func(tag string) string {
		re := regexp.MustCompile(`(?s)<` + tag + `>(.*?)</` + tag + `>`)
		var hashes []string
		for _, m := range re.FindAllStringSubmatch(page, -1) {
			sum := sha256.Sum256([]byte(m[1]))
			hashes = append(hashes, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		}
		if len(hashes) == 0 {
			return "'none'"
		}
		return strings.Join(hashes, " ")
	}
	return "script-src " + src("script") + "; style-src " + src("style")
}

// dashboard: GET /, the dashboard page.
func (h *Handler) dashboard(w http.ResponseWriter, r *http.Request) {
	writePage(w, dashboardHTML, dashboardCSP)
}

func writePage(w http.ResponseWriter, page []byte, csp string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(page)
}

type dashTasks struct {
	Submitted int64 `json:"submitted" doc:"tasks ever submitted"`
	Queued    int64 `json:"queued" doc:"tasks QUEUED now"`
	Running   int64 `json:"running" doc:"tasks RUNNING now"`
	Completed int64 `json:"completed" doc:"tasks that COMPLETED"`
	Failed    int64 `json:"failed" doc:"tasks that FAILED (cancelled ones included)"`
}

type dashTask struct {
	TaskID       string             `json:"task_id"`
	FunctionID   string             `json:"function_id"`
	FunctionName string             `json:"function_name" doc:"empty if the function is not known"`
	Status       faastype.Status    `json:"status" enum:"QUEUED,RUNNING,COMPLETED,FAILED"`
	ErrorKind    faastype.ErrorKind `json:"error_kind,omitempty" doc:"for a FAILED task"`
	Attempts     int                `json:"attempts"`
	Worker       string             `json:"worker" doc:"the dispatcher or worker of the latest claim"`
	CreatedAt    time.Time          `json:"created_at"`
	StartedAt    *time.Time         `json:"started_at" doc:"first claim; null until the task started"`
	FinishedAt   *time.Time         `json:"finished_at" doc:"null until the task is final"`
	Duration     *float64           `json:"duration_seconds" doc:"seconds from the first claim to the final status (or to now while RUNNING); null if the task never started"`
	Latency      *float64           `json:"latency_seconds" doc:"seconds from submission to the final status; null until final"`
}

type dashNode struct {
	Name      string    `json:"name"`
	Role      string    `json:"role" doc:"dispatcher, push-worker or pull-worker"`
	Mode      string    `json:"mode,omitempty" doc:"a dispatcher's mode: local, push or pull"`
	Alive     bool      `json:"alive" doc:"reported within the last 10 s"`
	Sandboxes int       `json:"sandboxes"`
	Busy      int       `json:"busy" doc:"sandboxes running a task now"`
	Tasks     uint64    `json:"tasks" doc:"tasks run since the node started"`
	WarmRuns  uint64    `json:"warm_runs" doc:"tasks that reused an interpreter that had loaded their function"`
	ColdRuns  uint64    `json:"cold_runs" doc:"tasks that loaded their function into a fresh interpreter"`
	Timeouts  uint64    `json:"timeouts"`
	Crashes   uint64    `json:"crashes"`
	Walls     string    `json:"walls" doc:"the OS-level walls its sandbox processes put up (up: ...; missing: ... (why))"`
	StartedAt time.Time `json:"started_at"`
	SeenAt    time.Time `json:"seen_at" doc:"last report"`
}

type dashTenant struct {
	Name       string `json:"name" doc:"the tenant of the request's token; empty when the API is open (no tokens)"`
	QueueDepth int64  `json:"queue_depth" doc:"this tenant's task ids waiting in its queue"`
	Running    int64  `json:"running" doc:"this tenant's tasks leased to a dispatcher or worker now"`
}

type dashboardState struct {
	Time       time.Time        `json:"time" doc:"when the server read this state"`
	Tasks      dashTasks        `json:"tasks" doc:"cluster-wide task counts, all tenants (use two readings of completed + failed for throughput)"`
	QueueDepth int64            `json:"queue_depth" doc:"task ids waiting in the queues of all tenants"`
	Leases     int64            `json:"leases" doc:"tasks leased to a dispatcher or worker now"`
	ResultTTL  float64          `json:"result_ttl_seconds" doc:"final tasks are removed this long after they finished (0: kept); as configured on this API instance"`
	Tenant     dashTenant       `json:"tenant" doc:"the caller's tenant and its share of the work"`
	Recent     []dashTask       `json:"recent" doc:"the caller's newest tasks, newest first (only its own tenant's)"`
	Nodes      []dashNode       `json:"nodes" doc:"dispatchers and workers that reported in the last 10 minutes"`
	Tenants    []dashTenantLoad `json:"tenants" doc:"the tenants with queued, running or scheduled tasks, the most queued first (at most 20 entries: the last may sum the rest)"`
}

// Recent tasks GET /dashboard/state and GET /tasks list by default and at
// most.
const (
	defaultRecent = 50
	maxRecent     = store.RecentTasks
)

// dashboardState: GET /dashboard/state[?limit=N], what the dashboard shows.
func (h *Handler) dashboardState(w http.ResponseWriter, r *http.Request) error {
	limit, err := recentLimit(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	st, err := h.st.Stats(ctx)
	if err != nil {
		return err
	}
	nodes, err := h.st.Nodes(ctx)
	if err != nil {
		return err
	}
	tenant := tenantOf(r)
	recent, err := h.st.TenantRecentTasks(ctx, tenant, limit)
	if err != nil {
		return err
	}
	queued, running, err := h.st.TenantUsage(ctx, tenant)
	if err != nil {
		return err
	}
	loads, err := h.tenantLoads(ctx, tenant)
	if err != nil {
		return err
	}
	now := time.Now()
	resp := dashboardState{
		Time: now.UTC(),
		Tasks: dashTasks{Submitted: st.Submitted, Queued: st.Queued, Running: st.Running,
			Completed: st.Finished[faastype.Completed], Failed: st.Finished[faastype.Failed]},
		QueueDepth: st.QueueLength,
		Leases:     st.Leases,
		ResultTTL:  h.st.ResultTTL().Seconds(),
		Tenant:     dashTenant{Name: tenant, QueueDepth: queued, Running: running},
		Recent:     make([]dashTask, 0, len(recent)),
		Nodes:      make([]dashNode, 0, len(nodes)),
		Tenants:    loads,
	}
	for _, t := range recent {
		resp.Recent = append(resp.Recent, briefOf(t, now))
	}
	for _, n := range nodes {
		resp.Nodes = append(resp.Nodes, dashNode{Name: n.Name, Role: n.Role, Mode: n.Mode, Alive: n.Alive,
			Sandboxes: n.Sandboxes, Busy: n.Busy, Tasks: n.Stats.Tasks, WarmRuns: n.Stats.WarmRuns,
			ColdRuns: n.Stats.ColdRuns, Timeouts: n.Stats.Timeouts, Crashes: n.Stats.Crashes, Walls: n.Stats.Walls,
			StartedAt: n.StartedAt.UTC(), SeenAt: n.SeenAt.UTC()})
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// recentLimit reads ?limit= of a list of recent tasks: from 0 to
// maxRecent, defaultRecent when absent.
func recentLimit(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultRecent, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > maxRecent {
		return 0, errorf(http.StatusBadRequest, "limit must be a whole number from 0 to %d, not %q", maxRecent, truncate(v, 40))
	}
	return n, nil
}

// briefOf is a task as the lists of recent tasks show it; now ends the
// duration of a RUNNING task.
func briefOf(t store.TaskBrief, now time.Time) dashTask {
	d := dashTask{TaskID: t.ID, FunctionID: t.FunctionID, FunctionName: t.FunctionName, Status: t.Status,
		ErrorKind: t.ErrorKind, Attempts: t.Attempts, Worker: t.Worker, CreatedAt: t.CreatedAt.UTC()}
	if !t.StartedAt.IsZero() {
		d.StartedAt = ptr(t.StartedAt.UTC())
		end := now
		if !t.FinishedAt.IsZero() {
			end = t.FinishedAt
		}
		d.Duration = ptr(max(end.Sub(t.StartedAt).Seconds(), 0))
	}
	if t.Status.Final() && !t.FinishedAt.IsZero() {
		d.FinishedAt = ptr(t.FinishedAt.UTC())
		d.Latency = ptr(max(t.FinishedAt.Sub(t.CreatedAt).Seconds(), 0))
	}
	return d
}

func ptr[T any](v T) *T { return &v }
