// Package redistest starts throwaway Redis servers for tests: a real
// redis-server on a free loopback port, an in-process miniredis (the
// embedded Redis of `faas up`), or a Redis Sentinel deployment (sentinel.go).
// They are stopped by t.Cleanup (the shared Sentinel deployment when the
// test binary exits).
package redistest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// ServerPath is the redis-server binary Start runs.
var ServerPath = "/usr/bin/redis-server"

// Start runs redis-server on a free port of 127.0.0.1 with persistence off,
// in a temporary directory, waits until it answers PING and returns a
// client for it (a *redis.Client). A missing redis-server fails the test
// (run make deps-test).
func Start(t testing.TB) redis.UniversalClient {
	t.Helper()
	if _, err := os.Stat(ServerPath); err != nil {
		t.Fatalf("redistest: %s is not installed (%v); run make deps-test", ServerPath, err)
	}
	// A port that was free a moment ago may be taken by the time the
	// server binds it; try a few.
	var lastErr error
	for range 5 {
		rdb, err := start(t)
		if err == nil {
			return rdb
		}
		lastErr = err
	}
	t.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

func start(t testing.TB) (*redis.Client, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	var out bytes.Buffer
	cmd := exec.Command(ServerPath,
		"--save", "",
		"--appendonly", "no",
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
	)
	cmd.Dir = dir
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run %s: %w", ServerPath, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port)})
	stop := func() {
		_ = rdb.Close()
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			break
		}
		select {
		case werr := <-exited:
			_ = rdb.Close()
			return nil, fmt.Errorf("redis-server on port %d exited (%v): %s", port, werr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("redis-server on port %d did not answer PING: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(stop)
	return rdb, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// StartMini runs an in-process miniredis and returns a client for it (a
// *redis.Client).
func StartMini(t testing.TB) redis.UniversalClient {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Backend is a named way to get a fresh Redis for one test.
type Backend struct {
	Name  string
	Start func(testing.TB) redis.UniversalClient
}

// Backends are a real redis-server, miniredis, and a Redis Sentinel
// deployment reached through its sentinels (shared by the test binary,
// emptied for each test), for table tests that must pass on all three.
var Backends = []Backend{
	{Name: "redis-server", Start: Start},
	{Name: "miniredis", Start: StartMini},
	{Name: "sentinel", Start: StartSentinelShared},
}

// Addrs are the addresses a client was made with: the one of a
// *redis.Client, the seed nodes of a *redis.ClusterClient. (A client made
// by redis.NewFailoverClient is a *redis.Client whose address go-redis
// sets to "FailoverClient": ask its Sentinel instead.) It panics on any
// other client.
func Addrs(rdb redis.UniversalClient) []string {
	switch c := rdb.(type) {
	case *redis.Client:
		return []string{c.Options().Addr}
	case *redis.ClusterClient:
		return c.Options().Addrs
	default:
		panic(fmt.Sprintf("redistest: Addrs of a %T", rdb))
	}
}
