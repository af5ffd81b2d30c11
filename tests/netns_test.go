package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// netns is a network namespace joined to this one by a veth pair: the
// namespace side has address ns, this side host.
type netns struct {
	t          *testing.T
	name, link string
	host, ns   string
}

func ipCmd(args ...string) error {
	out, err := exec.Command("/usr/sbin/ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetns makes namespace i of this test process; it is removed when the
// test ends. The test is skipped where namespaces cannot be made.
func newNetns(t *testing.T, i int) *netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := os.Stat("/usr/sbin/ip"); err != nil {
		t.Skip("no /usr/sbin/ip")
	}
	pid := os.Getpid()
	n := &netns{t: t, name: fmt.Sprintf("faas%d-%d", pid, i), link: fmt.Sprintf("fv%d%d", pid%100000, i)}
	// A /30 per namespace, from the pid so that parallel runs differ.
	b := (pid*4 + i) % 16384
	n.host = fmt.Sprintf("10.%d.%d.%d", 200+b/4096, (b/64)%64*4, (b%64)*4+1)
	n.ns = fmt.Sprintf("10.%d.%d.%d", 200+b/4096, (b/64)%64*4, (b%64)*4+2)
	if err := ipCmd("netns", "add", n.name); err != nil {
		t.Skipf("cannot make a network namespace: %v", err)
	}
	t.Cleanup(func() {
		ipCmd("link", "del", n.link)
		ipCmd("netns", "del", n.name)
	})
	for _, args := range [][]string{
		{"link", "add", n.link, "type", "veth", "peer", "name", n.link + "p"},
		{"link", "set", n.link + "p", "netns", n.name},
		{"addr", "add", n.host + "/30", "dev", n.link},
		{"link", "set", n.link, "up"},
		{"netns", "exec", n.name, "ip", "addr", "add", n.ns + "/30", "dev", n.link + "p"},
		{"netns", "exec", n.name, "ip", "link", "set", n.link + "p", "up"},
		{"netns", "exec", n.name, "ip", "link", "set", "lo", "up"},
	} {
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// cut takes the link down (packets are lost, connections hang); heal
// brings it back.
func (n *netns) cut() {
	if err := ipCmd("link", "set", n.link, "down"); err != nil {
		n.t.Fatal(err)
	}
}

func (n *netns) heal() {
	if err := ipCmd("link", "set", n.link, "up"); err != nil {
		n.t.Fatal(err)
	}
}

// worker starts a worker of c inside the namespace, talking to the
// dispatcher over the veth pair.
func (n *netns) worker(c *cluster, name string, sandboxes int, extra ...string) *proc {
	args := []string{"netns", "exec", n.name, faasBin, c.mode + "-worker", strconv.Itoa(sandboxes),
		"tcp://" + n.host + ":" + strconv.Itoa(c.port), "--name", name,
		"--heartbeat", c.heartbeat.String(), "--heartbeat-misses", strconv.Itoa(c.misses), "--timeout", c.timeout.String(),
		"--drain", c.drain.String()}
	args = append(args, c.secretArgs()...)
	return startExe(c.t, name, "/usr/sbin/ip", append(args, extra...)...)
}

// Two workers in their own network namespaces reach the dispatcher over
// veth pairs; one is cut off while it runs tasks, then reconnected: its
// tasks finish on the other, its late results are refused, each task is
// recorded once.
func TestNetworkPartition(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, mode)
			c.misses = 3
			a, b := newNetns(t, 0), newNetns(t, 1)
			done := countDone(t, c.rdb)
			d := c.dispatcher("d1", "--bind", "0.0.0.0")
			victim := a.worker(c, "w1", 2, "--log-level", "debug")
			b.worker(c, "w2", 2)
			d.waitLog(c.joined(), 2, 60*time.Second)
			xs := seq(16)
			fn, args := payloads(t, 0.5, xs)
			ids := c.enqueue(fn, args)
			victim.waitLog("task started", 1, 30*time.Second)
			stuck, started := c.waitStartedOn(victim, ids, 30*time.Second)
			a.cut()
			if c.mode == "push" {
				d.waitLog("worker declared dead", 1, 30*time.Second)
			} else {
				d.waitLog("passed their deadline", 1, 30*time.Second)
			}
			time.Sleep(time.Second)
			a.heal()
			tasks := c.waitFinal(ids, 60*time.Second)
			c.checkResults(ids, xs, tasks)
			for _, id := range stuck {
				if task := tasks[id]; task.Attempts < 2 || strings.HasPrefix(task.Worker, "w1/") {
					t.Errorf("task %s that ran on the cut-off worker: attempts %d, worker %s", id, task.Attempts, task.Worker)
				}
			}
			// Back on the network, the worker delivers its results late:
			// refused by the lease check, or dropped when told the tasks
			// are no longer its own (of the tasks it had started: one sent
			// just before the cut may never have reached it).
			deadline := time.Now().Add(30 * time.Second)
			for _, id := range started {
				for !hasLine(d.logs(), "late result rejected", id) && !hasLine(victim.logs(), "took the task back", id) &&
					!hasLine(victim.logs(), "took it back", id) {
					if time.Now().After(deadline) {
						t.Fatalf("task %s: its late result was neither rejected nor dropped", id)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			done.check(t, ids)
			// And it works again.
			xs2 := seq(8)
			fn2, args2 := payloads(t, 0, xs2)
			ids2 := c.enqueue(fn2, args2)
			c.checkResults(ids2, xs2, c.waitFinal(ids2, 60*time.Second))
		})
	}
}
