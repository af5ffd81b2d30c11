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
	c.dueLoop(ctx, c.st.SubscribeSchedules, func(ctx context.Context) time.Time {
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
		return res.Next
	})
}
