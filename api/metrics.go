package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// The metrics of GET /metrics. Those named faas_* are cluster-wide: they
// are read from Redis at each scrape (the counters and histograms that the
// store's scripts keep as tasks move, and the nodes that dispatchers
// publish), so every API instance reports the same values. go_* and
// process_* describe the API process itself.
var (
	mStoreUp = prometheus.NewDesc("faas_store_up",
		"1 if Redis answered this scrape; without it the other faas_* metrics are left out.", nil, nil)
	mSubmitted = prometheus.NewDesc("faas_tasks_submitted_total",
		"Tasks ever submitted (POST /execute_function, one per call of POST /execute_batch).", nil, nil)
	mTasks = prometheus.NewDesc("faas_tasks",
		"Tasks that are QUEUED or RUNNING now (a task requeued after its worker was lost stays RUNNING).", []string{"status"}, nil)
	mFinished = prometheus.NewDesc("faas_tasks_finished_total",
		"Tasks that became final, by final status.", []string{"status"}, nil)
	mFailed = prometheus.NewDesc("faas_tasks_failed_total",
		"FAILED tasks by error kind (USER_EXCEPTION, TIMEOUT, CANCELLED, WORKER_LOST, ...).", []string{"kind"}, nil)
	mLatency = prometheus.NewDesc("faas_task_latency_seconds",
		"Time from submission to the final status, by final status.", []string{"status"}, nil)
	mExecution = prometheus.NewDesc("faas_task_execution_seconds",
		"Time from the first claim by a dispatcher to the final status, by final status (tasks that never started are left out).",
		[]string{"status"}, nil)
	mQueueDepth = prometheus.NewDesc("faas_queue_depth",
		"Task ids waiting in the queues of all tenants: QUEUED tasks, and RUNNING ones requeued after their worker was lost.", nil, nil)
	mLeases = prometheus.NewDesc("faas_leases",
		"Tasks leased to a dispatcher or worker now.", nil, nil)
	mScheduled = prometheus.NewDesc("faas_tasks_scheduled",
		"Tasks due later: delayed ones not due yet (QUEUED) and ones waiting for their next attempt under a retry policy (RUNNING).", nil, nil)
	mRetries = prometheus.NewDesc("faas_task_retries_total",
		"Failed attempts that a retry policy ran again.", nil, nil)
	mWebhooks = prometheus.NewDesc("faas_webhook_deliveries_total",
		"Completion webhook delivery attempts by outcome: delivered (a 2xx answer), failed (any other answer or none; "+
			"the last attempt of an undeliverable webhook too), undeliverable (webhooks given up on).", []string{"outcome"}, nil)
	mWebhooksPending = prometheus.NewDesc("faas_webhooks_pending",
		"Completion webhooks of final tasks not delivered yet: due, being posted, or waiting for a retry.", nil, nil)
	mSchedules = prometheus.NewDesc("faas_schedules",
		"Schedules of all tenants: active ones (with a next tick) and paused ones.", []string{"state"}, nil)
	mScheduleTicks = prometheus.NewDesc("faas_schedule_ticks_total",
		"Schedules' ticks by outcome: fired (made a task; a run_once catch-up task counts once), "+
			"missed (no dispatcher looked in time: an outage), skipped (the task could not be made: queue full, function gone).",
		[]string{"outcome"}, nil)
	mNodeUp = prometheus.NewDesc("faas_node_up",
		"1 for a dispatcher or worker that reported within the last 10 s, 0 for one that went silent (listed for 10 minutes).",
		[]string{"node", "role", "mode"}, nil)
	mNodeSeen = prometheus.NewDesc("faas_node_last_seen_timestamp_seconds",
		"When the node last reported, in seconds since the epoch.", []string{"node"}, nil)
	mSandboxes = prometheus.NewDesc("faas_sandboxes",
		"Sandbox slots of a live node's pool.", []string{"node"}, nil)
	mSandboxesBusy = prometheus.NewDesc("faas_sandboxes_busy",
		"Sandbox slots of a live node running a task now.", []string{"node"}, nil)
	mSandboxesReady = prometheus.NewDesc("faas_sandboxes_ready",
		"Sandbox slots of a live node whose process is up (busy or idle).", []string{"node"}, nil)
	mNodeWaiting = prometheus.NewDesc("faas_node_waiting_tasks",
		"Tasks a live node holds that wait for a free sandbox.", []string{"node"}, nil)
	mNodeTasks = prometheus.NewDesc("faas_node_tasks_total",
		"Tasks a live node's sandboxes have run since the node started.", []string{"node"}, nil)
	mStarts = prometheus.NewDesc("faas_sandbox_starts_total",
		"Task starts on a live node since it started: warm reuses an interpreter that already loaded the function, "+
			"cold loads it into a fresh one (restored from the snapshot).", []string{"node", "type"}, nil)
	mTimeouts = prometheus.NewDesc("faas_sandbox_timeouts_total",
		"Tasks a live node stopped at their timeout.", []string{"node"}, nil)
	mCrashes = prometheus.NewDesc("faas_sandbox_crashes_total",
		"Sandbox processes of a live node that crashed.", []string{"node"}, nil)
	mRestarts = prometheus.NewDesc("faas_sandbox_restarts_total",
		"Sandbox processes a live node replaced (after a timeout, crash, memory error or cancellation).", []string{"node"}, nil)
)

// processMetrics gathers the Go runtime and process metrics of this process.
func processMetrics() prometheus.Gatherer {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// snapshot is what one scrape read from the store.
type snapshot struct {
	stats store.Stats
	nodes []store.Node
	err   error
}

func (h *Handler) readSnapshot(ctx context.Context) snapshot {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var s snapshot
	if s.stats, s.err = h.st.Stats(ctx); s.err != nil {
		return s
	}
	s.nodes, s.err = h.st.Nodes(ctx)
	return s
}

// clusterCollector turns a snapshot into metrics.
type clusterCollector struct{ s snapshot }

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mStoreUp, mSubmitted, mTasks, mFinished, mFailed, mLatency, mExecution,
		mQueueDepth, mLeases, mScheduled, mRetries, mWebhooks, mWebhooksPending, mSchedules, mScheduleTicks, mNodeUp, mNodeSeen, mSandboxes, mSandboxesBusy, mSandboxesReady, mNodeWaiting,
		mNodeTasks, mStarts, mTimeouts, mCrashes, mRestarts} {
		ch <- d
	}
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	if c.s.err != nil {
		gauge(mStoreUp, 0)
		return
	}
	gauge(mStoreUp, 1)
	st := c.s.stats
	counter(mSubmitted, float64(st.Submitted))
	counter(mRetries, float64(st.Retried))
	for outcome, n := range st.Webhooks {
		counter(mWebhooks, float64(n), outcome)
	}
	gauge(mWebhooksPending, float64(st.WebhooksPending))
	gauge(mScheduled, float64(st.Scheduled))
	gauge(mTasks, float64(st.Queued), string(faastype.Queued))
	gauge(mTasks, float64(st.Running), string(faastype.Running))
	for status, n := range st.Finished {
		counter(mFinished, float64(n), string(status))
	}
	for kind, n := range st.Failed {
		counter(mFailed, float64(n), string(kind))
	}
	for status, hist := range st.Latency {
		ch <- prometheus.MustNewConstHistogram(mLatency, hist.Count, hist.Sum, hist.Cumulative(), string(status))
	}
	for status, hist := range st.Execution {
		ch <- prometheus.MustNewConstHistogram(mExecution, hist.Count, hist.Sum, hist.Cumulative(), string(status))
	}
	gauge(mQueueDepth, float64(st.QueueLength))
	gauge(mLeases, float64(st.Leases))
	gauge(mSchedules, float64(st.SchedulesActive), "active")
	gauge(mSchedules, float64(st.SchedulesPaused), "paused")
	for outcome, n := range st.ScheduleTicks {
		counter(mScheduleTicks, float64(n), outcome)
	}
	for _, n := range c.s.nodes {
		up := 0.0
		if n.Alive {
			up = 1
		}
		gauge(mNodeUp, up, n.Name, n.Role, n.Mode)
		gauge(mNodeSeen, float64(n.SeenAt.UnixMilli())/1000, n.Name)
		if !n.Alive {
			continue
		}
		gauge(mSandboxes, float64(n.Sandboxes), n.Name)
		gauge(mSandboxesBusy, float64(n.Busy), n.Name)
		gauge(mSandboxesReady, float64(n.Stats.Ready), n.Name)
		gauge(mNodeWaiting, float64(n.Stats.WaitingTasks), n.Name)
		counter(mNodeTasks, float64(n.Stats.Tasks), n.Name)
		counter(mStarts, float64(n.Stats.WarmRuns), n.Name, "warm")
		counter(mStarts, float64(n.Stats.ColdRuns), n.Name, "cold")
		counter(mTimeouts, float64(n.Stats.Timeouts), n.Name)
		counter(mCrashes, float64(n.Stats.Crashes), n.Name)
		counter(mRestarts, float64(n.Stats.Restarts), n.Name)
	}
}

// metrics: GET /metrics, in the Prometheus text format (or OpenMetrics or
// protobuf, as the scraper asks). Redis being down is not an error here:
// faas_store_up says so.
func (h *Handler) metrics(w http.ResponseWriter, r *http.Request) {
	snap := h.readSnapshot(r.Context())
	if snap.err != nil {
		h.log.WarnContext(r.Context(), "api: metrics: reading the store failed", "err", snap.err)
	}
	cluster := prometheus.NewRegistry()
	cluster.MustRegister(clusterCollector{snap})
	promhttp.HandlerFor(prometheus.Gatherers{cluster, h.procMetrics}, promhttp.HandlerOpts{
		ErrorLog:      promLogger{h},
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP(w, r)
}

type promLogger struct{ h *Handler }

func (l promLogger) Println(v ...any) { l.h.log.Error("api: metrics", "err", fmt.Sprint(v...)) }
