package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name the Sentinel topologies use.
const SentinelMaster = "faas"

// Sentinel is a throwaway Redis Sentinel deployment: a primary, its
// replicas and three sentinels (redis-server --sentinel), on free loopback
// ports, stopped by t.Cleanup.
type Sentinel struct {
	Sentinels []string // host:port of the sentinels
	procSet
}

// StartSentinel starts a Sentinel deployment and waits until the sentinels
// agree on the primary and see its replicas. With durable set, there are
// two replicas (so that one is left after a failover), the primary refuses
// writes while no replica is within a second of it (min-replicas-to-write
// 1) and every server syncs its append-only file on every write; without,
// one replica and no persistence.
func StartSentinel(t testing.TB, durable bool) *Sentinel {
	t.Helper()
	if _, err := os.Stat(ServerPath); err != nil {
		t.Fatalf("redistest: %s is not installed (%v); run make deps-test", ServerPath, err)
	}
	s, err := startSentinel(t.TempDir(), durable)
	if s != nil {
		t.Cleanup(s.stopAll)
	}
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return s
}

func startSentinel(dir string, durable bool) (*Sentinel, error) {
	s := &Sentinel{}
	nrep := 1
	if durable {
		nrep = 2
	}
	ports := make([]int, 1+nrep+3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return s, err
		}
		ports[i] = p
	}
	primary := ports[0]
	common := []string{"--save", "", "--bind", "127.0.0.1", "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"}
	if durable {
		common = append(common, "--appendonly", "yes", "--appendfsync", "always", "--min-replicas-to-write", "1",
			"--min-replicas-max-lag", "1")
	} else {
		common = append(common, "--appendonly", "no")
	}
	for i, p := range ports[:1+nrep] {
		d, err := mkdir(dir, p)
		if err != nil {
			return s, err
		}
		args := append([]string{"--port", strconv.Itoa(p), "--dir", d}, common...)
		if i > 0 {
			args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(primary))
		}
		if err := s.run(addr(p), false, args...); err != nil {
			return s, err
		}
	}
	for _, p := range ports[1+nrep:] {
		d, err := mkdir(dir, p)
		if err != nil {
			return s, err
		}
		conf := filepath.Join(d, "sentinel.conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\nsentinel monitor %s 127.0.0.1 %d 2\n"+
			"sentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
			p, SentinelMaster, primary, SentinelMaster, SentinelMaster, SentinelMaster)
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return s, err
		}
		if err := s.run(addr(p), true, conf, "--sentinel"); err != nil {
			return s, err
		}
		s.Sentinels = append(s.Sentinels, addr(p))
	}
	// Every sentinel knows the primary, its replicas and the other sentinels.
	deadline := time.Now().Add(30 * time.Second)
	for _, sa := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sa})
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			replicas, err1 := sc.Replicas(ctx, SentinelMaster).Result()
			sentinels, err2 := sc.Sentinels(ctx, SentinelMaster).Result()
			cancel()
			if err1 == nil && err2 == nil && len(replicas) == nrep && len(sentinels) == 2 && allUp(replicas) {
				break
			}
			if time.Now().After(deadline) {
				sc.Close()
				return s, fmt.Errorf("the sentinels did not discover the deployment (replicas %v, %v; sentinels %d, %v)",
					replicas, err1, len(sentinels), err2)
			}
			time.Sleep(100 * time.Millisecond)
		}
		sc.Close()
	}
	return s, nil
}

func allUp(replicas []map[string]string) bool {
	for _, r := range replicas {
		if strings.Contains(r["flags"], "down") || strings.Contains(r["flags"], "disconnected") || r["master-link-status"] != "ok" {
			return false
		}
	}
	return true
}

func mkdir(dir string, port int) (string, error) {
	d := filepath.Join(dir, strconv.Itoa(port))
	return d, os.MkdirAll(d, 0o755)
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func (s *Sentinel) run(name string, sentinel bool, args ...string) error {
	return s.start(name, !sentinel, nil, args...)
}

// Client returns a client that follows the primary through failovers (a
// *redis.Client made by redis.NewFailoverClient).
func (s *Sentinel) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: SentinelMaster, SentinelAddrs: s.Sentinels,
		Protocol: 2})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Primary is the address the sentinels give for the primary now.
func (s *Sentinel) Primary(ctx context.Context) (string, error) {
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Sentinels[0]})
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		return "", err
	}
	return a[0] + ":" + a[1], nil
}

// KillPrimary SIGKILLs the primary and waits until the sentinels have
// promoted the replica; it returns the new primary's address.
func (s *Sentinel) KillPrimary(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	old, err := s.Primary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !s.kill(old) {
		t.Fatalf("redistest: no process for the primary %s", old)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if a, err := s.Primary(ctx); err == nil && a != old {
			rdb := redis.NewClient(&redis.Options{Addr: a})
			role, err := rdb.Do(ctx, "ROLE").Slice()
			rdb.Close()
			if err == nil && len(role) > 0 && role[0] == "master" {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("redistest: the sentinels did not promote the replica within 60 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// shared is the Sentinel deployment of StartSentinelShared, one per test
// binary: starting five servers and waiting for the sentinels to agree
// takes seconds, too long for every test.
var shared struct {
	once sync.Once
	s    *Sentinel
	err  error
}

// StartSentinelShared returns a client, through the sentinels, to the
// emptied database of the test binary's shared Sentinel deployment (a
// primary, a replica, three sentinels): the Sentinel backend of table
// tests. Tests using it must not run in parallel with each other.
func StartSentinelShared(t testing.TB) redis.UniversalClient {
	t.Helper()
	if _, err := os.Stat(ServerPath); err != nil {
		t.Fatalf("redistest: %s is not installed (%v); run make deps-test", ServerPath, err)
	}
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "redistest-sentinel-")
		if err != nil {
			shared.err = err
			return
		}
		shared.s, shared.err = startSentinel(dir, false)
	})
	if shared.err != nil {
		t.Fatalf("redistest: shared Sentinel deployment: %v", shared.err)
	}
	rdb := shared.s.Client(t)
	if err := rdb.FlushAll(context.Background()).Err(); err != nil {
		t.Fatalf("redistest: empty the shared Sentinel deployment: %v", err)
	}
	return rdb
}
