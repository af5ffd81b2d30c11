// Package dispatch owns the task dispatcher: it takes tasks from the
// store's durable queue under a lease, gets them run, and records each
// outcome through the store's lease check, so a task is executed at least
// once and recorded exactly once.
//
// The mode decides where tasks run:
//
//   - local: on a sandbox pool inside the dispatcher process (RunLocal);
//   - push: on push workers connected over ZeroMQ DEALER/ROUTER;
//   - pull: on pull workers that ask for work over ZeroMQ REQ/REP.
//
// Every mode shares the Core: claiming (woken by the Tasks channel, but
// correct without it), renewing the leases of running tasks, reaping
// expired leases (tasks of a dispatcher or worker that died go back to the
// queue, or FAIL after the maximum attempts), and completing.
package dispatch
