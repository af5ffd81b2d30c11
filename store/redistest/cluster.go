package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// CLIPath is the redis-cli binary StartCluster makes the cluster with.
var CLIPath = "/usr/bin/redis-cli"

// Cluster is a Redis Cluster of real redis-servers on loopback ports:
// primaries, each with its replicas, made the way an operator makes one
// (redis-cli --cluster create). It is the test bed of the Cluster port
// (docs/cluster-plan.md); the store does not run on it yet.
type Cluster struct {
	Nodes []string // host:port of every node, primaries first as created

	procSet
}

// StartCluster starts primaries × (1 + replicas) redis-servers with
// cluster mode on, persistence off and a one-second node timeout, makes a
// cluster of them (slots spread evenly over the primaries, the replicas
// assigned by redis-cli), waits until every node reports cluster_state:ok
// and every replica is in sync, and stops them all at t.Cleanup. A
// missing redis-server or redis-cli fails the test (run make deps-test).
func StartCluster(t testing.TB, primaries, replicas int) *Cluster {
	t.Helper()
	for _, p := range []string{ServerPath, CLIPath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("redistest: %s is not installed (%v); run make deps-test", p, err)
		}
	}
	c := &Cluster{}
	t.Cleanup(c.stopAll)
	dir := t.TempDir()
	for range primaries * (1 + replicas) {
		node, err := c.startNode(dir)
		if err != nil {
			t.Fatalf("redistest: cluster node: %v", err)
		}
		c.Nodes = append(c.Nodes, node)
	}
	args := append([]string{"--cluster", "create"}, c.Nodes...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(CLIPath, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.waitHealthy(context.Background(), c.Nodes, primaries*(1+replicas), 30*time.Second); err != nil {
		t.Fatalf("redistest: the cluster did not form: %v", err)
	}
	return c
}

// startNode runs one cluster-enabled redis-server on a free port whose
// cluster bus port (port + 10000) is free too.
func (c *Cluster) startNode(dir string) (string, error) {
	var lastErr error
	for range 20 {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		if port+10000 > 65535 || !portFree(port+10000) {
			continue
		}
		d := filepath.Join(dir, strconv.Itoa(port))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
		var out bytes.Buffer
		name := addr(port)
		err = c.start(name, true, &out, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", d,
			"--save", "", "--appendonly", "no", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000")
		if err == nil {
			return name, nil
		}
		c.kill(name)
		lastErr = fmt.Errorf("%w: %s", err, out.String())
	}
	return "", lastErr
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", addr(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Client returns a cluster client for the whole cluster. It reloads the
// slot layout every second: go-redis v9.23 reloads it on MOVED and ASK
// replies but not on a connection error, so after a primary dies it keeps
// dialling the dead node until its next periodic reload (60 s by default;
// measured in TestClusterFailover).
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Nodes, Protocol: 2,
		ClusterStateReloadInterval: time.Second})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// node is one line of CLUSTER NODES.
type node struct {
	addr    string
	primary bool
	failed  bool
	slots   []string // ranges as CLUSTER NODES lists them
}

// nodes reads CLUSTER NODES from the node at from.
func nodes(ctx context.Context, from string) ([]node, error) {
	rdb := redis.NewClient(&redis.Options{Addr: from})
	defer rdb.Close()
	text, err := rdb.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	var out []node
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		a, _, _ := strings.Cut(f[1], "@")
		out = append(out, node{addr: a, primary: strings.Contains(f[2], "master"),
			failed: strings.Contains(f[2], "fail"), slots: f[8:]})
	}
	return out, nil
}

// PrimaryOf is the address of the primary serving key's slot now, as the
// node at Nodes[0] (or the first that answers) sees it.
func (c *Cluster) PrimaryOf(ctx context.Context, key string) (string, error) {
	slot := Slot(key)
	for _, from := range c.alive() {
		ns, err := nodes(ctx, from)
		if err != nil {
			continue
		}
		for _, n := range ns {
			if n.primary && !n.failed && servesSlot(n.slots, slot) {
				return n.addr, nil
			}
		}
		return "", fmt.Errorf("no primary serves slot %d", slot)
	}
	return "", fmt.Errorf("no node answers")
}

func servesSlot(ranges []string, slot int) bool {
	for _, r := range ranges {
		if strings.HasPrefix(r, "[") { // a slot being migrated
			continue
		}
		lo, hi, ok := strings.Cut(r, "-")
		if !ok {
			hi = lo
		}
		l, err1 := strconv.Atoi(lo)
		h, err2 := strconv.Atoi(hi)
		if err1 == nil && err2 == nil && l <= slot && slot <= h {
			return true
		}
	}
	return false
}

// KillPrimaryOf SIGKILLs the primary serving key's slot and waits until
// one of its replicas has taken the slot over and every surviving node
// reports cluster_state:ok; it returns the new primary's address.
func (c *Cluster) KillPrimaryOf(t testing.TB, key string) string {
	t.Helper()
	ctx := context.Background()
	old, err := c.PrimaryOf(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !c.kill(old) {
		t.Fatalf("redistest: no process for the primary %s", old)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if now, err := c.PrimaryOf(ctx, key); err == nil && now != old {
			if err := c.waitHealthy(ctx, c.alive(), 0, time.Until(deadline)); err != nil {
				t.Fatalf("redistest: after the failover: %v", err)
			}
			return now
		}
		if time.Now().After(deadline) {
			t.Fatalf("redistest: no replica took over from %s within 60 s", old)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// alive is the nodes whose process this Cluster still runs.
func (c *Cluster) alive() []string {
	var out []string
	for _, n := range c.Nodes {
		if c.running(n) {
			out = append(out, n)
		}
	}
	return out
}

// waitHealthy waits until every node of addrs reports cluster_state:ok and
// knows want nodes (0: any number), and every replica among them is in
// sync with its primary.
func (c *Cluster) waitHealthy(ctx context.Context, addrs []string, want int, within time.Duration) error {
	deadline := time.Now().Add(within)
	var why string
	for time.Now().Before(deadline) {
		why = ""
		for _, a := range addrs {
			rdb := redis.NewClient(&redis.Options{Addr: a})
			info, err := rdb.ClusterInfo(ctx).Result()
			repl, err2 := rdb.Info(ctx, "replication").Result()
			rdb.Close()
			switch {
			case err != nil || err2 != nil:
				why = fmt.Sprintf("%s: %v %v", a, err, err2)
			case !strings.Contains(info, "cluster_state:ok"):
				why = a + ": cluster_state not ok"
			case want > 0 && !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(want)+"\r"):
				why = a + ": not every node known yet"
			case strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up"):
				why = a + ": replica not in sync"
			}
			if why != "" {
				break
			}
		}
		if why == "" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not healthy within %s: %s", within, why)
}

// Slot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of the key,
// or of its hash tag (the part between the first '{' and the next '}',
// when not empty), modulo 16384.
func Slot(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	var crc uint16
	for k := 0; k < len(key); k++ {
		crc ^= uint16(key[k]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc) % 16384
}
