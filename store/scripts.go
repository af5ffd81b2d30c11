package store

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// Every state change that touches more than one key is one of these
// scripts. They take the current time from the caller (never TIME), so that
// real Redis and miniredis behave the same, and go-redis runs them with
// EVALSHA, falling back to EVAL when the script cache is empty.
var (
	//go:embed lua/put_function.lua
	putFunctionLua    string
	scriptPutFunction = redis.NewScript(putFunctionLua)

	//go:embed lua/enqueue.lua
	enqueueLua    string
	scriptEnqueue = redis.NewScript(enqueueLua)

	//go:embed lua/claim.lua
	claimLua    string
	scriptClaim = redis.NewScript(claimLua)

	//go:embed lua/renew.lua
	renewLua    string
	scriptRenew = redis.NewScript(renewLua)

	//go:embed lua/complete.lua
	completeLua    string
	scriptComplete = redis.NewScript(completeLua)

	//go:embed lua/release.lua
	releaseLua    string
	scriptRelease = redis.NewScript(releaseLua)

	//go:embed lua/requeue.lua
	requeueLua    string
	scriptRequeue = redis.NewScript(requeueLua)

	//go:embed lua/reap.lua
	reapLua    string
	scriptReap = redis.NewScript(reapLua)

	//go:embed lua/cancel.lua
	cancelLua    string
	scriptCancel = redis.NewScript(cancelLua)
)
