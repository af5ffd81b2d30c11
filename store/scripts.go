package store

import (
	_ "embed"
	"math"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Every state change that touches more than one key is one of these
// scripts. They take the current time from the caller (never TIME), so that
// real Redis and miniredis behave the same, and go-redis runs them with
// EVALSHA, falling back to EVAL when the script cache is empty.
//
// Every script but put_function, renew, sample and the hooks ones starts with lib.lua, preceded by
// the histogram bounds (withLib): its shared functions keep the per-tenant
// queues, ring and running counts, taking the four tenancy keys as
// KEYS[1..4] (keys.tenancy), and count, rewrite and announce a task that
// becomes final.
var (
	//go:embed lua/lib.lua
	libLua string

	//go:embed lua/put_function.lua
	putFunctionLua    string
	scriptPutFunction = newScript("put_function", part("put_function.lua", putFunctionLua))

	//go:embed lua/enqueue.lua
	enqueueLua    string
	scriptEnqueue = newScript("enqueue", withLib(part("enqueue.lua", enqueueLua))...)

	//go:embed lua/claim.lua
	claimLua    string
	scriptClaim = newScript("claim", withLib(part("claim.lua", claimLua), glue("return faas_claim(KEYS[5], 1)\n"))...)

	//go:embed lua/renew.lua
	renewLua    string
	scriptRenew = newScript("renew", part("renew.lua", renewLua))

	//go:embed lua/complete.lua
	completeLua string
	// KEYS[1..4] tenancy, KEYS[5] task hash, KEYS[6] leases, KEYS[7] stats,
	// KEYS[8..9] scheduled set and counts, KEYS[10] hooks set, KEYS[11] the
	// queue of the task's owner
	scriptComplete = newScript("complete", withLib(part("complete.lua", completeLua),
		glue("return faas_complete(KEYS[5], KEYS[6], KEYS[7], 1, KEYS[11])\n"))...)

	// scriptCompleteClaim records an outcome and claims the next tasks in
	// one round trip: KEYS[1..4] tenancy, KEYS[5] leases, KEYS[6] task
	// hash, KEYS[7] stats, KEYS[8..9] scheduled set and counts, KEYS[10] hooks
	// set, KEYS[11] the queue of the completed task's owner; ARGV[1..6] those of the claim, ARGV[7..] those
	// of the completion. Returns {completion's reply, claim's reply}.
	// The running count of the completed task's tenant is settled after
	// the claim (lib.lua, faas_deferred), so that a completion followed by
	// a claim of the same tenant's task writes no count at all.
	scriptCompleteClaim = newScript("complete_claim", withLib(part("complete.lua", completeLua), part("claim.lua", claimLua),
		glue("faas_deferred = {}\nlocal done = faas_complete(KEYS[6], KEYS[5], KEYS[7], 7, KEYS[11])\n"+
			"local claimed = faas_claim(KEYS[5], 1)\nfaas_settle()\nreturn {done, claimed}\n"))...)

	//go:embed lua/release.lua
	releaseLua    string
	scriptRelease = newScript("release", withLib(part("release.lua", releaseLua))...)

	//go:embed lua/requeue.lua
	requeueLua    string
	scriptRequeue = newScript("requeue", withLib(part("requeue.lua", requeueLua))...)

	//go:embed lua/reap.lua
	reapLua    string
	scriptReap = newScript("reap", withLib(part("reap.lua", reapLua))...)

	//go:embed lua/cancel.lua
	cancelLua    string
	scriptCancel = newScript("cancel", withLib(part("cancel.lua", cancelLua))...)

	//go:embed lua/promote.lua
	promoteLua    string
	scriptPromote = newScript("promote", withLib(part("promote.lua", promoteLua))...)

	//go:embed lua/hooks_claim.lua
	hooksClaimLua    string
	scriptHooksClaim = newScript("hooks_claim", part("hooks_claim.lua", hooksClaimLua))

	//go:embed lua/hooks_record.lua
	hooksRecordLua    string
	scriptHooksRecord = newScript("hooks_record", part("hooks_record.lua", hooksRecordLua))

	//go:embed lua/sample.lua
	sampleLua    string
	scriptSample = newScript("sample", part("sample.lua", sampleLua))
)

// HistogramBuckets are the upper bounds, in seconds, of the task latency
// and execution-time histograms the scripts keep (see Stats).
var HistogramBuckets = []float64{
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
}

// luaPart is one piece of a composed script: the file under lua/ it comes
// from ("" for the lines written here) and its text.
type luaPart struct {
	file, text string
}

func part(file, text string) luaPart { return luaPart{file: file, text: text} }

func glue(text string) luaPart { return luaPart{text: text} }

// scriptParts holds, by script name, the parts each script is composed of,
// in order: what the lint test (lualint_test.go) parses and maps its line
// numbers back to.
var scriptParts = map[string][]luaPart{}

// newScript composes a script of its parts and registers them under name.
func newScript(name string, parts ...luaPart) *redis.Script {
	if _, dup := scriptParts[name]; dup {
		panic("store: script " + name + " registered twice")
	}
	scriptParts[name] = parts
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.text)
	}
	return redis.NewScript(b.String())
}

// withLib puts the shared functions of lib.lua, and the bucket bounds they
// use, in front of a script's parts.
func withLib(parts ...luaPart) []luaPart {
	var b strings.Builder
	b.WriteString("local BUCKETS_MS = {")
	for i, s := range HistogramBuckets {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatInt(int64(math.Round(s*1000)), 10))
	}
	b.WriteString("}\n")
	return append([]luaPart{glue(b.String()), part("lib.lua", libLua)}, parts...)
}
