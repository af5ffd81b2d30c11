package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// The dashboard draws the last minutes of the cluster from periodic samples
// of the cumulative counters in Stats: the difference of two samples is
// what happened between them. The samples are kept in Redis (one list,
// bounded), so every API instance serves the same series and a fresh
// instance starts with the window the others filled.

// Sample is a reading of the cumulative task counters.
type Sample struct {
	At        time.Time                    `json:"-"`
	Completed int64                        `json:"c"`
	Failed    int64                        `json:"f"`
	Kinds     map[faastype.ErrorKind]int64 `json:"k,omitempty"` // FAILED tasks by error kind
	// Latency counts the final tasks (both statuses) by latency bucket of
	// HistogramBuckets, not cumulative, the last one above them all.
	Latency    []uint64 `json:"l"`
	QueueDepth int64    `json:"q"`
}

// SampleOf is the sample of st taken at at.
func SampleOf(st Stats, at time.Time) Sample {
	s := Sample{At: at, Completed: st.Finished[faastype.Completed], Failed: st.Finished[faastype.Failed],
		Kinds: map[faastype.ErrorKind]int64{}, Latency: make([]uint64, len(HistogramBuckets)+1), QueueDepth: st.QueueLength}
	for k, n := range st.Failed {
		s.Kinds[k] = n
	}
	for _, h := range st.Latency {
		for i, n := range h.Counts {
			if i < len(s.Latency) {
				s.Latency[i] += n
			}
		}
	}
	return s
}

// AddSample appends s to the samples unless the newest is younger than
// gap (another API instance sampled), keeping those of the last window.
// It reports whether s was added.
func (s *Store) AddSample(ctx context.Context, smp Sample, gap, window time.Duration) (bool, error) {
	b, err := json.Marshal(smp)
	if err != nil {
		return false, fmt.Errorf("store: add sample: %w", err)
	}
	keep := int64(window/max(gap, time.Millisecond)) + 2
	n, err := scriptSample.Run(ctx, s.rdb, []string{s.keys.samples()},
		unixMS(smp.At), gap.Milliseconds(), keep, b, (2 * window).Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("store: add sample: %w", err)
	}
	return n == 1, nil
}

// Samples are the samples kept, oldest first. An entry that does not
// parse is left out.
func (s *Store) Samples(ctx context.Context) ([]Sample, error) {
	raw, err := s.rdb.LRange(ctx, s.keys.samples(), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("store: samples: %w", err)
	}
	out := make([]Sample, 0, len(raw))
	for _, r := range slices.Backward(raw) {
		ms, text, ok := strings.Cut(r, " ")
		if !ok {
			continue
		}
		t, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			continue
		}
		var smp Sample
		if json.Unmarshal([]byte(text), &smp) != nil {
			continue
		}
		smp.At = time.UnixMilli(t)
		out = append(out, smp)
	}
	return out, nil
}

// TenantLoad is one tenant's work in the system now.
type TenantLoad struct {
	Tenant    string // "" the default tenant
	Queued    int64  // ids in its queue
	Running   int64  // its tasks leased now
	Scheduled int64  // its tasks due later (delayed, or waiting for a retry)
}

// TenantLoads lists the tenants with queued, running or scheduled tasks,
// the most queued first (then by name). It costs O(tenants with work).
func (s *Store) TenantLoads(ctx context.Context) ([]TenantLoad, error) {
	lengths, err := s.queueLengths(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: tenant loads: %w", err)
	}
	byName := map[string]*TenantLoad{}
	get := func(tenant string) *TenantLoad {
		if l, ok := byName[tenant]; ok {
			return l
		}
		l := &TenantLoad{Tenant: tenant}
		byName[tenant] = l
		return l
	}
	for tenant, n := range lengths {
		get(tenant).Queued = n
	}
	pipe := s.rdb.Pipeline()
	running := pipe.HGetAll(ctx, s.keys.running())
	scheduled := pipe.HGetAll(ctx, s.keys.scheduledCounts())
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("store: tenant loads: %w", err)
	}
	for tenant, v := range running.Val() {
		if n, _ := strconv.ParseInt(v, 10, 64); n > 0 {
			get(tenant).Running = n
		}
	}
	for tenant, v := range scheduled.Val() {
		if n, _ := strconv.ParseInt(v, 10, 64); n > 0 {
			get(tenant).Scheduled = n
		}
	}
	out := make([]TenantLoad, 0, len(byName))
	for _, l := range byName {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b TenantLoad) int {
		if a.Queued != b.Queued {
			return cmp.Compare(b.Queued, a.Queued)
		}
		return strings.Compare(a.Tenant, b.Tenant)
	})
	return out, nil
}
