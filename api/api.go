// Package api owns the HTTP interface of WasmFaaS: the course project's
// wire protocol (POST /register_function, POST /execute_function,
// GET /status/{task_id}, GET /result/{task_id}) plus GET /healthz; the
// validation of every request, including a structural check of the pickled
// payloads that never unpickles them (pickle.go); long-polling of results;
// JSON errors, request logging and panic recovery; and the HTTP server's
// lifecycle (Serve).
//
// Every error is a JSON body {"detail": "..."}: 400 for a payload that is
// not what the route needs, 404 for an unknown id or route, 405 for a wrong
// method, 413 for a body over the limit, 422 for a body that is not the
// expected JSON object, 500 for a bug, 503 when Redis does not answer.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/wasmfaas/wasmfaas/store"
)

// Options configure the handler. Zero fields take defaults.
type Options struct {
	// MaxBodyBytes caps a request body. Default 32 MiB.
	MaxBodyBytes int64
	// MaxWait caps the long-poll of GET /result?wait=. Default 60s.
	MaxWait time.Duration
	// Logger receives one line per request and the errors. Default
	// slog.Default().
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultMaxBodyBytes = 32 << 20
	DefaultMaxWait      = 60 * time.Second
)

// Handler serves the API. Close it when done: it holds a Redis
// subscription for long-polls.
type Handler struct {
	st     *store.Store
	opts   Options
	log    *slog.Logger
	waiter *store.Waiter
	stop   context.CancelFunc
	mux    *chi.Mux
}

var _ http.Handler = (*Handler)(nil)

// New returns the API handler on st.
func New(st *store.Store, opts Options) *Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handler{
		st:     st,
		opts:   opts,
		log:    opts.Logger,
		waiter: st.NewWaiter(ctx),
		stop:   cancel,
	}
	r := chi.NewRouter()
	r.Use(h.requestID, h.logRequests, h.recoverPanics)
	r.NotFound(h.notFound)
	r.MethodNotAllowed(h.methodNotAllowed)
	r.Post("/register_function", h.handle(h.registerFunction))
	r.Post("/execute_function", h.handle(h.executeFunction))
	r.Get("/status/{task_id}", h.handle(h.status))
	r.Get("/result/{task_id}", h.handle(h.result))
	r.Get("/healthz", h.healthz)
	r.Get("/runtime", h.handle(h.runtimeInfo))
	h.mux = r
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// Close ends the long-poll subscription; pending long-polls answer with the
// task's current state.
func (h *Handler) Close() {
	h.stop()
	h.waiter.Close()
}
