package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/wasmfaas/wasmfaas/faastype"
)

// Node is a dispatcher or worker that runs tasks, as it last described
// itself. Nodes publish themselves every few seconds; one not seen for
// NodeStale is considered gone (and dropped after NodeForget).
type Node struct {
	Name      string             `json:"name"`
	Role      string             `json:"role"` // "dispatcher", "push-worker", "pull-worker"
	Mode      string             `json:"mode,omitempty"`
	Sandboxes int                `json:"sandboxes"`
	Busy      int                `json:"busy"`
	Isolation faastype.Isolation `json:"isolation"`
	Limits    faastype.Limits    `json:"limits"`
	Stats     faastype.PoolStats `json:"stats"`
	StartedAt time.Time          `json:"started_at"`
	SeenAt    time.Time          `json:"seen_at"`
	Alive     bool               `json:"alive"` // computed when read
}

// How old a node's last report may be.
const (
	NodeStale  = 10 * time.Second
	NodeForget = 10 * time.Minute
)

// PutNode records n (SeenAt set to now). It is a single-key write.
func (s *Store) PutNode(ctx context.Context, n Node) error {
	n.SeenAt = time.Now()
	n.Alive = false
	b, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("store: put node %s: %w", n.Name, err)
	}
	if err := s.rdb.HSet(ctx, s.keys.nodes(), n.Name, b).Err(); err != nil {
		return fmt.Errorf("store: put node %s: %w", n.Name, err)
	}
	return nil
}

// RemoveNode forgets a node that is shutting down.
func (s *Store) RemoveNode(ctx context.Context, name string) error {
	if err := s.rdb.HDel(ctx, s.keys.nodes(), name).Err(); err != nil {
		return fmt.Errorf("store: remove node %s: %w", name, err)
	}
	return nil
}

// Nodes lists the known nodes by name, marking those seen within
// NodeStale alive and leaving out those not seen for NodeForget.
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	m, err := s.rdb.HGetAll(ctx, s.keys.nodes()).Result()
	if err != nil {
		return nil, fmt.Errorf("store: list nodes: %w", err)
	}
	now := time.Now()
	var out []Node
	for _, v := range m {
		var n Node
		if err := json.Unmarshal([]byte(v), &n); err != nil {
			continue // not ours; leave it
		}
		age := now.Sub(n.SeenAt)
		if age > NodeForget {
			continue
		}
		n.Alive = age <= NodeStale
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
