package dispatch

import (
	"context"
	"time"
)

// scheduleLoop fires the schedules' ticks when they are due: it sleeps
// until the earliest next tick the store reports, the poll interval, or a
// schedule created or resumed with an earlier tick (announced by the
// store), then calls FireDue. Every dispatcher runs one, with no leader:
// the store's compare-and-set fires each tick once however many look, and
// a dispatcher that dies leaves the ticks to the others.
func (c *Core) scheduleLoop(ctx context.Context) {
	announced := make(chan time.Time, 1)
	go func() {
		for ctx.Err() == nil {
			ticks, stop := c.st.SubscribeSchedules(ctx)
			for text := range ticks {
				due, err := announcedTime(text)
				if err != nil {
					continue
				}
				select {
				case announced <- due:
				default: // one is pending: the loop looks at the store anyway
				}
			}
			stop()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := time.Time{} // when the timer fires
	for {
		select {
		case <-ctx.Done():
			return
		case due := <-announced:
			if !next.IsZero() && !due.Before(next) {
				continue
			}
			timer.Reset(max(time.Until(due), 0))
			next = due
			continue
		case <-timer.C:
		}
		res, err := c.st.FireDue(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			c.log.Error("firing due schedules failed", "err", err)
		}
		if res.Created > 0 {
			c.Wake()
		}
		if res.Missed > 0 {
			c.log.Warn("schedules missed ticks (no dispatcher looked in time); their missed-tick policy applied", "ticks", res.Missed)
		}
		if res.Skipped > 0 {
			c.log.Warn("schedule ticks skipped: their task could not be made (see GET /schedules/{id})", "ticks", res.Skipped)
		}
		wait := c.cfg.Poll
		if !res.Next.IsZero() {
			wait = min(wait, max(time.Until(res.Next), 0))
		}
		next = time.Now().Add(wait)
		timer.Reset(wait)
	}
}
