package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --redis-sentinel and --redis-master stand for a redis-sentinel URL, which
// parses to the same Sentinel client options; one without the other is an
// error, and neither leaves --redis as it is.
func TestSentinelFlags(t *testing.T) {
	cases := []struct {
		addrs, master, raw string
		want, err          string
		parsed             string // the sentinel addresses the URL parses to
	}{
		{raw: "redis://10.0.0.9:6379/3", want: "redis://10.0.0.9:6379/3"},
		{addrs: "10.0.0.1:26379, 10.0.0.2", master: "my primary", raw: "redis://127.0.0.1:6379/0",
			want: "redis-sentinel://10.0.0.1:26379,10.0.0.2:26379/0?master=my+primary", parsed: "10.0.0.1:26379 10.0.0.2:26379"},
		{addrs: "10.0.0.1:26379", err: "needs --redis-master"},
		{master: "faas", err: "needs --redis-sentinel"},
		{addrs: "10.0.0.1:26379,,10.0.0.2", master: "faas", err: "host or host:port"},
		{addrs: "[::1],10.0.0.2:26380", master: "faas", want: "redis-sentinel://[::1]:26379,10.0.0.2:26380/0?master=faas",
			parsed: "[::1]:26379 10.0.0.2:26380"},
		{addrs: "u:p@10.0.0.1:26379", master: "faas", err: "host or host:port"},
		{addrs: "10.0.0.1:26379/1", master: "faas", err: "host or host:port"},
	}
	for _, c := range cases {
		got, err := (&sentinelFlags{addrs: c.addrs, master: c.master}).redisURL(c.raw)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q %q: error %v, want %q", c.addrs, c.master, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q %q: %q %v, want %q", c.addrs, c.master, got, err, c.want)
			continue
		}
		if c.master == "" {
			continue
		}
		r, err := parseRedisURL(got, "pw", "")
		if err != nil || r.failover == nil || r.failover.MasterName != c.master || r.failover.Password != "pw" ||
			strings.Join(r.failover.SentinelAddrs, " ") != c.parsed || r.failover.DB != 0 {
			t.Errorf("%q parses to %+v, %v", got, r, err)
		}
	}
}

func TestParseRedisURL(t *testing.T) {
	cases := []struct {
		url, password, sentinelPassword string
		check                           func(t *testing.T, r *redisTarget)
		err                             string
	}{
		{url: "redis://127.0.0.1:6379/2", check: func(t *testing.T, r *redisTarget) {
			if r.single == nil || r.single.Addr != "127.0.0.1:6379" || r.single.DB != 2 || r.single.Protocol != 2 {
				t.Fatalf("%+v", r.single)
			}
		}},
		{url: "redis://:secret@10.0.0.1:6380/0", check: func(t *testing.T, r *redisTarget) {
			if r.single.Password != "secret" || strings.Contains(r.display, "secret") {
				t.Fatalf("password %q, display %q", r.single.Password, r.display)
			}
		}},
		{url: "redis://:inurl@10.0.0.1:6380/0", password: "fromfile", check: func(t *testing.T, r *redisTarget) {
			if r.single.Password != "fromfile" {
				t.Fatalf("password %q", r.single.Password)
			}
		}},
		{url: "rediss://10.0.0.1:6380/0", check: func(t *testing.T, r *redisTarget) {
			if r.single.TLSConfig == nil {
				t.Fatal("no TLS")
			}
		}},
		{url: "redis://127.0.0.1:6379/0?protocol=3", check: func(t *testing.T, r *redisTarget) {
			if r.single.Protocol != 3 {
				t.Fatal("protocol", r.single.Protocol)
			}
		}},
		{url: "redis-sentinel://:pw@10.0.0.1:26379,10.0.0.2,10.0.0.3:26380/1?master=faas&sentinel_password=sp",
			check: func(t *testing.T, r *redisTarget) {
				f := r.failover
				if f == nil || f.MasterName != "faas" || f.DB != 1 || f.Password != "pw" || f.SentinelPassword != "sp" ||
					strings.Join(f.SentinelAddrs, " ") != "10.0.0.1:26379 10.0.0.2:26379 10.0.0.3:26380" {
					t.Fatalf("%+v", f)
				}
				if strings.Contains(r.display, ":pw@") {
					t.Fatalf("display %q shows the password", r.display)
				}
			}},
		{url: "redis-sentinel://10.0.0.1:26379/0?master=faas&sentinel_password=s3cr3t", check: func(t *testing.T, r *redisTarget) {
			if r.failover.SentinelPassword != "s3cr3t" || strings.Contains(r.display, "s3cr3t") || !strings.Contains(r.display, "master=faas") {
				t.Fatalf("sentinel password %q, display %q", r.failover.SentinelPassword, r.display)
			}
		}},
		{url: "redis-sentinel://10.0.0.1:26379/0?master=faas&sentinel_password=inurl", sentinelPassword: "fromenv",
			check: func(t *testing.T, r *redisTarget) {
				if r.failover.SentinelPassword != "fromenv" || strings.Contains(r.display, "inurl") {
					t.Fatalf("sentinel password %q, display %q", r.failover.SentinelPassword, r.display)
				}
			}},
		{url: "rediss-sentinel://10.0.0.1:26379?master=faas", check: func(t *testing.T, r *redisTarget) {
			if r.failover.TLSConfig == nil {
				t.Fatal("no TLS")
			}
		}},
		{url: "redis-sentinel://10.0.0.1:26379,10.0.0.2/0?master=faas", check: func(t *testing.T, r *redisTarget) {
			if strings.Join(r.failover.SentinelAddrs, " ") != "10.0.0.1:26379 10.0.0.2:26379" {
				t.Fatalf("%+v", r.failover.SentinelAddrs)
			}
		}},
		{url: "redis-sentinel://u:p@[::1],10.0.0.2?master=faas", check: func(t *testing.T, r *redisTarget) {
			if strings.Join(r.failover.SentinelAddrs, " ") != "[::1]:26379 10.0.0.2:26379" || r.failover.Password != "p" {
				t.Fatalf("%+v", r.failover)
			}
		}},
		{url: "redis-sentinel://10.0.0.1:26379/0", err: "needs ?master="},
		{url: "redis-sentinel://10.0.0.1:26379/x?master=m", err: "database must be a number"},
		{url: "redis-sentinel://10.0.0.1:26379/0?master=m&x=1", err: "unknown parameter"},
		{url: "redis-cluster://10.0.0.1:7000,10.0.0.2:7000", err: "Redis Cluster is not supported yet"},
		{url: "http://10.0.0.1:6379", err: "the scheme must be"},
		{url: "redis://:secret@10.0.0.1:6379/zz", err: "--redis"},
	}
	for _, c := range cases {
		t.Run(c.url, func(t *testing.T) {
			r, err := parseRedisURL(c.url, c.password, c.sentinelPassword)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, r)
		})
	}
}

func TestRedisPassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	os.WriteFile(file, []byte("s3cret\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	cases := []struct {
		env, file, want, err string
	}{
		{"", "", "", ""},
		{"fromenv", "", "fromenv", ""},
		{"", file, "s3cret", ""},
		{"fromenv", file, "", "both"},
		{"", empty, "", "is empty"},
		{"", filepath.Join(dir, "missing"), "", "--redis-password-file"},
	}
	for _, c := range cases {
		t.Setenv("FAAS_REDIS_PASSWORD", c.env)
		got, err := redisPassword(c.file)
		if (err != nil) != (c.err != "") || (err != nil && !strings.Contains(err.Error(), c.err)) || got != c.want {
			t.Errorf("env %q file %q: %q, %v; want %q, %q", c.env, c.file, got, err, c.want, c.err)
		}
	}
}
