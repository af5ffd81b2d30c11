package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/taskview"
)

// Settings are what both the API (checking callback URLs, telling a tenant
// its key) and the deliverers need.
type Settings struct {
	Guard  *Guard
	Signer *Signer // nil: webhooks are off (no secret configured)
}

// Defaults of Config.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxAge      = time.Hour
	DefaultMaxAttempts = 20
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = 5 * time.Minute
)

// Config configure a Deliverer. Zero fields take defaults.
type Config struct {
	Store    *store.Store
	Settings Settings
	// Timeout bounds one delivery attempt (connecting, sending, the
	// receiver's answer). Default 10s.
	Timeout time.Duration
	// MaxAge is how long after the task became final attempts go on;
	// MaxAttempts how many are made at most. Then the webhook is recorded
	// undeliverable. Defaults 1h and 20.
	MaxAge      time.Duration
	MaxAttempts int
	// Backoff is the delay before the first retry; each next one doubles,
	// up to MaxBackoff, and each is drawn from [d/2, d] (jitter).
	// Defaults 1s and 5m.
	Backoff, MaxBackoff time.Duration
	// Poll is how often the deliverer looks for due webhooks when none is
	// due sooner and no new one was announced (a safety net: it is woken
	// when a task's webhook is queued, and sleeps until the earliest retry
	// it knows of). Default 2s.
	Poll time.Duration
	// Concurrency is how many webhooks one deliverer posts at once.
	// Default 8.
	Concurrency int
	Logger      *slog.Logger
	// Client, for tests; default Settings.Guard.Client(Timeout).
	Client *http.Client
	// Now, for tests; default time.Now.
	Now func() time.Time
}

// Deliverer posts the completion webhooks the store queues. Any number may
// run (one per dispatcher): the store leases each delivery to one.
type Deliverer struct {
	cfg Config
	log *slog.Logger
}

// NewDeliverer checks cfg. Webhooks need a Signer: without one, there is
// nothing to sign with, and NewDeliverer fails.
func NewDeliverer(cfg Config) (*Deliverer, error) {
	if cfg.Store == nil {
		return nil, errors.New("hooks: no store")
	}
	if cfg.Settings.Signer == nil {
		return nil, errors.New("hooks: no webhook secret")
	}
	if cfg.Settings.Guard == nil {
		cfg.Settings.Guard = NewGuard(nil, nil)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	cfg.MaxBackoff = max(cfg.MaxBackoff, cfg.Backoff)
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Client == nil {
		cfg.Client = cfg.Settings.Guard.Client(cfg.Timeout)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Deliverer{cfg: cfg, log: cfg.Logger.With("component", "webhooks")}, nil
}

// lease is how long a claimed delivery is this deliverer's: an attempt's
// timeout and a margin for recording it.
func (d *Deliverer) lease() time.Duration { return d.cfg.Timeout + 5*time.Second }

// Run delivers due webhooks until ctx ends; attempts under way then get a
// second to finish (one cut short is not recorded: its lease expires and
// another deliverer makes it again, with the same Idempotency-Key).
func (d *Deliverer) Run(ctx context.Context) {
	slots := make(chan struct{}, d.cfg.Concurrency)
	freed := make(chan struct{}, 1)
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer func() {
		t := time.AfterFunc(time.Second, cancelReqs)
		wg.Wait()
		t.Stop()
		cancelReqs()
	}()
	announced := make(chan struct{}, 1)
	go func() {
		for ctx.Err() == nil {
			ids, stop := d.cfg.Store.SubscribeHooks(ctx)
			for range ids {
				select {
				case announced <- struct{}{}:
				default: // one is pending: the loop claims what is due anyway
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
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-freed:
		case <-announced:
		}
		free := d.cfg.Concurrency - len(slots)
		wait := d.cfg.Poll
		if free > 0 {
			now := d.cfg.Now()
			claimed, next, err := d.cfg.Store.ClaimDeliveries(ctx, now, d.lease(), free)
			if err != nil && ctx.Err() == nil {
				d.log.Error("claiming due webhooks failed", "err", err)
			}
			for _, dl := range claimed {
				slots <- struct{}{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					d.deliver(reqCtx, dl)
					<-slots
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
			}
			if !next.IsZero() {
				wait = min(wait, max(next.Sub(now), 0))
			}
			if len(claimed) == free {
				wait = 0 // maybe more are due
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// deliver makes one attempt of claimed delivery dl and records it.
func (d *Deliverer) deliver(ctx context.Context, dl store.Delivery) {
	t, err := d.cfg.Store.GetTaskSummary(ctx, dl.TaskID)
	if errors.Is(err, store.ErrNotFound) {
		d.record(dl, store.DeliveryRecord{Outcome: store.Undeliverable, Error: "the task is gone"}) // drops the entry
		return
	}
	if err != nil {
		d.log.Warn("reading a task for its webhook failed; retried after the lease", "task", dl.TaskID, "err", err)
		return
	}
	if t.CallbackURL == "" {
		return
	}
	started := d.cfg.Now()
	code, err := d.post(ctx, t, dl.Attempt)
	if ctx.Err() != nil {
		return // stopping: not recorded, the lease expires
	}
	now := d.cfg.Now()
	log := d.log.With("task", t.ID, "owner", t.Owner, "attempt", dl.Attempt, "took", now.Sub(started).Round(time.Millisecond))
	if err == nil && code >= 200 && code < 300 {
		d.record(dl, store.DeliveryRecord{Outcome: store.Delivered, At: now})
		log.Debug("webhook delivered", "status", code)
		return
	}
	reason := ""
	switch {
	case err != nil:
		reason = err.Error()
	case code >= 300 && code < 400:
		reason = fmt.Sprintf("HTTP %d (redirects are not followed)", code)
	default:
		reason = fmt.Sprintf("HTTP %d", code)
	}
	delay := Backoff(dl.Attempt, d.cfg.Backoff, d.cfg.MaxBackoff, rand.Float64())
	finished := t.FinishedAt
	if finished.IsZero() {
		finished = now
	}
	switch {
	case denied(err):
		log.Warn("webhook undeliverable: its address is not allowed", "err", reason)
		d.record(dl, store.DeliveryRecord{Outcome: store.Undeliverable, At: now, Error: reason})
	case dl.Attempt >= d.cfg.MaxAttempts || now.Add(delay).After(finished.Add(d.cfg.MaxAge)):
		log.Warn("webhook undeliverable: out of attempts", "err", reason, "max_attempts", d.cfg.MaxAttempts, "max_age", d.cfg.MaxAge)
		d.record(dl, store.DeliveryRecord{Outcome: store.Undeliverable, At: now, Error: reason})
	default:
		log.Info("webhook attempt failed; retrying", "err", reason, "in", delay.Round(time.Millisecond))
		d.record(dl, store.DeliveryRecord{Outcome: store.RetryDelivery, At: now, NextAt: now.Add(delay), Error: reason})
	}
}

// record writes an attempt's outcome, with a context of its own: it should
// land even while the deliverer stops.
func (d *Deliverer) record(dl store.Delivery, r store.DeliveryRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, err := d.cfg.Store.RecordDelivery(ctx, dl, r)
	if err != nil {
		d.log.Error("recording a webhook attempt failed; retried after the lease", "task", dl.TaskID, "err", err)
	} else if !ok && r.Error != "the task is gone" {
		d.log.Warn("webhook attempt not recorded: claimed again since (its lease expired)", "task", dl.TaskID, "attempt", dl.Attempt)
	}
}

// post sends t's webhook once and returns the receiver's status code.
func (d *Deliverer) post(ctx context.Context, t store.Task, attempt int) (int, error) {
	u, err := d.cfg.Settings.Guard.CheckURL(t.CallbackURL)
	if err != nil {
		return 0, err
	}
	body, err := taskview.WebhookBody(t)
	if err != nil {
		return 0, fmt.Errorf("encoding the body: %v", err)
	}
	now := d.cfg.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	key := d.cfg.Settings.Signer.Key(t.Owner)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "WasmFaaS-Webhook/1")
	// Spelled as documented (header names are case-insensitive; Set would
	// send X-Wasmfaas-...).
	req.Header["X-WasmFaaS-Signature"] = []string{Sign(key, now, body)}
	req.Header["X-WasmFaaS-Timestamp"] = []string{strconv.FormatInt(now.Unix(), 10)}
	req.Header["X-WasmFaaS-Task-Id"] = []string{t.ID}
	req.Header["X-WasmFaaS-Delivery-Attempt"] = []string{strconv.Itoa(attempt)}
	req.Header.Set("Idempotency-Key", IdempotencyKey(t))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return 0, cleanErr(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// IdempotencyKey is the Idempotency-Key of t's webhook: "<task id>:<runs
// of the task>", the same for every delivery attempt of it, so that a
// receiver that got one (the answer lost, say) can tell a repeat.
func IdempotencyKey(t store.Task) string { return t.ID + ":" + strconv.Itoa(t.Attempts) }

// cleanErr drops the method and URL an *url.Error repeats.
func cleanErr(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("timed out: %w", inner)
			}
			return inner
		}
	}
	return err
}

// Backoff is the delay after failed attempt n (from 1): base, 2 base,
// 4 base, ... up to most, drawn from [d/2, d] with u in [0, 1).
func Backoff(n int, base, most time.Duration, u float64) time.Duration {
	d := base
	for i := 1; i < n && d < most; i++ {
		d *= 2
	}
	d = min(d, most)
	return d/2 + time.Duration(u*float64(d/2))
}
