package schedule

import (
	"strings"
	"testing"
	"time"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseCronErrors(t *testing.T) {
	for _, tc := range []struct{ expr, tz, want string }{
		{"", "", "empty"},
		{"* * * *", "", "5 fields"},
		{"* * * * * *", "", "5 fields"},
		{"61 * * * *", "", "5 fields"},
		{"*/0 * * * *", "", "cron expression"},
		{"* * * FOO *", "", "cron expression"},
		{"@every 5s", "", `"every"`},
		{"TZ=Europe/Paris * * * * *", "", `"timezone"`},
		{"CRON_TZ=UTC * * * * *", "", `"timezone"`},
		{"* * * * *", "Mars/Olympus", "unknown time zone"},
		{"0 0 31 2 *", "", "matches no date"},
		{"@fortnightly", "", "cron expression"},
	} {
		if _, err := ParseCron(tc.expr, tc.tz); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCron(%q, %q) = %v, want an error with %q", tc.expr, tc.tz, err, tc.want)
		}
	}
}

func TestCronNext(t *testing.T) {
	for _, tc := range []struct {
		expr, tz, after string
		want            []string // the next ticks, in UTC
	}{
		{"*/5 * * * *", "", "2026-12-07T10:02:30Z", []string{"2026-12-07T10:05:00Z", "2026-12-07T10:10:00Z"}},
		// exactly on a tick: the next one, strictly after
		{"*/5 * * * *", "", "2026-12-07T10:05:00Z", []string{"2026-12-07T10:10:00Z"}},
		{"0 9-17/4 * * MON-FRI", "", "2026-12-04T16:00:00Z", // a Friday
			[]string{"2026-12-04T17:00:00Z", "2026-12-07T09:00:00Z", "2026-12-07T13:00:00Z", "2026-12-07T17:00:00Z", "2026-12-08T09:00:00Z"}},
		{"15,45 0 1 JAN,jul *", "", "2026-06-01T00:00:00Z", []string{"2026-07-01T00:15:00Z", "2026-07-01T00:45:00Z", "2027-01-01T00:15:00Z"}},
		{"@daily", "", "2026-12-07T10:00:00Z", []string{"2026-12-08T00:00:00Z"}},
		{"@hourly", "", "2026-12-07T10:00:00Z", []string{"2026-12-07T11:00:00Z"}},
		{"0 0 29 2 *", "", "2026-03-01T00:00:00Z", []string{"2028-02-29T00:00:00Z"}},
		// both day fields restricted: either matches (the 13th, or Fridays)
		{"0 0 13 * FRI", "", "2026-02-10T00:00:00Z", []string{"2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z", "2026-02-27T00:00:00Z", "2026-03-06T00:00:00Z"}},
		{"0 9 * * *", "Europe/Paris", "2026-12-07T00:00:00Z", []string{"2026-12-07T08:00:00Z", "2026-12-08T08:00:00Z"}},
		// DST, America/New_York: 2026-03-08 02:00 EST jumps to 03:00 EDT;
		// 2026-11-01 02:00 EDT falls back to 01:00 EST.
		{"0 9 * * *", "America/New_York", "2026-03-07T15:00:00Z", []string{"2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"}},
		// 02:30 does not exist on the 8th: no tick that day
		{"30 2 * * *", "America/New_York", "2026-03-07T08:00:00Z", []string{"2026-03-09T06:30:00Z"}},
		// hourly across the spring-forward: 01:00 EST, then 03:00 EDT
		{"0 * * * *", "America/New_York", "2026-03-08T05:30:00Z", []string{"2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z", "2026-03-08T08:00:00Z"}},
		// 01:30 happens twice on 1 November (EDT, then EST): a tick at each
		{"30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", []string{"2026-11-01T05:30:00Z", "2026-11-01T06:30:00Z", "2026-11-02T06:30:00Z"}},
		// hourly across the fall-back: every hour of real time
		{"0 * * * *", "America/New_York", "2026-11-01T03:30:00Z", []string{"2026-11-01T04:00:00Z", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"}},
	} {
		s, err := ParseCron(tc.expr, tc.tz)
		if err != nil {
			t.Fatalf("ParseCron(%q, %q): %v", tc.expr, tc.tz, err)
		}
		at := utc(tc.after)
		for _, w := range tc.want {
			at = s.Next(at)
			if !at.Equal(utc(w)) {
				t.Errorf("%q in %q after %s: got %s, want %s", tc.expr, tc.tz, tc.after, at.UTC().Format(time.RFC3339), w)
				break
			}
		}
	}
}

func TestEvery(t *testing.T) {
	anchor := utc("2026-12-07T10:00:00Z").Add(250 * time.Millisecond)
	if _, err := Every(500*time.Millisecond, anchor); err == nil {
		t.Error("an interval under 1s was accepted")
	}
	if _, err := Every(400*24*time.Hour, anchor); err == nil {
		t.Error("an interval over a year was accepted")
	}
	s, err := Every(30*time.Second, anchor)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after time.Duration // from the anchor
		want  time.Duration
	}{
		{-time.Hour, 30 * time.Second},
		{0, 30 * time.Second},
		{time.Millisecond, 30 * time.Second},
		{30*time.Second - time.Millisecond, 30 * time.Second},
		{30 * time.Second, 60 * time.Second},
		{95 * time.Second, 120 * time.Second},
	} {
		if got := s.Next(anchor.Add(tc.after)); !got.Equal(anchor.Add(tc.want)) {
			t.Errorf("Next(anchor%+v) = anchor%+v, want anchor%+v", tc.after, got.Sub(anchor), tc.want)
		}
	}
}

func TestParseMissed(t *testing.T) {
	for in, want := range map[string]Missed{"": RunOnce, "run_once": RunOnce, "skip": Skip} {
		if got, err := ParseMissed(in); err != nil || got != want {
			t.Errorf("ParseMissed(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseMissed("all"); err == nil {
		t.Error("ParseMissed(all) accepted")
	}
}

func TestPlan(t *testing.T) {
	anchor := utc("2026-12-07T10:00:00Z")
	sec, _ := Every(time.Second, anchor)
	tenMin, _ := Every(10*time.Minute, anchor)
	daily, _ := ParseCron("0 0 * * *", "")
	at := func(d time.Duration) time.Time { return anchor.Add(d) }
	day := func(d time.Duration) time.Time { return utc("2026-12-08T00:00:00Z").Add(d) }
	for _, tc := range []struct {
		name      string
		spec      *Spec
		tick, now time.Time
		policy    Missed
		fire      []time.Time
		missed    int
		next      time.Time
	}{
		{"not due yet", sec, at(time.Second), at(500 * time.Millisecond), RunOnce, nil, 0, at(time.Second)},
		{"on time", sec, at(time.Second), at(time.Second), RunOnce, []time.Time{at(time.Second)}, 0, at(2 * time.Second)},
		{"a little late", sec, at(time.Second), at(1900 * time.Millisecond), Skip, []time.Time{at(time.Second)}, 0, at(2 * time.Second)},
		// 1.2 s late: tick 1 missed (later than its period), tick 2 on time
		{"one missed, run_once", sec, at(time.Second), at(2200 * time.Millisecond), RunOnce,
			[]time.Time{at(time.Second), at(2 * time.Second)}, 1, at(3 * time.Second)},
		{"one missed, skip", sec, at(time.Second), at(2200 * time.Millisecond), Skip,
			[]time.Time{at(2 * time.Second)}, 1, at(3 * time.Second)},
		// an outage of a minute: 60 due, 59 missed (1..59), tick 60 on time
		{"outage, run_once", sec, at(time.Second), at(60*time.Second + 100*time.Millisecond), RunOnce,
			[]time.Time{at(59 * time.Second), at(60 * time.Second)}, 59, at(61 * time.Second)},
		{"outage, skip", sec, at(time.Second), at(60*time.Second + 100*time.Millisecond), Skip,
			[]time.Time{at(60 * time.Second)}, 59, at(61 * time.Second)},
		// a 10-minute interval is on time up to MaxGrace late
		{"grace capped, on time", tenMin, at(10 * time.Minute), at(11 * time.Minute), Skip,
			[]time.Time{at(10 * time.Minute)}, 0, at(20 * time.Minute)},
		{"grace capped, missed, skip", tenMin, at(10 * time.Minute), at(11*time.Minute + time.Millisecond), Skip,
			nil, 1, at(20 * time.Minute)},
		{"grace capped, missed, run_once", tenMin, at(10 * time.Minute), at(11*time.Minute + time.Millisecond), RunOnce,
			[]time.Time{at(10 * time.Minute)}, 1, at(20 * time.Minute)},
		// a daily job whose dispatchers were down at midnight, back at 3:00
		{"daily, back at 3, run_once", daily, day(0), day(3 * time.Hour), RunOnce, []time.Time{day(0)}, 1, day(24 * time.Hour)},
		{"daily, back at 3, skip", daily, day(0), day(3 * time.Hour), Skip, nil, 1, day(24 * time.Hour)},
		{"daily, three days down, run_once", daily, day(0), day(72*time.Hour + time.Hour), RunOnce,
			[]time.Time{day(72 * time.Hour)}, 4, day(96 * time.Hour)},
		// past the counting bound: a lower bound, and on at the next tick
		{"huge outage", sec, at(time.Second), at(200_000*time.Second + 500*time.Millisecond), RunOnce,
			[]time.Time{at(100_000 * time.Second)}, 100_000, at(200_001 * time.Second)},
	} {
		p := tc.spec.Plan(tc.tick, tc.now, tc.policy)
		if len(p.Fire) != len(tc.fire) || p.Missed != tc.missed || !p.Next.Equal(tc.next) {
			t.Errorf("%s: plan %v missed %d next %s; want %v missed %d next %s", tc.name, p.Fire, p.Missed, p.Next, tc.fire, tc.missed, tc.next)
			continue
		}
		for i := range p.Fire {
			if !p.Fire[i].Equal(tc.fire[i]) {
				t.Errorf("%s: fire %v, want %v", tc.name, p.Fire, tc.fire)
			}
		}
	}
}
