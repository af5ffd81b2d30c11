package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"sort"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// MinFunctionMemory is the smallest memory cap a function may ask for: the
// interpreter's restored snapshot and a little room.
const MinFunctionMemory = 64 << 20

// envName is what an environment variable's name may be.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// readSettings reads a registration's "timeout" (a duration such as "10s"
// or seconds), "memory_mb", "env" and "secrets" (objects of strings),
// checked against the maxima of the nodes that run tasks (nodeMaxima).
func (h *Handler) readSettings(ctx context.Context, m map[string]json.RawMessage) (store.Settings, error) {
	var s store.Settings
	_, hasTimeout := m["timeout"]
	_, hasMemory := m["memory_mb"]
	var maxima faastype.Limits
	if hasTimeout || hasMemory {
		var err error
		if maxima, err = h.nodeMaxima(ctx); err != nil {
			return s, err
		}
	}
	if raw, ok := m["timeout"]; ok && string(raw) != "null" {
		d, err := durationValue(raw)
		if err != nil || d <= 0 {
			return s, errorf(http.StatusUnprocessableEntity, `field "timeout" must be a positive duration such as "10s" or a number of seconds`)
		}
		if d > maxima.Timeout {
			return s, errorf(http.StatusUnprocessableEntity, `field "timeout": %s is over the nodes' limit of %s (GET /runtime)`, d, maxima.Timeout)
		}
		if d < time.Millisecond {
			return s, errorf(http.StatusUnprocessableEntity, `field "timeout" must be at least 1ms`)
		}
		s.Timeout = d
	}
	if raw, ok := m["memory_mb"]; ok && string(raw) != "null" {
		var mib uint64
		if err := json.Unmarshal(raw, &mib); err != nil {
			return s, errorf(http.StatusUnprocessableEntity, `field "memory_mb" must be a whole number of MiB`)
		}
		if mib<<20 < MinFunctionMemory || mib<<20 > maxima.MemoryBytes || mib > 1<<20 {
			return s, errorf(http.StatusUnprocessableEntity, `field "memory_mb" must be from %d to %d (the nodes' limit, GET /runtime), not %d`,
				MinFunctionMemory>>20, maxima.MemoryBytes>>20, mib)
		}
		s.MemoryBytes = mib << 20
	}
	var err error
	if s.Env, err = readEnv(m, "env"); err != nil {
		return s, err
	}
	if s.Secrets, err = readEnv(m, "secrets"); err != nil {
		return s, err
	}
	size := 0
	for k, v := range s.Env {
		if _, both := s.Secrets[k]; both {
			return s, errorf(http.StatusUnprocessableEntity, "%q is in both env and secrets", k)
		}
		size += len(k) + len(v) + 1
	}
	for k, v := range s.Secrets {
		size += len(k) + len(v) + 1
	}
	if n := len(s.Env) + len(s.Secrets); n > faastype.MaxEnvVars || size > faastype.MaxEnvBytes {
		return s, errorf(http.StatusRequestEntityTooLarge, "env and secrets hold %d variables, %d bytes; at most %d variables, %d bytes",
			n, size, faastype.MaxEnvVars, faastype.MaxEnvBytes)
	}
	return s, nil
}

// readEnv reads an object of environment variables (absent or null: none).
func readEnv(m map[string]json.RawMessage, field string) (map[string]string, error) {
	raw, ok := m[field]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '{' {
		return nil, errorf(http.StatusUnprocessableEntity, "field %q must be an object of strings: {\"NAME\": \"value\"}", field)
	}
	var env map[string]string
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, errorf(http.StatusUnprocessableEntity, "field %q must be an object of strings: {\"NAME\": \"value\"}", field)
	}
	for k, v := range env {
		if !envName.MatchString(k) || len(k) > 256 {
			return nil, errorf(http.StatusUnprocessableEntity, "field %q: %q is not a variable name (letters, digits and _, not starting with a digit)",
				field, truncate(k, 60))
		}
		if bytes.IndexByte([]byte(v), 0) >= 0 {
			return nil, errorf(http.StatusUnprocessableEntity, "field %q: the value of %s holds a NUL byte", field, k)
		}
	}
	if len(env) == 0 {
		return nil, nil
	}
	return env, nil
}

// nodeMaxima are the largest timeout and memory a function may ask for:
// the smallest of the live nodes' limits (dispatchers and workers) (every node must be able to run
// it), or the platform defaults when no node is live.
func (h *Handler) nodeMaxima(ctx context.Context) (faastype.Limits, error) {
	nodes, err := h.st.Nodes(ctx)
	if err != nil {
		return faastype.Limits{}, err
	}
	return maximaOf(nodes), nil
}

// maximaOf is nodeMaxima for the nodes read.
func maximaOf(nodes []store.Node) faastype.Limits {
	var lim faastype.Limits
	for _, n := range nodes {
		// A push or pull dispatcher without workers yet counts too: it
		// caps its tasks' timeout itself.
		if !n.Alive {
			continue
		}
		l := n.Limits.WithDefaults()
		if lim.Timeout == 0 || l.Timeout < lim.Timeout {
			lim.Timeout = l.Timeout
		}
		if lim.MemoryBytes == 0 || l.MemoryBytes < lim.MemoryBytes {
			lim.MemoryBytes = l.MemoryBytes
		}
	}
	return lim.WithDefaults()
}

// functionLimitsJSON is what POST /register_function accepts as a
// function's own settings.
type functionLimitsJSON struct {
	MaxTimeoutSeconds float64 `json:"max_timeout_seconds" doc:"the largest \"timeout\" (the smallest of the live nodes' timeouts)"`
	MinMemoryBytes    uint64  `json:"min_memory_bytes" doc:"the smallest \"memory_mb\", in bytes"`
	MaxMemoryBytes    uint64  `json:"max_memory_bytes" doc:"the largest \"memory_mb\", in bytes (the smallest of the live nodes' caps)"`
	MaxEnvVars        int     `json:"max_env_vars" doc:"variables in env and secrets together"`
	MaxEnvBytes       int     `json:"max_env_bytes" doc:"bytes of their names and values together"`
}

func functionLimitsOf(nodes []store.Node) functionLimitsJSON {
	lim := maximaOf(nodes)
	return functionLimitsJSON{MaxTimeoutSeconds: lim.Timeout.Seconds(), MinMemoryBytes: MinFunctionMemory,
		MaxMemoryBytes: lim.MemoryBytes, MaxEnvVars: faastype.MaxEnvVars, MaxEnvBytes: faastype.MaxEnvBytes}
}

// functionResponse is GET /function/{id}.
type functionResponse struct {
	FunctionID  string                `json:"function_id"`
	Name        string                `json:"name"`
	Kind        string                `json:"kind" enum:"dill,source" doc:"dill: registered as a pickle; source: as source text"`
	Entrypoint  string                `json:"entrypoint,omitempty" doc:"a source function's entry point"`
	Isolation   faastype.Isolation    `json:"isolation" enum:"warm,fresh"`
	CreatedAt   time.Time             `json:"created_at"`
	Modules     []string              `json:"bundle_modules" doc:"the top-level modules and packages of its bundle; empty for none"`
	Retries     *faastype.RetryPolicy `json:"retries" doc:"its tasks' retry policy; null for none"`
	Timeout     *float64              `json:"timeout_seconds" doc:"its own timeout; null: the node's"`
	MemoryBytes *uint64               `json:"memory_bytes" doc:"its own memory cap; null: the node's"`
	Env         map[string]string     `json:"env" doc:"its environment variables"`
	Secrets     []string              `json:"secrets" doc:"the names of its secret variables (their values are never returned)"`
}

// getFunctionInfo: GET /function/{function_id}, a function of the
// caller's tenant with its settings; secrets by name only.
func (h *Handler) getFunctionInfo(w http.ResponseWriter, r *http.Request) error {
	id, err := parseID("function_id", chi.URLParam(r, "function_id"))
	if err != nil {
		return err
	}
	f, err := h.st.GetFunction(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && f.Owner != tenantOf(r)) {
		return errorf(http.StatusNotFound, "function %s not found", id)
	}
	if err != nil {
		return err
	}
	resp := functionResponse{FunctionID: f.ID, Name: f.Name, Kind: "dill", Isolation: f.Isolation, CreatedAt: f.CreatedAt.UTC(),
		Modules: f.BundleModules, Retries: f.Retry, Env: f.Settings.Env, Secrets: make([]string, 0, len(f.Settings.Secrets))}
	if f.Source != "" {
		resp.Kind, resp.Entrypoint = "source", f.Entrypoint
	}
	if resp.Modules == nil {
		resp.Modules = []string{}
	}
	if resp.Env == nil {
		resp.Env = map[string]string{}
	}
	for k := range f.Settings.Secrets {
		resp.Secrets = append(resp.Secrets, k)
	}
	sort.Strings(resp.Secrets)
	if f.Settings.Timeout > 0 {
		secs := f.Settings.Timeout.Seconds()
		resp.Timeout = &secs
	}
	if f.Settings.MemoryBytes > 0 {
		mb := f.Settings.MemoryBytes
		resp.MemoryBytes = &mb
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
