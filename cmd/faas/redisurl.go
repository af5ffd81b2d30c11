package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The --redis URL forms, the same in every command:
//
//	redis://[[user]:password@]host:port[/db]      one Redis
//	rediss://...                                  the same over TLS
//	redis-sentinel://[[user]:password@]host:port[,host:port...][/db]?master=name[&sentinel_password=...]
//	                                              Redis Sentinel: the sentinels' addresses, the
//	                                              primary followed through failovers
//	redis-cluster://...                           refused for now (see parseRedisURL)
//
// --redis-sentinel host:port,... with --redis-master name is the flag form
// of a redis-sentinel URL (database 0) and replaces --redis.
//
// A password in FAAS_REDIS_PASSWORD, or in the file --redis-password-file
// names, replaces the URL's (so that it stays out of process listings and
// logs), and FAAS_REDIS_SENTINEL_PASSWORD the sentinels' (sentinel_password);
// a redisTarget's display, what the logs show, has neither.

const (
	redisURLHelp = "Redis URL: redis://host:port/db, rediss:// (TLS), or redis-sentinel://host:port,host:port/db?master=name " +
		"(Sentinel: the primary is followed through failovers; the sentinels' own password in FAAS_REDIS_SENTINEL_PASSWORD)"
	redisPasswordHelp = "file holding the Redis password (replaces the URL's; FAAS_REDIS_PASSWORD does the same)"
)

// sentinelFlags are --redis-sentinel and --redis-master.
type sentinelFlags struct{ addrs, master string }

func addSentinelFlags(fs *flagSet) *sentinelFlags {
	s := &sentinelFlags{}
	fs.StringVar(&s.addrs, "redis-sentinel", "", "Redis Sentinel: the sentinels' addresses, host:port,host:port,... "+
		"(with --redis-master; replaces --redis, database 0)")
	fs.StringVar(&s.master, "redis-master", "", "Redis Sentinel: the name of the primary the sentinels monitor (with --redis-sentinel)")
	return s
}

// redisURL is the --redis URL the flags stand for: raw, or the
// redis-sentinel URL of --redis-sentinel and --redis-master.
func (s *sentinelFlags) redisURL(raw string) (string, error) {
	switch {
	case s.addrs == "" && s.master == "":
		return raw, nil
	case s.addrs == "":
		return "", errors.New("--redis-master needs --redis-sentinel, the sentinels' addresses (host:port,host:port,...)")
	case s.master == "":
		return "", errors.New("--redis-sentinel needs --redis-master, the name of the primary the sentinels monitor")
	}
	addrs := strings.Split(s.addrs, ",")
	for i, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" || strings.ContainsAny(a, "/?#@ \t") {
			return "", fmt.Errorf("--redis-sentinel %q: each address is host or host:port, separated by commas", s.addrs)
		}
		addrs[i] = withSentinelPort(a)
	}
	return "redis-sentinel://" + strings.Join(addrs, ",") + "/0?master=" + url.QueryEscape(s.master), nil
}

// redisTarget is a parsed --redis.
type redisTarget struct {
	single   *redis.Options
	failover *redis.FailoverOptions
	display  string // for logs: the URL without its password
}

// parseRedisURL parses a --redis URL; password and sentinelPassword, if
// not empty, replace the URL's.
func parseRedisURL(raw, password, sentinelPassword string) (*redisTarget, error) {
	raw, hosts := splitSentinelHosts(raw)
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--redis: %v", err)
	}
	shown := *u
	if q := u.Query(); q.Has("sentinel_password") {
		q.Set("sentinel_password", "xxxxx")
		shown.RawQuery = q.Encode()
	}
	display := shown.Redacted()
	if hosts != nil {
		display = strings.Replace(display, sentinelHostsMark, strings.Join(hosts, ","), 1)
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
		opts, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("--redis %s: %v (example: redis://127.0.0.1:6379/0)", display, err)
		}
		if password != "" {
			opts.Password = password
		}
		if !strings.Contains(u.RawQuery, "protocol=") {
			opts.Protocol = redisProtocol
		}
		return &redisTarget{single: opts, display: display}, nil
	case "redis-sentinel", "rediss-sentinel":
		return parseSentinelURL(u, hosts, password, sentinelPassword, display)
	case "redis-cluster", "rediss-cluster":
		return nil, fmt.Errorf("--redis %s: Redis Cluster is not supported yet: the task scripts touch keys of "+
			"several hash slots (a tenant's queue and its tasks); use one Redis or Redis Sentinel", display)
	default:
		return nil, fmt.Errorf("--redis %s: the scheme must be redis, rediss or redis-sentinel "+
			"(examples: redis://127.0.0.1:6379/0, redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/0?master=mymaster)", display)
	}
}

// sentinelHostsMark stands in for a redis-sentinel URL's host list while
// net/url parses the rest.
const sentinelHostsMark = "sentinel-hosts.invalid"

// splitSentinelHosts takes the host list out of a redis-sentinel URL, each
// address with the sentinels' default port (26379) when it has none, and
// puts sentinelHostsMark in its place: net/url reads what follows the last
// colon of a host for a port, so it refuses "10.0.0.1:26379,10.0.0.2" and
// "[::1]:26379,10.0.0.2:26379". Other URLs come back as they are, with nil.
func splitSentinelHosts(raw string) (string, []string) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (scheme != "redis-sentinel" && scheme != "rediss-sentinel") {
		return raw, nil
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	auth, tail := rest[:end], rest[end:]
	user := ""
	if at := strings.LastIndex(auth, "@"); at >= 0 {
		user, auth = auth[:at+1], auth[at+1:]
	}
	hosts := []string{}
	for _, h := range strings.Split(auth, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hosts = append(hosts, withSentinelPort(h))
		}
	}
	return scheme + "://" + user + sentinelHostsMark + tail, hosts
}

// withSentinelPort is addr (host, [v6 host] or host:port) with the
// sentinels' default port, 26379, when it has none.
func withSentinelPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), "26379")
}

func parseSentinelURL(u *url.URL, addrs []string, password, sentinelPassword, display string) (*redisTarget, error) {
	q := u.Query()
	master := q.Get("master")
	if master == "" {
		return nil, fmt.Errorf("--redis %s: a redis-sentinel URL needs ?master=<the name the sentinels monitor>", display)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("--redis %s: no sentinel address", display)
	}
	db := 0
	if p := strings.Trim(u.Path, "/"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("--redis %s: the database must be a number, not %q", display, p)
		}
		db = n
	}
	opts := &redis.FailoverOptions{MasterName: master, SentinelAddrs: addrs, DB: db, Protocol: redisProtocol,
		SentinelPassword: q.Get("sentinel_password")}
	if u.User != nil {
		opts.Username = u.User.Username()
		opts.Password, _ = u.User.Password()
	}
	if password != "" {
		opts.Password = password
	}
	if sentinelPassword != "" {
		opts.SentinelPassword = sentinelPassword
	}
	if strings.HasPrefix(u.Scheme, "rediss") {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	for k := range q {
		if k != "master" && k != "sentinel_password" {
			return nil, fmt.Errorf("--redis %s: unknown parameter %q (master and sentinel_password are)", display, k)
		}
	}
	return &redisTarget{failover: opts, display: display}, nil
}

// client opens the client for t (no connection is made yet).
func (t *redisTarget) client() redis.UniversalClient {
	if t.failover != nil {
		return redis.NewFailoverClient(t.failover)
	}
	return redis.NewClient(t.single)
}

// redisPassword is the password from FAAS_REDIS_PASSWORD or the file
// file names ("" for neither); both set is an error.
func redisPassword(file string) (string, error) {
	env := os.Getenv("FAAS_REDIS_PASSWORD")
	if file == "" {
		return env, nil
	}
	if env != "" {
		return "", errors.New("both FAAS_REDIS_PASSWORD and --redis-password-file are set; use one")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--redis-password-file: %v", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("--redis-password-file %s is empty", file)
	}
	return pw, nil
}
