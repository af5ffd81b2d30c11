package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/wasmfaas/wasmfaas/faastype"
)

// The task counters and histograms of Stats are not kept by the scripts:
// each process adds up the transitions it made in memory and flushes the
// sums into the stats hash (HINCRBY, pipelined) at most flushEvery after
// the first one, when Stats is read, and on Close. Keeping them in the
// scripts cost about 20 of the 48 Redis commands of a no-op task and most
// of the scripts' time (a histogram bucket loop, string building and 6
// HINCRBYs per final task); flushed, they cost a few commands a second per
// process. The price: a process killed without Close loses at most its last
// flushEvery of counts (never a task), and another process's Stats sees a
// transition up to flushEvery late. The gauges (queued, running) are not
// counters at all: Stats reads them from the queues and the lease set.
//
// Field names in the stats hash (unchanged from when the scripts kept
// them, so a store written by an older version reads the same):
//
//	submitted                 tasks ever enqueued
//	finished:<STATUS>         tasks that became COMPLETED / FAILED
//	failed:<KIND>             FAILED tasks by error kind
//	<h>:<STATUS>:<i>          histogram h (latency: created -> final;
//	                          execution: first claim -> final) bucket i, not
//	                          cumulative: i (from 1) is the first bound >= the
//	                          value, len(HistogramBuckets)+1 for larger ones
//	<h>:<STATUS>:sum_ms, <h>:<STATUS>:count
const flushEvery = time.Second

type counters struct {
	rdb   redis.UniversalClient
	key   string
	mu    sync.Mutex
	delta map[string]int64
	timer *time.Timer // armed while delta holds something
	log   interface{ Warn(string, ...any) }
}

func (c *counters) add(field string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(field, n)
}

func (c *counters) addLocked(field string, n int64) {
	if c.delta == nil {
		c.delta = make(map[string]int64)
	}
	c.delta[field] += n
	if c.timer == nil {
		c.timer = time.AfterFunc(flushEvery, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.flush(ctx); err != nil {
				c.log.Warn("store: flush task counters", "err", err)
			}
		})
	}
}

// final counts a task that became final with status (and error kind, ""
// for none) at now, created and first claimed at the given unix
// milliseconds (0: unknown, never claimed).
func (c *counters) final(status faastype.Status, kind faastype.ErrorKind, now, created, started int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked("finished:"+string(status), 1)
	if kind != "" {
		c.addLocked("failed:"+string(kind), 1)
	}
	if created > 0 {
		c.observeLocked("latency", status, now-created)
	}
	if started > 0 {
		c.observeLocked("execution", status, now-started)
	}
}

func (c *counters) observeLocked(h string, status faastype.Status, ms int64) {
	ms = max(ms, 0)
	i := len(HistogramBuckets) + 1
	for j, b := range histogramBucketsMS {
		if ms <= b {
			i = j + 1
			break
		}
	}
	p := h + ":" + string(status) + ":"
	c.addLocked(p+strconv.Itoa(i), 1)
	c.addLocked(p+"sum_ms", ms)
	c.addLocked(p+"count", 1)
}

// flush adds the sums counted so far to the stats hash. On failure they are
// kept, to be added by the next flush.
func (c *counters) flush(ctx context.Context) error {
	c.mu.Lock()
	d := c.delta
	c.delta = nil
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.mu.Unlock()
	if len(d) == 0 {
		return nil
	}
	pipe := c.rdb.TxPipeline() // MULTI/EXEC: all of it or none
	for f, n := range d {
		if n != 0 {
			pipe.HIncrBy(ctx, c.key, f, n)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		if errors.Is(err, redis.ErrClosed) {
			return nil // the process is done with the store: nowhere to write them
		}
		// Nothing was applied, unless the connection broke after EXEC
		// went out (then these are counted twice): keep them for the next.
		c.mu.Lock()
		for f, n := range d {
			c.addLocked(f, n)
		}
		c.mu.Unlock()
		return fmt.Errorf("add %d counters: %w", len(d), err)
	}
	return nil
}

// histogramBucketsMS are HistogramBuckets in milliseconds.
var histogramBucketsMS = func() []int64 {
	out := make([]int64, len(HistogramBuckets))
	for i, s := range HistogramBuckets {
		out[i] = int64(s*1000 + 0.5)
	}
	return out
}()

// Flush writes the task counters this store counted and has not written
// yet (see Stats). Stats flushes first; Close flushes last.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.counts.flush(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Close flushes the task counters; call it when the process stops using
// the store (the Redis client is the caller's to close).
func (s *Store) Close(ctx context.Context) error { return s.Flush(ctx) }
