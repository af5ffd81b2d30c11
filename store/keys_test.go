package store

import "testing"

// The single-Redis layout's names, pinned: the course layout (task and
// function hashes at their bare ids, the Tasks channel) and every key of
// ours, which tools, dashboards and older processes on the same Redis read.
// A change here is a data migration, not a refactoring.
func TestKeyNames(t *testing.T) {
	k := keys{prefix: "faas:"}
	for _, c := range []struct{ got, want string }{
		{k.function("f1"), "f1"},
		{k.task("t1"), "t1"},
		{k.queue(), "faas:queue"},
		{k.tenantQueue(""), "faas:queue"},
		{k.tenantQueue("acme"), "faas:queue:acme"},
		{k.ring(), "faas:ring"},
		{k.parked(), "faas:parked"},
		{k.running(), "faas:running"},
		{k.leases(), "faas:leases"},
		{k.staged("t1"), "faas:staged:t1"},
		{k.doneChannel(), "faas:done"},
		{k.nodes(), "faas:nodes"},
		{k.stats(), "faas:stats"},
		{k.recent(), "faas:recent"},
		{k.recentOf(""), "faas:recent"},
		{k.recentOf("acme"), "faas:recent:acme"},
		{k.cancelChannel(), "faas:cancel"},
		{k.bundle("", "h1"), "faas:bundle:h1"},
		{k.bundle("acme", "h1"), "faas:bundle:acme:h1"},
		{k.newTasksChannel(), "Tasks"},
		{k.scheduled(), "faas:scheduled"},
		{k.scheduledCounts(), "faas:scheduled_n"},
		{k.scheduledChannel(), "faas:due"},
		{k.samples(), "faas:samples"},
		{k.schedule("s1"), "faas:schedule:s1"},
		{k.activeSchedules(), "faas:schedules"},
		{k.pausedSchedules(), "faas:schedules_paused"},
		{k.schedulesOf(""), "faas:schedules_of"},
		{k.schedulesOf("acme"), "faas:schedules_of:acme"},
		{k.schedulesChannel(), "faas:schedules"},
		{k.hooks(), "faas:hooks"},
		{k.hooksChannel(), "faas:hooks"},
	} {
		if c.got != c.want {
			t.Errorf("key %q, want %q", c.got, c.want)
		}
	}
	if got := k.tenancy("x"); len(got) != 5 || got[0] != "faas:queue" || got[1] != "faas:ring" || got[2] != "faas:parked" ||
		got[3] != "faas:running" || got[4] != "x" {
		t.Errorf("tenancy = %q", got)
	}
}
