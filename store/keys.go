package store

// Key and channel names, built only here.
//
// Course compatibility fixes three of them: a function is the hash at the
// bare key <function_id>, a task is the hash at the bare key <task_id>, and
// new task ids are published on the channel "Tasks". Everything else lives
// under a configurable prefix ("faas:" by default).
//
// The Lua scripts in lua/ rely on the task key being the task id itself:
// Claim and ReapExpired find task hashes through ids they read from the
// queues or the lease set; and they build tenant queue names themselves. If taskKey ever changes, those scripts change too.
// Because scripts touch keys they were not passed in KEYS, the store needs a
// single Redis node (standalone, or Sentinel); Redis Cluster is not
// supported.

const (
	// tasksChannel carries the id of every new task (course protocol).
	tasksChannel = "Tasks"
	// DefaultPrefix is the prefix of the keys and channels the course
	// protocol does not fix.
	DefaultPrefix = "faas:"
)

// Hash field names. The course protocol fixes fn_name, fn_payload,
// param_payload, status and result; the rest are ours. The Lua scripts use
// the same literal names.
const (
	fieldFnName       = "fn_name"
	fieldFnPayload    = "fn_payload"
	fieldParamPayload = "param_payload"
	fieldStatus       = "status"
	fieldResult       = "result"
	fieldFunctionID   = "function_id"
	fieldFnHash       = "fn_hash"
	fieldIsolation    = "isolation"
	fieldCreatedAt    = "created_at"
	fieldStartedAt    = "started_at"
	fieldFinishedAt   = "finished_at"
	fieldAttempts     = "attempts"
	fieldFence        = "fence"
	fieldWorker       = "worker"
	fieldError        = "error"
	fieldStdout       = "stdout"
	fieldStderr       = "stderr"
	fieldTimings      = "timings"
	fieldSource       = "source"          // function registered as source text
	fieldEntrypoint   = "entrypoint"      // its entry point
	fieldWantJSON     = "want_json"       // "1": the task asked for a JSON result
	fieldResultJSON   = "result_json"     // the result as JSON text, when asked and representable
	fieldBundle       = "bundle"          // content hash of a function's bundle (and its tasks')
	fieldBundleMods   = "bundle_modules"  // the bundle's top-level modules, space-separated
	fieldOwner        = "owner"           // the tenant a function or task belongs to; absent: the default tenant
	fieldRunAt        = "run_at"          // unix ms a delayed task is due
	fieldRetry        = "retry"           // a function's or task's retry policy (JSON)
	fieldRetried      = "retried"         // retries the policy made so far
	fieldErrors       = "errors"          // JSON array of the errors of the attempts retried
	fieldNextAttempt  = "next_attempt_at" // unix ms a task waiting for its retry is due
	fieldTimeoutMS    = "timeout_ms"      // a function's (and its tasks') own timeout
	fieldMemoryBytes  = "memory_bytes"    // a function's (and its tasks') own memory cap
	fieldEnv          = "env"             // a function's variables (JSON object); on a task: variables and secrets
	fieldSecretEnv    = "secret_env"      // a function's secret variables (JSON object), never shown
	// Completion webhooks (hooks.go): a function's default callback URL
	// and a task's, and a final task's delivery state.
	fieldCallbackURL      = "callback_url"
	fieldCallbackState    = "callback_state"    // pending, delivered, undeliverable
	fieldCallbackAttempts = "callback_attempts" // delivery attempts claimed so far
	fieldCallbackError    = "callback_error"    // why the last attempt failed
	fieldCallbackAt       = "callback_at"       // unix ms of the last recorded attempt
	fieldCallbackNext     = "callback_next_at"  // unix ms the next attempt is due
)

type keys struct{ prefix string }

// function is the hash holding one registered function.
func (k keys) function(id string) string { return id }

// task is the hash holding one task. Must stay equal to the id (see above).
func (k keys) task(id string) string { return id }

// queue is the list of the default tenant's runnable task ids (open mode,
// and the course layout): producers LPUSH, consumers RPOP, a requeued task
// is RPUSHed so that it is next. An entry is the id, or "~" + id for a task
// whose payloads are too large to read inside the claim script.
func (k keys) queue() string { return k.prefix + "queue" }

// tenantQueue is tenant's queue: queue() for the default tenant (""),
// queue() + ":" + tenant for the others. lua/lib.lua (faas_queue) builds the
// same names.
func (k keys) tenantQueue(tenant string) string {
	if tenant == "" {
		return k.queue()
	}
	return k.queue() + ":" + tenant
}

// ring is the sorted set of the tenants with queued work that claims may
// serve, scored by their turn (round robin; see lua/lib.lua and claim.lua).
func (k keys) ring() string { return k.prefix + "ring" }

// parked is the sorted set of the tenants with queued work that were at
// their cap of running tasks when a claim looked.
func (k keys) parked() string { return k.prefix + "parked" }

// running is a hash: tenant -> number of its tasks leased now.
func (k keys) running() string { return k.prefix + "running" }

// tenancy are the four keys every script that starts with lib.lua takes as
// KEYS[1..4], followed by its own.
func (k keys) tenancy(more ...string) []string {
	return append([]string{k.queue(), k.ring(), k.parked(), k.running()}, more...)
}

// leases is the sorted set of claimed task ids scored by lease expiry in
// unix milliseconds.
func (k keys) leases() string { return k.prefix + "leases" }

// staged holds a new task's payloads until the enqueue script renames it to
// the task's hash: large payloads never pass through Lua, which copies every
// byte in and out (2.7 ms of Redis time for 1.4 MB, 0.12 ms for HSET).
// It expires if the API dies before the script runs.
func (k keys) staged(id string) string { return k.prefix + "staged:" + id }

// doneChannel carries the id of every task that has just become final.
func (k keys) doneChannel() string { return k.prefix + "done" }

// nodes is a hash: node name -> JSON of Node, for the dispatchers and
// workers that run tasks.
func (k keys) nodes() string { return k.prefix + "nodes" }

// stats is a hash of cluster-wide task counters and histogram buckets,
// each process adding its own (see counters.go and Stats).
func (k keys) stats() string { return k.prefix + "stats" }

// recent is the list of the default tenant's newest task ids, newest
// first, trimmed to RecentTasks by the enqueue script (the dashboard's
// index); recentOf is any tenant's.
func (k keys) recent() string { return k.prefix + "recent" }

func (k keys) recentOf(tenant string) string {
	if tenant == "" {
		return k.recent()
	}
	return k.recent() + ":" + tenant
}

// cancelChannel carries the id of every RUNNING task that was cancelled, so
// that the dispatcher holding it stops it at once.
func (k keys) cancelChannel() string { return k.prefix + "cancel" }

// bundle holds one bundle's canonical zip under its content hash, per
// tenant: functions of one tenant that carry the same modules share it, and
// no tenant can reach another's. Bundles never expire (functions never do).
func (k keys) bundle(tenant, hash string) string {
	if tenant == "" {
		return k.prefix + "bundle:" + hash
	}
	return k.prefix + "bundle:" + tenant + ":" + hash
}

// newTasksChannel carries the id of every new task.
func (k keys) newTasksChannel() string { return tasksChannel }

// scheduled is the sorted set of the tasks that become runnable later,
// scored by when (unix ms): delayed tasks (QUEUED) and tasks waiting for
// their next attempt under a retry policy (RUNNING). Dispatchers move the
// due ones into their tenants' queues (Store.PromoteDue).
func (k keys) scheduled() string { return k.prefix + "scheduled" }

// scheduledCounts is a hash: tenant -> its entries in scheduled (what a
// queue cap counts besides the queue).
func (k keys) scheduledCounts() string { return k.prefix + "scheduled_n" }

// scheduledChannel carries the due time (unix ms) of every entry added to
// scheduled, so that dispatchers waiting for the next due entry look again.
func (k keys) scheduledChannel() string { return k.prefix + "due" }

// samples is the list of the dashboard's periodic stats samples, newest
// first, bounded to the charts' window (Store.AddSample).
func (k keys) samples() string { return k.prefix + "samples" }

// schedule is the hash of one schedule (Store.PutSchedule).
func (k keys) schedule(id string) string { return k.prefix + "schedule:" + id }

// activeSchedules is the sorted set of the schedules that are not paused,
// scored by their next tick (unix ms): the dispatchers fire the due ones
// (Store.FireDue).
func (k keys) activeSchedules() string { return k.prefix + "schedules" }

// pausedSchedules is the set of the ids of the paused schedules (what
// faas_schedules{state="paused"} counts; activeSchedules the others).
func (k keys) pausedSchedules() string { return k.prefix + "schedules_paused" }

// schedulesOf is the sorted set of a tenant's schedules, paused or not,
// scored by creation time (unix ms).
func (k keys) schedulesOf(tenant string) string {
	if tenant == "" {
		return k.prefix + "schedules_of"
	}
	return k.prefix + "schedules_of:" + tenant
}

// schedulesChannel carries the next tick (unix ms) of every schedule
// created or resumed, so that dispatchers waiting for the next tick look
// again.
func (k keys) schedulesChannel() string { return k.prefix + "schedules" }

// hooks is the sorted set of the final tasks whose completion webhook is to
// be delivered, scored by when the next attempt is due (unix ms), or by
// the lease expiry of the deliverer that claimed it (lua/hooks_claim.lua).
// Every script that makes tasks final takes it (lib.lua, faas_finish).
func (k keys) hooks() string { return k.prefix + "hooks" }

// hooksChannel carries the id of every task whose webhook was just queued
// (lib.lua's faas_finish publishes it on the channel named like the hooks
// key), so that deliverers waiting for work look at once.
func (k keys) hooksChannel() string { return k.hooks() }
