package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisCommands reads INFO commandstats: calls by command name, the ones
// run inside scripts counted as well as the script calls themselves
// (Redis counts both).
func redisCommands(ctx context.Context, rdb *redis.Client) (map[string]int64, error) {
	info, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("bench: INFO commandstats: %w", err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[strings.TrimPrefix(name, "cmdstat_")] = n
			}
		}
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
