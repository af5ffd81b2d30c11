package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wasmfaas/wasmfaas/faastype"
)

// Histogram is one of the task histograms of the stats hash.
type Histogram struct {
	// Counts[i] counts the observations in bucket i: at most
	// HistogramBuckets[i] and above the bound before (not cumulative);
	// Counts[len(HistogramBuckets)] counts the larger ones.
	Counts []uint64
	Sum    float64 // seconds
	Count  uint64
}

// Cumulative maps each bound of HistogramBuckets to the number of
// observations at most that bound (what Prometheus exposes).
func (h Histogram) Cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(HistogramBuckets))
	var acc uint64
	for i, b := range HistogramBuckets {
		acc += h.Counts[i]
		out[b] = acc
	}
	return out
}

// Stats are the cluster-wide task statistics: what every API instance
// reads the same, because the scripts keep the counters and histograms in
// Redis as tasks move (see lua/lib.lua); the gauges are read from the
// queues and the lease set.
type Stats struct {
	Submitted int64 // tasks ever enqueued
	Retried   int64 // failed attempts a retry policy ran again
	// Queued is the number of tasks waiting to run: QUEUED ones, and
	// RUNNING ones back in a queue after their worker was lost
	// (QueueLength).
	Queued int64
	// Running is the number of tasks being run: leased to a dispatcher or
	// worker now (Leases).
	Running int64
	// Finished counts the tasks that became final, by status (COMPLETED and
	// FAILED are always present).
	Finished map[faastype.Status]int64
	// Failed counts the FAILED tasks by error kind.
	Failed map[faastype.ErrorKind]int64
	// Latency is the time from submission to the final status, by final
	// status; Execution the time from the first claim to the final status,
	// by final status, for tasks that were claimed.
	Latency, Execution map[faastype.Status]Histogram
	// QueueLength is the number of ids in the tenants' queues: QUEUED tasks
	// and requeued ones.
	QueueLength int64
	// Leases is the number of tasks leased to a dispatcher or worker now.
	Leases int64
	// Scheduled is the number of tasks due later: delayed ones (QUEUED,
	// not counted in Queued) and ones waiting for a retry (RUNNING, not
	// counted in Running).
	Scheduled int64
	// Webhooks counts completion webhook delivery attempts by outcome:
	// "delivered", "failed" (every attempt that did not get a 2xx, the last
	// of an undeliverable one too) and "undeliverable" (webhooks given up
	// on); always present. WebhooksPending is the number waiting to be
	// delivered now.
	Webhooks        map[string]int64
	WebhooksPending int64

	// SchedulesActive is the number of schedules with a next tick (the
	// active set), SchedulesPaused that of the paused ones, of all tenants.
	SchedulesActive, SchedulesPaused int64
	// ScheduleTicks counts the schedules' ticks by outcome, as
	// fire_schedule.lua counts them: "fired" (made a task; a run_once
	// catch-up task counts once), "missed" (no dispatcher looked in time)
	// and "skipped" (queue full, function gone); all three are present.
	ScheduleTicks map[string]int64
}

// The outcomes of ScheduleTicks.
var ScheduleTickOutcomes = []string{"fired", "missed", "skipped"}

// Stats reads the statistics.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	pipe := s.rdb.Pipeline()
	all := pipe.HGetAll(ctx, s.keys.stats())
	leases := pipe.ZCard(ctx, s.keys.leases())
	scheduled := pipe.ZCard(ctx, s.keys.scheduled())
	hooks := pipe.ZCard(ctx, s.keys.hooks())
	active := pipe.ZCard(ctx, s.keys.activeSchedules())
	paused := pipe.SCard(ctx, s.keys.pausedSchedules())
	if _, err := pipe.Exec(ctx); err != nil {
		return Stats{}, fmt.Errorf("store: read stats: %w", err)
	}
	qlen, err := s.QueueDepth(ctx)
	if err != nil {
		return Stats{}, fmt.Errorf("store: read stats: %w", err)
	}
	st := Stats{
		Finished:        map[faastype.Status]int64{faastype.Completed: 0, faastype.Failed: 0},
		Failed:          map[faastype.ErrorKind]int64{},
		Latency:         map[faastype.Status]Histogram{},
		Execution:       map[faastype.Status]Histogram{},
		QueueLength:     qlen,
		Leases:          leases.Val(),
		Queued:          qlen,
		Running:         leases.Val(),
		Scheduled:       scheduled.Val(),
		Webhooks:        map[string]int64{"delivered": 0, "failed": 0, "undeliverable": 0},
		WebhooksPending: hooks.Val(),
		SchedulesActive: active.Val(),
		SchedulesPaused: paused.Val(),
		ScheduleTicks:   map[string]int64{},
	}
	for _, o := range ScheduleTickOutcomes {
		st.ScheduleTicks[o] = 0
	}
	for _, status := range []faastype.Status{faastype.Completed, faastype.Failed} {
		st.Latency[status] = Histogram{Counts: make([]uint64, len(HistogramBuckets)+1)}
		st.Execution[status] = Histogram{Counts: make([]uint64, len(HistogramBuckets)+1)}
	}
	hist := func(hs map[faastype.Status]Histogram, status faastype.Status) Histogram {
		h, ok := hs[status]
		if !ok {
			h = Histogram{Counts: make([]uint64, len(HistogramBuckets)+1)}
		}
		return h
	}
	// observe adds n observations in bucket b (from 1) of histogram hs's
	// status; b 0 adds none.
	observe := func(hs map[faastype.Status]Histogram, status faastype.Status, b int, n int64) {
		if b < 1 || b > len(HistogramBuckets)+1 || n <= 0 {
			return
		}
		h := hist(hs, status)
		h.Counts[b-1] += uint64(n)
		h.Count += uint64(n)
		hs[status] = h
	}
	for field, v := range all.Val() {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue // not ours
		}
		switch parts := strings.Split(field, ":"); {
		case field == "submitted":
			st.Submitted = n
		case field == "retried":
			st.Retried = n
		case len(parts) == 2 && parts[0] == "webhook":
			st.Webhooks[parts[1]] += n
		case len(parts) == 5 && parts[0] == "f":
			// f:<STATUS>:<KIND>:<latency bucket>:<execution bucket>
			status := faastype.Status(parts[1])
			st.Finished[status] += n
			if parts[2] != "" {
				st.Failed[faastype.ErrorKind(parts[2])] += n
			}
			lb, _ := strconv.Atoi(parts[3])
			eb, _ := strconv.Atoi(parts[4])
			observe(st.Latency, status, lb, n)
			observe(st.Execution, status, eb, n)
		case len(parts) == 2 && parts[0] == "finished": // written before the f: fields
			st.Finished[faastype.Status(parts[1])] += n
		case len(parts) == 2 && parts[0] == "schedule_ticks":
			st.ScheduleTicks[parts[1]] += n
		case len(parts) == 2 && parts[0] == "failed":
			st.Failed[faastype.ErrorKind(parts[1])] += n
		case len(parts) == 3 && (parts[0] == "latency" || parts[0] == "execution"):
			hs := st.Latency
			if parts[0] == "execution" {
				hs = st.Execution
			}
			status := faastype.Status(parts[1])
			h := hist(hs, status)
			switch parts[2] {
			case "sum_ms":
				h.Sum += float64(n) / 1000
			case "count":
				h.Count += uint64(max(n, 0))
			default:
				i, err := strconv.Atoi(parts[2])
				if err != nil || i < 1 || i > len(h.Counts) {
					continue
				}
				h.Counts[i-1] += uint64(max(n, 0))
			}
			hs[status] = h
		}
	}
	return st, nil
}

// TaskBrief is a task as the dashboard lists it (no payloads, no output).
type TaskBrief struct {
	ID           string
	FunctionID   string
	FunctionName string // "" if the function is gone
	Status       faastype.Status
	ErrorKind    faastype.ErrorKind // for a FAILED task
	Attempts     int
	Worker       string // the worker of the latest claim
	CreatedAt    time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
}

// RecentTasks lists up to n of the default tenant's newest tasks (at most
// RecentTasks), newest first. Tasks removed since (result TTL) are left
// out.
func (s *Store) RecentTasks(ctx context.Context, n int) ([]TaskBrief, error) {
	return s.TenantRecentTasks(ctx, "", n)
}

// TenantRecentTasks is RecentTasks for the tasks of tenant ("" the default
// one): each tenant has its own index.
func (s *Store) TenantRecentTasks(ctx context.Context, tenant string, n int) ([]TaskBrief, error) {
	n = min(n, RecentTasks)
	if n <= 0 {
		return nil, nil
	}
	ids, err := s.rdb.LRange(ctx, s.keys.recentOf(tenant), 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("store: recent tasks: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HMGet(ctx, s.keys.task(id), fieldStatus, fieldFunctionID, fieldAttempts, fieldWorker,
			fieldCreatedAt, fieldStartedAt, fieldFinishedAt, fieldError)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("store: recent tasks: read %d tasks: %w", len(ids), err)
	}
	out := make([]TaskBrief, 0, len(ids))
	names := map[string]string{}
	for i, c := range cmds {
		v := c.Val()
		status := str(v[0])
		if status == "" {
			continue // expired
		}
		t := TaskBrief{ID: ids[i], Status: faastype.Status(status), FunctionID: str(v[1]), Worker: str(v[3]),
			CreatedAt: parseMS(str(v[4])), StartedAt: parseMS(str(v[5])), FinishedAt: parseMS(str(v[6]))}
		t.Attempts, _ = strconv.Atoi(str(v[2]))
		if e := str(v[7]); e != "" {
			var te faastype.TaskError
			if json.Unmarshal([]byte(e), &te) == nil {
				t.ErrorKind = te.Kind
			}
		}
		if t.FunctionID != "" {
			names[t.FunctionID] = ""
		}
		out = append(out, t)
	}
	if len(names) > 0 {
		pipe := s.rdb.Pipeline()
		ncmds := make(map[string]*redis.StringCmd, len(names))
		for id := range names {
			ncmds[id] = pipe.HGet(ctx, s.keys.function(id), fieldFnName)
		}
		_, _ = pipe.Exec(ctx) // errors are per command, below
		for id, c := range ncmds {
			// A function that is gone (redis.Nil) just has no name.
			if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
				return nil, fmt.Errorf("store: recent tasks: name of function %s: %w", id, err)
			}
		}
		for i := range out {
			if c := ncmds[out[i].FunctionID]; c != nil {
				out[i].FunctionName = c.Val()
			}
		}
	}
	return out, nil
}
