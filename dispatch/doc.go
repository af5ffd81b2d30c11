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
// queue, or FAIL after the maximum attempts), promoting scheduled tasks,
// delivering completion webhooks (with Config.Webhooks, package hooks),
// and completing. Push and pull
// mode share the start-up, the completer and admission (remote.go,
// wire.Gate) and guard their bookkeeping with one mutex each.
//
// The protocol spoken with workers is package wire's; workers import wire,
// never dispatch, so a worker binary links no Redis client.
package dispatch
