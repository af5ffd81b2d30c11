package redistest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Slot computes what CLUSTER KEYSLOT answers, hash tags included.
func TestSlot(t *testing.T) {
	c := StartCluster(t, 3, 0)
	node := redis.NewClient(&redis.Options{Addr: c.Nodes[0]})
	defer node.Close()
	for _, key := range []string{"", "foo", "123456789", "{t:alice}queue", "{t:alice}8f0e-task", "faas:queue",
		"{}foo", "{{bar}}", "a{b}c{d}", "{t:}x", "Tasks", "ünïcode"} {
		want, err := node.ClusterKeySlot(context.Background(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := Slot(key); int64(got) != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", key, got, want)
		}
	}
	if Slot("{t:alice}queue") != Slot("{t:alice}leases") {
		t.Error("keys with one hash tag are in different slots")
	}
}

// A cluster of three primaries with a replica each spreads keys over the
// three, and when the primary of a slot is killed its replica takes over
// with the replicated keys; the cluster client follows.
func TestClusterFailover(t *testing.T) {
	c := StartCluster(t, 3, 1)
	if len(c.Nodes) != 6 {
		t.Fatalf("%d nodes", len(c.Nodes))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rdb := c.Client(t)
	const n = 300
	for i := range n {
		if err := rdb.Set(ctx, fmt.Sprintf("key-%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var holding atomic.Int32 // ForEachMaster calls on every primary at once
	if err := rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		if k, err := m.DBSize(ctx).Result(); err != nil {
			return err
		} else if k > 0 {
			holding.Add(1)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if holding := holding.Load(); holding != 3 {
		t.Fatalf("keys on %d primaries, want 3", holding)
	}
	old, err := c.PrimaryOf(ctx, "key-0")
	if err != nil {
		t.Fatal(err)
	}
	waitReplicated(t, ctx, old)
	now := c.KillPrimaryOf(t, "key-0")
	if now == old {
		t.Fatalf("still %s", now)
	}
	// The client learns the new layout on its next errors; every key is
	// there, the killed primary's from its replica.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < n; {
		v, err := rdb.Get(ctx, fmt.Sprintf("key-%d", i)).Int()
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("key-%d after the failover: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if v != i {
			t.Fatalf("key-%d = %d", i, v)
		}
		i++
	}
}

// waitReplicated waits until the replicas of the primary at addr have
// every write it took.
func waitReplicated(t *testing.T, ctx context.Context, addr string) {
	t.Helper()
	p := redis.NewClient(&redis.Options{Addr: addr})
	defer p.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := p.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		var offset string
		caught := strings.Contains(info, "connected_slaves:1")
		for _, line := range strings.Split(info, "\r\n") {
			if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
				offset = v
			}
		}
		for _, line := range strings.Split(info, "\r\n") {
			if strings.HasPrefix(line, "slave0:") && !strings.Contains(line, "offset="+offset+",") {
				caught = false
			}
		}
		if caught && offset != "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica of %s did not catch up: %s", addr, info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
