// Package schedule computes the ticks of a schedule: a 5-field cron
// expression in a time zone, or a fixed interval from an anchor; and what
// a late look at a schedule does with the ticks it finds due (Plan, with a
// Missed policy).
//
// Cron expressions are parsed by github.com/robfig/cron/v3: minute, hour,
// day of month, month, day of week; *, ranges (1-5), steps (*/15, 0-30/10),
// lists (1,15), names (JAN-DEC, SUN-SAT), ? as *, and the descriptors
// @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly.
// When both day fields are restricted, a day matching either runs (as in
// Vixie cron). Ticks are computed in the schedule's time zone (UTC unless
// given), as wall-clock times: at a spring-forward gap a tick inside the
// missing hour does not happen that day; at a fall-back overlap a tick in
// the repeated hour happens in both occurrences (01:30 daylight time,
// then 01:30 standard time), so an hourly schedule still ticks every hour.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // time zones on machines without /usr/share/zoneinfo

	"github.com/robfig/cron/v3"
)

// MinEvery is the shortest interval a schedule may have.
const MinEvery = time.Second

// MaxEvery is the longest interval a schedule may have.
const MaxEvery = 366 * 24 * time.Hour

// MaxGrace caps how late a tick may fire and still count as on time (see
// Plan).
const MaxGrace = time.Minute

// Missed is the policy for ticks missed during an outage (see Plan).
type Missed string

const (
	// RunOnce runs one catch-up task for all the missed ticks, then goes
	// on at the next tick. The default.
	RunOnce Missed = "run_once"
	// Skip runs nothing for the missed ticks and goes on at the next tick.
	Skip Missed = "skip"
)

// ParseMissed reads a policy; "" is RunOnce.
func ParseMissed(s string) (Missed, error) {
	switch Missed(s) {
	case "", RunOnce:
		return RunOnce, nil
	case Skip:
		return Skip, nil
	}
	return "", fmt.Errorf("missed must be %q or %q, not %q", RunOnce, Skip, s)
}

// Spec is a parsed schedule: either a cron expression in a time zone or an
// interval from an anchor. Its times are in milliseconds (the store's
// granularity).
type Spec struct {
	cron  cron.Schedule // nil for an interval
	every time.Duration
	// anchor is where an interval's ticks are counted from: the ticks
	// are anchor + k*every, k >= 1.
	anchor time.Time
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseCron parses a 5-field cron expression, in time zone tz (an IANA
// name such as "Europe/Paris"; "" is UTC).
func ParseCron(expr, tz string) (*Spec, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, errors.New("the cron expression is empty")
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, errors.New(`give the time zone as "timezone", not in the cron expression`)
	}
	if strings.HasPrefix(expr, "@every") {
		return nil, errors.New(`give an interval as "every", not as @every in the cron expression`)
	}
	loc := time.UTC
	if tz != "" {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("unknown time zone %q (use an IANA name such as \"Europe/Paris\")", tz)
		}
	}
	s, err := parser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("cron expression %q: %v (5 fields: minute hour day-of-month month day-of-week)", expr, err)
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("cron expression %q is not supported", expr)
	}
	spec.Location = loc
	// An expression that matches no time at all (30 2 31 2 *) has no tick
	// in the next 5 years: refuse it rather than never run.
	if spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, fmt.Errorf("cron expression %q matches no date", expr)
	}
	return &Spec{cron: spec}, nil
}

// Every is an interval schedule: ticks at anchor + k*every, k >= 1 (the
// first one interval after the anchor). every is rounded to milliseconds.
func Every(every time.Duration, anchor time.Time) (*Spec, error) {
	every = every.Round(time.Millisecond)
	if every < MinEvery || every > MaxEvery {
		return nil, fmt.Errorf("the interval must be from %s to %s, not %s", MinEvery, MaxEvery, every)
	}
	return &Spec{every: every, anchor: time.UnixMilli(anchor.UnixMilli())}, nil
}

// Next is the first tick strictly after t (the zero time if none: a cron
// expression without a date in the next five years).
func (s *Spec) Next(t time.Time) time.Time {
	if s.cron == nil {
		if t.Before(s.anchor) {
			return s.anchor.Add(s.every)
		}
		k := t.Sub(s.anchor)/s.every + 1
		return s.anchor.Add(k * s.every)
	}
	// robfig/cron works in seconds; ticks are whole minutes.
	n := s.cron.Next(t)
	if n.IsZero() {
		return n
	}
	return time.UnixMilli(n.UnixMilli())
}

// grace is how late tick t may fire and still be on time: its period (to
// the next tick), at most MaxGrace.
func (s *Spec) grace(t time.Time) time.Duration {
	n := s.Next(t)
	if n.IsZero() {
		return MaxGrace
	}
	return min(n.Sub(t), MaxGrace)
}

// maxDue bounds the due ticks Plan counts one by one.
const maxDue = 100_000

// Plan is what one look at a schedule does.
type Plan struct {
	// Fire are the ticks that get a task, oldest first: at most two (a
	// catch-up for missed ticks under RunOnce, then the latest tick if
	// it is on time).
	Fire []time.Time
	// Missed is the number of due ticks that were missed (a lower bound
	// past maxDue).
	Missed int
	// Next is the schedule's next tick (after now); zero if it has none.
	Next time.Time
}

// Plan decides what happens when a schedule whose next tick was tick is
// looked at, at now (tick <= now). The due ticks are tick and every later
// one up to now. A due tick is on time if now is at most its grace after
// it (its period, to the next tick, and at most MaxGrace): only the latest
// due tick can be. Every other due tick was missed (no dispatcher looked
// in time: an outage, or all of them stopped), and the policy decides:
// RunOnce fires one catch-up task for them all (at the latest missed
// tick), Skip fires none. An on-time tick is fired under either policy.
// The schedule goes on at the first tick after now.
func (s *Spec) Plan(tick, now time.Time, policy Missed) Plan {
	var p Plan
	if tick.After(now) {
		p.Next = tick
		return p
	}
	last, before, n := tick, time.Time{}, 1
	for {
		next := s.Next(last)
		if next.IsZero() || next.After(now) {
			p.Next = next
			break
		}
		if n == maxDue {
			// A long outage of a frequent schedule: count no further.
			p.Next = s.Next(now)
			p.Missed = n
			if policy == RunOnce {
				p.Fire = []time.Time{last}
			}
			return p
		}
		last, before, n = next, last, n+1
	}
	onTime := now.Sub(last) <= s.grace(last)
	p.Missed = n
	if onTime {
		p.Missed--
	}
	if p.Missed > 0 && policy == RunOnce {
		catchUp := last
		if onTime {
			catchUp = before // the latest missed tick
		}
		p.Fire = append(p.Fire, catchUp)
	}
	if onTime {
		p.Fire = append(p.Fire, last)
	}
	return p
}
