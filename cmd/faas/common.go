package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	goruntime "runtime"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// signalContext ends on the first SIGINT or SIGTERM; a second one exits at
// once.
func signalContext(log *slog.Logger) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-ch
		log.Info("shutting down (send the signal again to exit at once)", "signal", s.String())
		cancel()
		<-ch
		os.Exit(130)
	}()
	return ctx, cancel
}

// commonFlags are the flags every long-running command has.
type commonFlags struct {
	logLevel string
	logJSON  bool
}

func addCommonFlags(fs *flagSet) *commonFlags {
	c := &commonFlags{}
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.logJSON, "log-json", false, "log JSON lines instead of text")
	return c
}

func (c *commonFlags) logger() (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %v", c.logLevel, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if c.logJSON {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	return l, nil
}

// redisProtocol is the protocol our Redis clients speak unless the URL says
// (?protocol=3): RESP2. On RESP3, go-redis looks for pending push
// notifications before every command, a read system call each: 9% of the
// API's processor time in a no-op load. We use no RESP3 feature.
const redisProtocol = 2

// connectRedis opens a client for a --redis URL (see redisurl.go), with
// the password from FAAS_REDIS_PASSWORD or passwordFile if either is set,
// and checks it answers, retrying for up to wait so services can start in
// any order. It returns what the logs may show of the URL.
func connectRedis(ctx context.Context, rawURL, passwordFile string, wait time.Duration, log *slog.Logger) (redis.UniversalClient, string, error) {
	pw, err := redisPassword(passwordFile)
	if err != nil {
		return nil, "", err
	}
	target, err := parseRedisURL(rawURL, pw, os.Getenv("FAAS_REDIS_SENTINEL_PASSWORD"))
	if err != nil {
		return nil, "", err
	}
	rdb := target.client()
	deadline := time.Now().Add(wait)
	for {
		err := rdb.Ping(ctx).Err()
		if err == nil {
			return rdb, target.display, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			rdb.Close()
			return nil, "", fmt.Errorf("redis at %s does not answer: %v", target.display, err)
		}
		log.Warn("waiting for redis", "redis", target.display, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// fail prints a command error the way every command does.
func fail(cmd string, err error) int {
	fmt.Fprintf(os.Stderr, "faas %s: %v\n", cmd, err)
	return 1
}

// flagSet is a flag.FlagSet whose -h output starts with a usage line.
type flagSet struct{ *flag.FlagSet }

func newFlagSet(name, usageLine, about string) *flagSet {
	fs := flag.NewFlagSet("faas "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: faas %s %s\n\n%s\n\nFlags:\n", name, usageLine, strings.TrimSpace(about))
		fs.PrintDefaults()
	}
	return &flagSet{fs}
}

// defaultSandboxes is one sandbox per CPU, at least 2.
func defaultSandboxes() int { return max(2, goruntime.NumCPU()) }
