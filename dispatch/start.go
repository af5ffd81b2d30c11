package dispatch

import (
	"context"
	"log/slog"
	"sync"
)

// started is a dispatcher's core with its background loops running: what
// every mode does first. The loops (renewing, reaping, listening) run on a
// context of their own, bgCtx, not the caller's: when the caller's context
// ends, a mode stops claiming but keeps renewing the leases of the tasks it
// lets drain, and ends the loops with close.
type started struct {
	core   *Core
	log    *slog.Logger // the core's, with the mode
	bgCtx  context.Context
	stopBg context.CancelFunc
	bg     sync.WaitGroup
}

func start(cfg Config, mode string) (*started, error) {
	core, err := NewCore(cfg)
	if err != nil {
		return nil, err
	}
	s := &started{core: core, log: core.log.With("mode", mode)}
	s.bgCtx, s.stopBg = context.WithCancel(context.Background())
	if err := core.Start(s.bgCtx, &s.bg); err != nil {
		s.stopBg()
		s.bg.Wait()
		return nil, err
	}
	return s, nil
}

// close stops the background loops and waits for them.
func (s *started) close() {
	s.stopBg()
	s.bg.Wait()
}
