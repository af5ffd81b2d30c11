// Package ratelog is the one rate-limited logger of WasmFaaS: a log line
// per key at most once per interval (a golang.org/x/time/rate limiter per
// key), saying how many lines of that key it held back since the last one.
// Dispatchers, workers and the wire transport use it for what a peer can
// make them log at will (malformed messages, failed authentications,
// reconnects), so that a misbehaving or hostile peer cannot flood the log.
package ratelog

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxKeys bounds the keys remembered; past it they are all forgotten (the
// next line of each is logged), which only ever logs more, never less.
const maxKeys = 1000

// Logger logs at most one line per key and interval.
type Logger struct {
	log   *slog.Logger
	every rate.Limit

	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	lim        *rate.Limiter
	suppressed int
}

// New returns a Logger on l (nil: slog.Default()) that lets one line per
// key through every interval.
func New(l *slog.Logger, every time.Duration) *Logger {
	if l == nil {
		l = slog.Default()
	}
	return &Logger{log: l, every: rate.Every(every), keys: map[string]*entry{}}
}

// Warn logs msg unless a line with the same key was logged less than the
// interval ago.
func (r *Logger) Warn(key, msg string, args ...any) { r.Log(slog.LevelWarn, key, msg, args...) }

// Error is Warn at the error level.
func (r *Logger) Error(key, msg string, args ...any) { r.Log(slog.LevelError, key, msg, args...) }

// Log is Warn at any level.
func (r *Logger) Log(level slog.Level, key, msg string, args ...any) {
	r.mu.Lock()
	e := r.keys[key]
	if e == nil {
		if len(r.keys) >= maxKeys {
			clear(r.keys)
		}
		e = &entry{lim: rate.NewLimiter(r.every, 1)}
		r.keys[key] = e
	}
	if !e.lim.Allow() {
		e.suppressed++
		r.mu.Unlock()
		return
	}
	n := e.suppressed
	e.suppressed = 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed_since_last", n)
	}
	r.log.Log(context.Background(), level, msg, args...)
}
