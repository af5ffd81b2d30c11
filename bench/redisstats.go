package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/wasmfaas/wasmfaas/internal/redisinfo"
)

// redisCommands reads INFO commandstats: calls by command name, the ones
// run inside scripts counted as well as the script calls themselves
// (Redis counts both), added up over the nodes of a cluster.
func redisCommands(ctx context.Context, rdb redis.UniversalClient) (map[string]int64, error) {
	cmds, err := redisinfo.Commands(ctx, rdb)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	out := make(map[string]int64, len(cmds))
	for name, c := range cmds {
		out[name] = c.Calls
	}
	return out, nil
}

// commandsPerTask turns the calls counted between two readings into calls
// per task, leaving out what the study itself sent (INFO, CONFIG).
func commandsPerTask(before, after map[string]int64, tasks int) (total float64, by map[string]float64) {
	by = map[string]float64{}
	for name, n := range after {
		if name == "info" || strings.HasPrefix(name, "config") {
			continue
		}
		if d := n - before[name]; d > 0 {
			by[name] = float64(d) / float64(tasks)
			total += by[name]
		}
	}
	return total, by
}
