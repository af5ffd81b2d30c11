// Package redisinfo reads Redis's INFO statistics through a
// redis.UniversalClient: from the one server a *redis.Client talks to (a
// Sentinel client: the primary now), or from every node of a Redis Cluster
// (*redis.ClusterClient.ForEachShard: the primaries and their replicas),
// summed. The benchmarks (bench, and the tests' and the store's) and the
// tests that count what Redis did read it here, so that the walk over the
// nodes is written once.
package redisinfo

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// eachNode calls fn with every node of a *redis.ClusterClient (all at
// once), or with rdb itself for any other client.
func eachNode(ctx context.Context, rdb redis.UniversalClient, fn func(ctx context.Context, node redis.Cmdable) error) error {
	c, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return fn(ctx, rdb)
	}
	return c.ForEachShard(ctx, func(ctx context.Context, node *redis.Client) error {
		if err := fn(ctx, node); err != nil {
			return fmt.Errorf("node %s: %w", node.Options().Addr, err)
		}
		return nil
	})
}

// Sections returns the text of INFO section from every node (see the
// package comment), in no particular order: one for a *redis.Client.
func Sections(ctx context.Context, rdb redis.UniversalClient, section string) ([]string, error) {
	var mu sync.Mutex
	var out []string
	err := eachNode(ctx, rdb, func(ctx context.Context, node redis.Cmdable) error {
		text, err := node.Info(ctx, section).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		out = append(out, text)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("INFO %s: %w", section, err)
	}
	return out, nil
}

// Sum is the numeric field (used_memory, say) of INFO section added up
// over the nodes; it is an error if no node reports it.
func Sum(ctx context.Context, rdb redis.UniversalClient, section, field string) (float64, error) {
	texts, err := Sections(ctx, rdb, section)
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	for _, text := range texts {
		for _, line := range strings.Split(text, "\n") {
			v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":")
			if !ok {
				continue
			}
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("INFO %s: %s: %w", section, field, err)
			}
			sum += f
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("INFO %s has no %s", section, field)
	}
	return sum, nil
}

// Command is what INFO commandstats counts of one command.
type Command struct {
	Calls int64   // calls
	Usec  float64 // microseconds spent in them
}

// Commands reads INFO commandstats: by command name (evalsha, hset, …),
// the calls and their microseconds, added up over the nodes. Redis counts
// both a script call and the commands the script runs.
func Commands(ctx context.Context, rdb redis.UniversalClient) (map[string]Command, error) {
	texts, err := Sections(ctx, rdb, "commandstats")
	if err != nil {
		return nil, err
	}
	out := map[string]Command{}
	for _, text := range texts {
		for _, line := range strings.Split(text, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
			name, isCmd := strings.CutPrefix(name, "cmdstat_")
			if !ok || !isCmd {
				continue
			}
			c := out[name]
			for _, kv := range strings.Split(rest, ",") {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "calls":
					n, _ := strconv.ParseInt(v, 10, 64)
					c.Calls += n
				case "usec":
					f, _ := strconv.ParseFloat(v, 64)
					c.Usec += f
				}
			}
			out[name] = c
		}
	}
	return out, nil
}

// ResetStat runs CONFIG RESETSTAT on every node, so that the next readings
// count from zero everywhere.
func ResetStat(ctx context.Context, rdb redis.UniversalClient) error {
	err := eachNode(ctx, rdb, func(ctx context.Context, node redis.Cmdable) error {
		return node.ConfigResetStat(ctx).Err()
	})
	if err != nil {
		return fmt.Errorf("CONFIG RESETSTAT: %w", err)
	}
	return nil
}
