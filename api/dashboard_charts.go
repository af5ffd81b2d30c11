package api

import (
	"context"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// The dashboard's charts cover the last dashWindow, from the samples of
// the cumulative counters that every API instance takes (Options.
// DashboardSample) into one bounded Redis list: one sample per period
// whichever instance takes it, so all instances serve the same series and
// a fresh one starts with the window the others filled (an API alone starts
// with an empty window, which fills as it samples).
const (
	dashWindow = 15 * time.Minute
	// DefaultDashboardSample is how often `faas api` and `faas up` sample.
	DefaultDashboardSample = 10 * time.Second
)

// sampleLoop samples the stats every period until ctx ends.
func (h *Handler) sampleLoop(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		h.takeSample(ctx, every)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// takeSample adds a sample unless another instance did within the period.
func (h *Handler) takeSample(ctx context.Context, every time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, every)
	defer cancel()
	st, err := h.st.Stats(ctx)
	if err == nil {
		_, err = h.st.AddSample(ctx, store.SampleOf(st, time.Now()), every, dashWindow)
	}
	if err != nil && ctx.Err() == nil {
		h.log.Debug("api: dashboard sample", "err", err)
	}
}

type dashPoint struct {
	Start      time.Time                    `json:"start"`
	End        time.Time                    `json:"end"`
	Completed  int64                        `json:"completed" doc:"tasks that COMPLETED in the interval"`
	Failed     int64                        `json:"failed" doc:"tasks that FAILED in the interval"`
	Throughput float64                      `json:"throughput" doc:"tasks that became final, per second"`
	P50        *float64                     `json:"p50_seconds" doc:"median latency (submission to final status) of the tasks that became final in the interval, interpolated in the histogram's buckets; null if none did"`
	P95        *float64                     `json:"p95_seconds" doc:"95th percentile latency, likewise"`
	P99        *float64                     `json:"p99_seconds" doc:"99th percentile latency, likewise"`
	Failures   map[faastype.ErrorKind]int64 `json:"failures" doc:"FAILED tasks of the interval by error kind"`
	QueueDepth int64                        `json:"queue_depth" doc:"task ids waiting in the queues at the end of the interval"`
}

type dashSeries struct {
	Time          time.Time            `json:"time" doc:"when the server read the series"`
	WindowSeconds float64              `json:"window_seconds" doc:"how far back the series goes"`
	SampleSeconds float64              `json:"sample_seconds" doc:"how often this API instance samples the counters (0: it does not; others may)"`
	Points        []dashPoint          `json:"points" doc:"one per interval between two samples, oldest first; the last ends now. Empty until there is a sample"`
	Kinds         []faastype.ErrorKind `json:"failure_kinds" doc:"the error kinds that appear in the points' failures, sorted"`
}

// dashboardSeries: GET /dashboard/series, the charts' data.
func (h *Handler) dashboardSeries(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	samples, err := h.st.Samples(ctx)
	if err != nil {
		return err
	}
	st, err := h.st.Stats(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	// The last interval ends now, with the counters as they are.
	if n := len(samples); n > 0 && now.Sub(samples[n-1].At) >= time.Second {
		samples = append(samples, store.SampleOf(st, now))
	}
	writeJSON(w, http.StatusOK, seriesOf(samples, now, h.opts.DashboardSample))
	return nil
}

// seriesOf makes the points of the samples within the window before now.
func seriesOf(samples []store.Sample, now time.Time, every time.Duration) dashSeries {
	out := dashSeries{Time: now.UTC(), WindowSeconds: dashWindow.Seconds(), SampleSeconds: max(every, 0).Seconds(),
		Points: []dashPoint{}, Kinds: []faastype.ErrorKind{}}
	kinds := map[faastype.ErrorKind]bool{}
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		dt := b.At.Sub(a.At).Seconds()
		if now.Sub(a.At) > dashWindow || dt <= 0 {
			continue
		}
		p := dashPoint{Start: a.At.UTC(), End: b.At.UTC(), Completed: b.Completed - a.Completed, Failed: b.Failed - a.Failed,
			Failures: map[faastype.ErrorKind]int64{}, QueueDepth: b.QueueDepth}
		if p.Completed < 0 || p.Failed < 0 {
			continue // the counters were reset (Redis flushed)
		}
		p.Throughput = float64(p.Completed+p.Failed) / dt
		for k, n := range b.Kinds {
			if d := n - a.Kinds[k]; d > 0 {
				p.Failures[k] = d
				kinds[k] = true
			}
		}
		counts := make([]uint64, len(store.HistogramBuckets)+1)
		if len(a.Latency) == len(counts) && len(b.Latency) == len(counts) {
			for j := range counts {
				if b.Latency[j] > a.Latency[j] {
					counts[j] = b.Latency[j] - a.Latency[j]
				}
			}
		}
		p.P50, p.P95, p.P99 = quantile(counts, 0.5), quantile(counts, 0.95), quantile(counts, 0.99)
		out.Points = append(out.Points, p)
	}
	for k := range kinds {
		out.Kinds = append(out.Kinds, k)
	}
	slices.Sort(out.Kinds)
	return out
}

// quantile estimates the q-quantile of the observations counted by bucket
// (store.HistogramBuckets, the last above them all) as Prometheus's
// histogram_quantile does: linearly within the bucket it falls in, the top
// bound for the last. Nil without observations.
func quantile(counts []uint64, q float64) *float64 {
	var total uint64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return nil
	}
	rank := q * float64(total)
	var acc float64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if acc+float64(c) >= rank {
			if i == len(store.HistogramBuckets) {
				return ptr(store.HistogramBuckets[i-1])
			}
			lo := 0.0
			if i > 0 {
				lo = store.HistogramBuckets[i-1]
			}
			hi := store.HistogramBuckets[i]
			v := lo + (hi-lo)*math.Max(rank-acc, 0)/float64(c)
			return ptr(v)
		}
		acc += float64(c)
	}
	return ptr(store.HistogramBuckets[len(store.HistogramBuckets)-1])
}

// dashTenantLoad is one tenant's work, for the queue depth per tenant.
type dashTenantLoad struct {
	Name      string `json:"name" doc:"the tenant; with API tokens, only the caller's own is named (others are empty)"`
	Yours     bool   `json:"yours" doc:"the caller's tenant"`
	Tenants   int    `json:"tenants" doc:"how many tenants this entry counts: 1, or more for the last entry that sums the tenants past the list's length"`
	Queued    int64  `json:"queued" doc:"task ids in the queue"`
	Running   int64  `json:"running" doc:"tasks leased to a dispatcher or worker now"`
	Scheduled int64  `json:"scheduled" doc:"tasks due later: delayed, or waiting for a retry"`
}

// maxTenantLoads is the most tenants the dashboard lists one by one.
const maxTenantLoads = 20

// tenantLoads is the list of tenants with work as the caller may see it:
// with tokens on, other tenants are not named.
func (h *Handler) tenantLoads(ctx context.Context, caller string) ([]dashTenantLoad, error) {
	loads, err := h.st.TenantLoads(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]dashTenantLoad, 0, min(len(loads), maxTenantLoads))
	var rest *dashTenantLoad // past the list's length, summed
	for i, l := range loads {
		d := dashTenantLoad{Name: l.Tenant, Yours: l.Tenant == caller, Tenants: 1, Queued: l.Queued, Running: l.Running, Scheduled: l.Scheduled}
		if h.auth != nil && !d.Yours {
			d.Name = ""
		}
		if i < maxTenantLoads-1 || d.Yours || len(loads) <= maxTenantLoads {
			out = append(out, d)
			continue
		}
		if rest == nil {
			rest = &dashTenantLoad{}
		}
		rest.Tenants++
		rest.Queued += l.Queued
		rest.Running += l.Running
		rest.Scheduled += l.Scheduled
	}
	if rest != nil {
		out = append(out, *rest)
	}
	return out, nil
}
