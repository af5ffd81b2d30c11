// Package api owns the HTTP interface of WasmFaaS: the course project's
// wire protocol (POST /register_function, POST /execute_function,
// GET /status/{task_id}, GET /result/{task_id}); task management
// (POST /execute_batch, DELETE /task/{task_id}, GET /tasks); schedules
// (POST /schedules and the routes under it, schedules.go); completion
// webhooks (callback_url, GET /webhook_secret, webhooks.go); GET /runtime and
// GET /healthz; the API description (GET /openapi.json, GET /docs,
// openapi.go); cluster-wide Prometheus metrics (GET /metrics, metrics.go);
// the dashboard (GET /, GET /dashboard/state, GET /dashboard/series and
// GET /dashboard/task/{task_id}: dashboard.go, dashboard_charts.go,
// dashboard_task.go); the
// validation of every request, including a structural check of the pickled
// payloads that never unpickles them (pickle.go); long-polling of results;
// JSON errors, request logging and panic recovery; and the HTTP server's
// lifecycle (Serve).
//
// Every error is a JSON body {"detail": "..."}: 400 for a payload that is
// not what the route needs, 401 for a missing or invalid API token (when
// tokens are configured), 404 for an unknown id or route (or another
// tenant's), 405 for a wrong method, 413 for a body over the limit, 422 for
// a body that is not the expected JSON object, 429 over a tenant's request
// rate or queued-task quota, 500 for a bug, 503 when Redis does not answer.
//
// Tenants: see auth.go.
package api

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmfaas/wasmfaas/bundle"
	"github.com/wasmfaas/wasmfaas/hooks"
	"github.com/wasmfaas/wasmfaas/store"
)

// Options configure the handler. Zero fields take defaults.
type Options struct {
	// MaxBodyBytes caps a request body. Default 32 MiB.
	MaxBodyBytes int64
	// MaxWait caps the long-poll of GET /result?wait=. Default 60s.
	MaxWait time.Duration
	// MaxBatch caps the calls of one POST /execute_batch. Default 1000.
	MaxBatch int
	// Logger receives one line per request and the errors. Default
	// slog.Default().
	Logger *slog.Logger
	// Auth, when set (NewAuth), turns authentication on: every route but
	// GET /healthz, /, /docs and /openapi.json needs a bearer token, and a
	// request acts for its token's tenant. Nil: the API is open and every
	// request acts for the default tenant "".
	Auth *Auth
	// RateLimit is how many requests per second one tenant may make,
	// sustained, to this API process (each process counts its own);
	// RateBurst how many at once (default twice RateLimit). Over it: 429
	// with Retry-After. 0: no limit. The public routes are not counted.
	RateLimit float64
	RateBurst int
	// BundleLimits cap the modules and packages a function may be
	// registered with (files, uncompressed bytes). Zero fields take
	// bundle.DefaultLimits.
	BundleLimits bundle.Limits
	// DashboardSample is how often this instance samples the task
	// counters for the dashboard's charts (DefaultDashboardSample for the
	// servers). The samples go to Redis, one per period whichever
	// instance takes it. 0: this instance does not sample.
	DashboardSample time.Duration
	// Webhooks check the callback URLs of functions and calls (their
	// Guard; nil: the default one) and sign their webhooks (their Signer;
	// nil: webhooks are off, and a callback URL is refused with 400).
	Webhooks hooks.Settings

	// maxQueued is the store's cap of queued tasks per tenant, for the
	// API description.
	maxQueued int
}

// Defaults of Options.
const (
	DefaultMaxBodyBytes = 32 << 20
	DefaultMaxWait      = 60 * time.Second
	DefaultMaxBatch     = 1000
)

func (o Options) withDefaults() Options {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.DashboardSample < 0 {
		o.DashboardSample = 0
	}
	if o.Webhooks.Guard == nil {
		o.Webhooks.Guard = hooks.NewGuard(nil, nil)
	}
	if o.RateLimit < 0 {
		o.RateLimit = 0
	}
	if o.RateLimit > 0 && o.RateBurst <= 0 {
		o.RateBurst = max(1, int(math.Ceil(2*o.RateLimit)))
	}
	return o
}

// Handler serves the API. Close it when done: it holds a Redis
// subscription for long-polls.
type Handler struct {
	st     *store.Store
	opts   Options
	log    *slog.Logger
	waiter *store.Waiter
	stop   context.CancelFunc
	mux    *chi.Mux
	bg     sync.WaitGroup // the dashboard's sampler

	auth    *Auth    // nil: open
	limiter *limiter // nil: no rate limit
	fns     *fnCache // registered functions, read once from Redis

	procMetrics prometheus.Gatherer // this process's Go and process metrics
	openapiJSON []byte              // GET /openapi.json
	docsHTML    []byte              // GET /docs
	docsCSP     string
}

var _ http.Handler = (*Handler)(nil)

// New returns the API handler on st.
func New(st *store.Store, opts Options) *Handler {
	opts = opts.withDefaults()
	opts.maxQueued = st.MaxQueued()
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handler{
		st:      st,
		opts:    opts,
		log:     opts.Logger,
		waiter:  st.NewWaiter(ctx),
		stop:    cancel,
		auth:    opts.Auth,
		limiter: newLimiter(opts.RateLimit, opts.RateBurst),
		fns:     newFnCache(64 << 20),
	}
	r := chi.NewRouter()
	r.Use(h.requestID, h.logRequests, h.recoverPanics, h.guard)
	r.NotFound(h.notFound)
	r.MethodNotAllowed(h.methodNotAllowed)
	r.Post("/register_function", h.handle(h.registerFunction))
	r.Post("/execute_function", h.handle(h.executeFunction))
	r.Post("/execute_batch", h.handle(h.executeBatch))
	r.Get("/function/{function_id}", h.handle(h.getFunctionInfo))
	r.Get("/status/{task_id}", h.handle(h.status))
	r.Get("/result/{task_id}", h.handle(h.result))
	r.Delete("/task/{task_id}", h.handle(h.cancelTask))
	r.Get("/tasks", h.handle(h.listTasks))
	r.Post("/schedules", h.handle(h.createSchedule))
	r.Get("/schedules", h.handle(h.listSchedules))
	r.Get("/schedules/{schedule_id}", h.handle(h.getSchedule))
	r.Post("/schedules/{schedule_id}/pause", h.handle(h.setSchedule("pause")))
	r.Post("/schedules/{schedule_id}/resume", h.handle(h.setSchedule("resume")))
	r.Delete("/schedules/{schedule_id}", h.handle(h.setSchedule("delete")))
	r.Get("/webhook_secret", h.handle(h.webhookSecret))
	r.Get("/runtime", h.handle(h.runtimeInfo))
	r.Get("/healthz", h.healthz)
	r.Get("/metrics", h.metrics)
	r.Get("/openapi.json", h.openapi)
	r.Get("/docs", h.docs)
	r.Get("/", h.dashboard)
	r.Get("/dashboard/state", h.handle(h.dashboardState))
	r.Get("/dashboard/series", h.handle(h.dashboardSeries))
	r.Get("/dashboard/task/{task_id}", h.handle(h.dashboardTask))
	h.mux = r
	h.procMetrics = processMetrics()
	h.openapiJSON, h.docsHTML = mustRenderDocs(h.opts)
	h.docsCSP = pageCSP(h.docsHTML)
	if every := opts.DashboardSample; every > 0 {
		h.bg.Add(1)
		go func() {
			defer h.bg.Done()
			h.sampleLoop(ctx, every)
		}()
	}
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Close ends the long-poll subscription; pending long-polls answer with the
// task's current state.
func (h *Handler) Close() {
	h.stop()
	h.waiter.Close()
	h.bg.Wait()
}
