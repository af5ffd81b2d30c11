package api

import (
	"net/http"

	"github.com/wasmfaas/wasmfaas/runtime"
	"github.com/wasmfaas/wasmfaas/store"
)

// limitsJSON are runtime.Limits in the units a client reads.
type limitsJSON struct {
	TimeoutSeconds float64 `json:"timeout_seconds"`
	MemoryBytes    uint64  `json:"memory_bytes"`
	OutputBytes    int     `json:"output_bytes"`
	ResultBytes    int     `json:"result_bytes"`
	ArgsBytes      int     `json:"args_bytes"`
	TmpBytes       int     `json:"tmp_bytes"`
}

func limitsView(l runtime.Limits) limitsJSON {
	l = l.WithDefaults()
	return limitsJSON{TimeoutSeconds: l.Timeout.Seconds(), MemoryBytes: l.MemoryBytes, OutputBytes: l.OutputBytes,
		ResultBytes: l.ResultBytes, ArgsBytes: l.ArgBytes, TmpBytes: l.TmpBytes}
}

type nodeJSON struct {
	Name      string            `json:"name"`
	Role      string            `json:"role"`
	Mode      string            `json:"mode,omitempty"`
	Sandboxes int               `json:"sandboxes"`
	Busy      int               `json:"busy"`
	Isolation runtime.Isolation `json:"isolation"`
	Limits    limitsJSON        `json:"limits"`
	Alive     bool              `json:"alive"`
}

type runtimeResponse struct {
	Python string `json:"python"`
	Dill   string `json:"dill"`
	// Limits are those of the live nodes when they agree, else the
	// platform defaults; Nodes has each node's own.
	Limits       limitsJSON `json:"limits"`
	LimitsSource string     `json:"limits_source"` // "nodes" or "defaults"
	Isolation    []string   `json:"isolation_levels"`
	Nodes        []nodeJSON `json:"nodes"`
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
		Python:       runtime.PythonVersion,
		Dill:         runtime.DillVersion,
		Limits:       limitsView(runtime.DefaultLimits),
		LimitsSource: "defaults",
		Isolation:    []string{string(runtime.Warm), string(runtime.Fresh)},
		Nodes:        []nodeJSON{},
	}
	var live []store.Node
	for _, n := range nodes {
		resp.Nodes = append(resp.Nodes, nodeJSON{Name: n.Name, Role: n.Role, Mode: n.Mode, Sandboxes: n.Sandboxes,
			Busy: n.Busy, Isolation: n.Isolation, Limits: limitsView(n.Limits), Alive: n.Alive})
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
