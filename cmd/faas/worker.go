package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/wasmfaas/wasmfaas/dispatch"
	"github.com/wasmfaas/wasmfaas/wire"
	"github.com/wasmfaas/wasmfaas/worker"
)

// remoteFlags are the push/pull settings shared by the dispatcher and the
// workers.
type remoteFlags struct {
	heartbeat  time.Duration
	misses     int
	maxMessage int64
	secretFile string
}

// secretEnv holds the worker secret itself (there is no flag for it: a
// command line is visible to every user of the host).
const secretEnv = "FAAS_WORKER_SECRET"

func addRemoteFlags(fs *flagSet, dispatcher bool) *remoteFlags {
	r := &remoteFlags{}
	addWorkerSecretFlag(fs, &r.secretFile, dispatcher)
	if dispatcher {
		fs.DurationVar(&r.heartbeat, "heartbeat", time.Second, "push/pull mode: heartbeat interval (push), longest wait of an idle pull worker")
		fs.IntVar(&r.misses, "heartbeat-misses", 3, "push/pull mode: a push worker silent for this many heartbeat intervals is declared dead")
		fs.Var(byteSize{&r.maxMessage}, "max-message", "push/pull mode: largest message accepted from a worker (default: derived from the limits)")
	} else {
		fs.DurationVar(&r.heartbeat, "heartbeat", time.Second, "heartbeat interval (push); longest wait between requests (pull)")
		fs.IntVar(&r.misses, "heartbeat-misses", 3, "the dispatcher is considered gone after this many intervals without an answer")
		fs.Var(byteSize{&r.maxMessage}, "max-message", "largest message accepted from the dispatcher (default: derived from the limits)")
	}
	return r
}

// addWorkerSecretFlag registers --worker-secret-file, the secret that
// admits workers to a push/pull dispatcher (see wire/message.go).
func addWorkerSecretFlag(fs *flagSet, path *string, dispatcher bool) {
	const about = "`path` of a file holding the worker secret shared by the dispatcher and its workers (at least 32 random bytes, " +
		"e.g. the output of 'openssl rand -hex 32'; surrounding white space is ignored), or put the secret itself in " + secretEnv
	if dispatcher {
		fs.StringVar(path, "worker-secret-file", "", "push/pull mode: "+about+"; workers must prove they hold it. "+
			"Without one any worker that reaches the port is admitted")
	} else {
		fs.StringVar(path, "worker-secret-file", "", about+"; the dispatcher must prove it holds it too. "+
			"Without one the worker only works for a dispatcher without one")
	}
}

// secret reads the worker secret from --worker-secret-file or
// FAAS_WORKER_SECRET (not both); nil if neither is set.
func (r *remoteFlags) secret(log *slog.Logger) ([]byte, error) {
	env, inEnv := os.LookupEnv(secretEnv)
	os.Unsetenv(secretEnv) // not passed on to child processes
	switch {
	case r.secretFile != "" && inEnv:
		return nil, fmt.Errorf("both --worker-secret-file and %s are set: use one", secretEnv)
	case inEnv:
		s, err := wire.ParseSecret([]byte(env))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", secretEnv, err)
		}
		return s, nil
	case r.secretFile == "":
		return nil, nil
	}
	f, err := os.Open(r.secretFile)
	if err != nil {
		return nil, fmt.Errorf("--worker-secret-file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
		log.Warn("the worker secret file can be read by other users; chmod 600 it", "file", r.secretFile, "mode", st.Mode().Perm().String())
	}
	text, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("--worker-secret-file: %w", err)
	}
	s, err := wire.ParseSecret(text)
	if err != nil {
		return nil, fmt.Errorf("--worker-secret-file %s: %w", r.secretFile, err)
	}
	return s, nil
}

func (r *remoteFlags) wire(log *slog.Logger) wire.Options {
	return wire.Options{MaxMessage: int(r.maxMessage), Logger: log}
}

// runRemote is the push and pull case of `faas dispatcher`.
func runRemote(ctx context.Context, mode string, cfg dispatch.Config, bind string, port int, rf *remoteFlags, grace time.Duration, sb *sandboxFlags) error {
	if port < 0 || port > 65535 {
		return fmt.Errorf("-p %d is not a port", port)
	}
	if rf.heartbeat <= 0 || rf.misses < 1 {
		return fmt.Errorf("--heartbeat must be positive and --heartbeat-misses at least 1")
	}
	secret, err := rf.secret(cfg.Logger)
	if err != nil {
		return err
	}
	rc := dispatch.RemoteConfig{
		Config:    cfg,
		Listen:    "tcp://" + net.JoinHostPort(bind, strconv.Itoa(port)),
		Heartbeat: rf.heartbeat,
		Misses:    rf.misses,
		Limits:    sb.limits.limits(),
		Grace:     grace,
		Wire:      rf.wire(cfg.Logger),
		Secret:    secret,
	}
	if mode == "push" {
		return dispatch.RunPush(ctx, rc)
	}
	return dispatch.RunPull(ctx, rc)
}

func cmdPushWorker(args []string) int {
	return cmdWorker("push-worker", args, worker.RunPush, `
Connects to a push-mode dispatcher (faas dispatcher -m push) with a ZeroMQ
DEALER socket, registers with <num_sandboxes> slots and runs the tasks the
dispatcher sends on that many sandboxes. Heartbeats go both ways; when the
dispatcher goes away the worker keeps retrying and registers again, telling
the new one which tasks it still holds. SIGINT/SIGTERM: stop taking tasks,
let running ones finish for --drain, hand back the rest, exit.`)
}

func cmdPullWorker(args []string) int {
	return cmdWorker("pull-worker", args, worker.RunPull, `
Asks a pull-mode dispatcher (faas dispatcher -m pull) for work with a ZeroMQ
REQ socket whenever one of its <num_sandboxes> sandboxes is free, and backs
off (exponentially, up to --heartbeat) while there is none. Results go back
with the next request. A request without a reply for --heartbeat-misses
intervals (at least 1s) means a new socket and a retry. SIGINT/SIGTERM: stop
asking, let running tasks finish for --drain, hand back the rest, exit.`)
}

func cmdWorker(name string, args []string, run func(context.Context, worker.Config, worker.Runner) error, about string) int {
	fs := newFlagSet(name, "<num_sandboxes> <dispatcher url> [flags]", about+`

A dispatcher with a worker secret admits only workers that hold it: give
the worker the same secret (--worker-secret-file, or FAAS_WORKER_SECRET);
the worker then also refuses a dispatcher that cannot prove it holds it.
Nothing is encrypted: across an untrusted network, use a TLS tunnel.

Example: faas `+name+` 2 tcp://127.0.0.1:5555`)
	wname := fs.String("name", "", "name of this worker in logs and task leases (default host:pid)")
	drain := fs.Duration("drain", 5*time.Second, "on shutdown, how long running tasks may finish before they are handed back")
	bundleCache := int64(worker.DefaultBundleCache)
	fs.Var(byteSize{&bundleCache}, "bundle-cache", "memory for the function bundles (modules registered with a function) fetched from the dispatcher, "+
		"kept for later tasks and shared by all sandboxes; a bundle larger than this is fetched for every task")
	rf := addRemoteFlags(fs, false)
	sb := addSandboxFlags(fs)
	cf := addCommonFlags(fs)
	// Flags may come before, between or after the two arguments.
	pos, err := parseCommandLine(fs.FlagSet, args, true, nil)
	if err != nil {
		return 2
	}
	if len(pos) != 2 {
		fs.Usage()
		return 2
	}
	n, err := strconv.Atoi(pos[0])
	if err != nil || n < 1 {
		return fail(name, fmt.Errorf("<num_sandboxes> must be a positive number, not %q", pos[0]))
	}
	url := pos[1]
	if err := wire.CheckURL(url); err != nil {
		return fail(name, fmt.Errorf("<dispatcher url> %w (example: tcp://127.0.0.1:5555)", err))
	}
	if rf.heartbeat <= 0 || rf.misses < 1 {
		return fail(name, fmt.Errorf("--heartbeat must be positive and --heartbeat-misses at least 1"))
	}
	log, err := cf.logger()
	if err != nil {
		return fail(name, err)
	}
	secret, err := rf.secret(log)
	if err != nil {
		return fail(name, err)
	}
	ctx, cancel := signalContext(log)
	defer cancel()
	// The sandboxes outlive ctx: a stopping worker lets running tasks
	// finish.
	pool, err := sb.pool(context.Background(), n, log)
	if err != nil {
		return fail(name, err)
	}
	defer pool.Close()
	cfg := worker.Config{URL: url, Name: *wname, Heartbeat: rf.heartbeat, Misses: rf.misses, Drain: *drain,
		Limits: sb.limits.limits(), Wire: rf.wire(log), Secret: secret, BundleCache: bundleCache, Walls: pool.Stats().Walls, Logger: log}
	if err := run(ctx, cfg, pool); err != nil {
		return fail(name, err)
	}
	return 0
}
