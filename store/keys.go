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
// queue or the lease set. If taskKey ever changes, those scripts change too.
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
	fieldSource       = "source"      // function registered as source text
	fieldEntrypoint   = "entrypoint"  // its entry point
	fieldWantJSON     = "want_json"   // "1": the task asked for a JSON result
	fieldResultJSON   = "result_json" // the result as JSON text, when asked and representable
)

type keys struct{ prefix string }

// function is the hash holding one registered function.
func (k keys) function(id string) string { return id }

// task is the hash holding one task. Must stay equal to the id (see above).
func (k keys) task(id string) string { return id }

// queue is the list of runnable task ids: producers LPUSH, consumers RPOP,
// a requeued task is RPUSHed so that it is next.
func (k keys) queue() string { return k.prefix + "queue" }

// leases is the sorted set of claimed task ids scored by lease expiry in
// unix milliseconds.
func (k keys) leases() string { return k.prefix + "leases" }

// doneChannel carries the id of every task that has just become final.
func (k keys) doneChannel() string { return k.prefix + "done" }

// nodes is a hash: node name -> JSON of Node, for the dispatchers and
// workers that run tasks.
func (k keys) nodes() string { return k.prefix + "nodes" }

// newTasksChannel carries the id of every new task.
func (k keys) newTasksChannel() string { return tasksChannel }
