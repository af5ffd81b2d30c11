package redistest

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// procSet is the redis-server processes of a deployment (Sentinel,
// Cluster), by the address each listens on.
type procSet struct {
	mu    sync.Mutex
	procs map[string]*exec.Cmd
}

// start runs ServerPath with args as the server at name, its output to out
// (nil: discarded), and, with ping, waits up to 10 s until it answers
// PING. The process dies with the test binary (a shared deployment goes
// with it) and is recorded even when it does not answer (stopAll ends it).
func (p *procSet) start(name string, ping bool, out io.Writer, args ...string) error {
	cmd := exec.Command(ServerPath, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", ServerPath, err)
	}
	p.mu.Lock()
	if p.procs == nil {
		p.procs = map[string]*exec.Cmd{}
	}
	p.procs[name] = cmd
	p.mu.Unlock()
	if !ping {
		return nil
	}
	rdb := redis.NewClient(&redis.Options{Addr: name})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server at %s did not answer PING", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// kill SIGKILLs the server at name, waits for it and forgets it; false if
// there is none.
func (p *procSet) kill(name string) bool {
	p.mu.Lock()
	cmd := p.procs[name]
	delete(p.procs, name)
	p.mu.Unlock()
	if cmd == nil {
		return false
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return true
}

// running says whether the server at name is still one of the set.
func (p *procSet) running(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.procs[name] != nil
}

// stopAll kills every server of the set.
func (p *procSet) stopAll() {
	p.mu.Lock()
	names := make([]string, 0, len(p.procs))
	for name := range p.procs {
		names = append(names, name)
	}
	p.mu.Unlock()
	for _, name := range names {
		p.kill(name)
	}
}
