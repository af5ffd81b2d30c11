package api

import (
	"net/http"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/store"
)

// limitsJSON are faastype.Limits in the units a client reads.
type limitsJSON struct {
	TimeoutSeconds float64 `json:"timeout_seconds" doc:"wall-clock limit per task"`
	MemoryBytes    uint64  `json:"memory_bytes" doc:"memory of the interpreter"`
	OutputBytes    int     `json:"output_bytes" doc:"captured stdout and stderr, each"`
	ResultBytes    int     `json:"result_bytes" doc:"pickled result"`
	ArgsBytes      int     `json:"args_bytes" doc:"pickled function and arguments, each"`
	TmpBytes       int     `json:"tmp_bytes" doc:"the in-memory /tmp"`
}

func limitsView(l faastype.Limits) limitsJSON {
	l = l.WithDefaults()
	return limitsJSON{TimeoutSeconds: l.Timeout.Seconds(), MemoryBytes: l.MemoryBytes, OutputBytes: l.OutputBytes,
		ResultBytes: l.ResultBytes, ArgsBytes: l.ArgBytes, TmpBytes: l.TmpBytes}
}

type nodeJSON struct {
	Name      string             `json:"name"`
	Role      string             `json:"role" doc:"dispatcher, push-worker or pull-worker"`
	Mode      string             `json:"mode,omitempty" doc:"a dispatcher's mode: local, push or pull"`
	Sandboxes int                `json:"sandboxes"`
	Busy      int                `json:"busy"`
	Isolation faastype.Isolation `json:"isolation" enum:"warm,fresh" doc:"fresh: the node forces a pristine interpreter for every task"`
	Limits    limitsJSON         `json:"limits"`
	Alive     bool               `json:"alive" doc:"reported within the last 10 s"`
	Walls     string             `json:"walls" doc:"the OS-level walls its sandbox processes put up around themselves: \"up: ...; missing: ... (why)\" (a push or pull dispatcher: each distinct report of its workers, joined by |)"`
}

// bundleLimitsJSON are the caps of the modules and packages a function may
// be registered with.
type bundleLimitsJSON struct {
	MaxFiles    int   `json:"max_files" doc:"files in a bundle (413 beyond)"`
	MaxBytes    int64 `json:"max_bytes" doc:"bytes of a bundle's files, uncompressed (413 beyond)"`
	MaxZipBytes int64 `json:"max_zip_bytes" doc:"bytes of a bundle as stored, compressed (413 beyond)"`
}

type runtimeResponse struct {
	Python string `json:"python" doc:"the sandbox's Python version: pickle functions with the same one, or register source text"`
	Dill   string `json:"dill" doc:"the sandbox's dill version"`
	// Limits are those of the live nodes when they agree, else the
	// platform defaults; Nodes has each node's own.
	Limits       limitsJSON `json:"limits"`
	LimitsSource string     `json:"limits_source" enum:"nodes,defaults" doc:"nodes: the live nodes' limits, which agree; defaults: the platform defaults"` // "nodes" or "defaults"
	Isolation    []string   `json:"isolation_levels" doc:"the values of the isolation field of POST /register_function"`
	Nodes        []nodeJSON `json:"nodes" doc:"dispatchers and workers that reported in the last 10 minutes"`
	// Bundles are this API's caps on registration bundles.
	Bundles bundleLimitsJSON `json:"bundle_limits" doc:"caps on the modules and packages sent with a function (\"modules\", \"bundle\")"`
	// FunctionLimits bound a function's own settings at registration.
	FunctionLimits functionLimitsJSON `json:"function_limits" doc:"what a function may ask for itself at registration (timeout, memory_mb, env, secrets)"`
}

// runtimeInfo: GET /runtime, what a function runs on: the sandbox's Python
// and dill (pickle with the same versions, or register source text) and
// the limits of the dispatchers and workers that run tasks.
func (h *Handler) runtimeInfo(w http.ResponseWriter, r *http.Request) error {
	nodes, err := h.st.Nodes(r.Context())
	if err != nil {
		return err
	}
	resp := runtimeResponse{
		Python:       faastype.PythonVersion,
		Dill:         faastype.DillVersion,
		Limits:       limitsView(faastype.DefaultLimits),
		LimitsSource: "defaults",
		Isolation:    []string{string(faastype.Warm), string(faastype.Fresh)},
		Nodes:        []nodeJSON{},
	}
	bl := h.opts.BundleLimits.WithDefaults()
	resp.Bundles = bundleLimitsJSON{MaxFiles: bl.MaxFiles, MaxBytes: bl.MaxBytes, MaxZipBytes: bl.MaxZipBytes}
	resp.FunctionLimits = functionLimitsOf(nodes)
	var live []store.Node
	for _, n := range nodes {
		resp.Nodes = append(resp.Nodes, nodeJSON{Name: n.Name, Role: n.Role, Mode: n.Mode, Sandboxes: n.Sandboxes,
			Busy: n.Busy, Isolation: n.Isolation, Limits: limitsView(n.Limits), Alive: n.Alive, Walls: n.Stats.Walls})
		if n.Alive && n.Sandboxes > 0 {
			live = append(live, n)
		}
	}
	if len(live) > 0 {
		agree := true
		for _, n := range live[1:] {
			agree = agree && n.Limits.WithDefaults() == live[0].Limits.WithDefaults()
		}
		if agree {
			resp.Limits, resp.LimitsSource = limitsView(live[0].Limits), "nodes"
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
