// Package hooks delivers completion webhooks: when a task with a callback
// URL becomes final, a POST of its GET /result body (taskview.WebhookBody)
// to that URL, signed with its tenant's key (sign.go), retried with
// exponential back-off and jitter for a bounded time, then recorded as
// undeliverable (deliver.go). The store queues them reliably (store/hooks.go);
// every dispatcher runs a Deliverer. The Guard (this file) keeps tenants
// from making the platform call internal services: only http and https,
// and no loopback, private, link-local, unique-local, unspecified or
// multicast address unless the operator allows it.
package hooks

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrDenied is wrapped by the errors of a callback URL or address that the
// guard refuses.
var ErrDenied = errors.New("address not allowed")

// MaxURLLength is the longest callback URL accepted.
const MaxURLLength = 2048

// DefaultDeny are the address ranges no webhook may reach unless allowed:
// loopback, RFC 1918 private, shared (CGNAT), link-local (cloud metadata
// services live there), unique-local IPv6, unspecified, "this network",
// broadcast and multicast.
var DefaultDeny = mustPrefixes(
	"127.0.0.0/8", "::1/128", // loopback
	"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", // RFC 1918
	"100.64.0.0/10",               // shared address space (RFC 6598)
	"169.254.0.0/16", "fe80::/10", // link-local
	"fc00::/7",            // unique-local
	"0.0.0.0/8", "::/128", // unspecified, this network
	"255.255.255.255/32",      // broadcast
	"224.0.0.0/4", "ff00::/8", // multicast
)

func mustPrefixes(list ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(list))
	for i, s := range list {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// ParseCIDRs reads a list of CIDR ranges or bare addresses, separated by
// commas or spaces ("127.0.0.0/8, ::1"); "" is none.
func ParseCIDRs(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if p, err := netip.ParsePrefix(item); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR range (10.0.0.0/8, fd00::/8) or an address", item)
		}
		a = a.Unmap().WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Guard decides which addresses webhooks may reach: an address in an
// allowed range is reachable; otherwise one in a denied range (DefaultDeny
// and the extra ones) is not; any other is. Allow thus makes exceptions to
// the denials (tests allow 127.0.0.0/8); deny 0.0.0.0/0 and ::/0 and allow
// a few ranges for an allow-list only.
type Guard struct {
	allow, deny []netip.Prefix
}

// NewGuard returns a guard that denies DefaultDeny and deny, except allow.
func NewGuard(allow, deny []netip.Prefix) *Guard {
	return &Guard{allow: append([]netip.Prefix(nil), allow...), deny: append(append([]netip.Prefix(nil), DefaultDeny...), deny...)}
}

// Allowed reports whether a webhook may connect to ip (IPv4-mapped IPv6
// addresses are judged as the IPv4 address they map).
func (g *Guard) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return false
	}
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	for _, p := range g.deny {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// CheckURL checks a callback URL as given to the API: absolute, http or
// https, a host, no user:password (the receiver checks the signature
// instead), at most MaxURLLength bytes, and, when its host is an address
// (or localhost), an address the guard allows. A host name is resolved
// and checked at each delivery (Client). The error says what is wrong and
// wraps ErrDenied for a refused address.
func (g *Guard) CheckURL(raw string) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, fmt.Errorf("the URL is longer than %d bytes", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %v", strings.TrimPrefix(err.Error(), "parse "+fmt.Sprintf("%q", raw)+": "))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			return nil, errors.New("not an absolute URL: give http://host/... or https://host/...")
		}
		return nil, fmt.Errorf("scheme %q is not allowed: only http and https", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, errors.New("the URL has no host")
	}
	if u.User != nil {
		return nil, errors.New("the URL carries a user name or password: leave them out (the receiver checks the signature instead)")
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %q is not a port number", p)
		}
	}
	host := u.Hostname()
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if h := strings.ToLower(strings.TrimSuffix(host, ".")); h == "localhost" || strings.HasSuffix(h, ".localhost") {
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	}
	for _, a := range addrs {
		if !g.Allowed(a) {
			return nil, fmt.Errorf("%w: %s is %s; webhooks may not reach it", ErrDenied, host, describe(a))
		}
	}
	return u, nil
}

// describe says what kind of address a denied one is.
func describe(a netip.Addr) string {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return "a loopback address"
	case a.IsPrivate():
		return "a private address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.IsUnspecified():
		return "the unspecified address"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "a multicast address"
	}
	return "in a denied range"
}

// control refuses a connection to an address the guard denies. The dialer
// calls it with the resolved address it is about to connect to, for every
// address it tries: the address checked is the address dialed, so a DNS
// answer that changes between a check and the connection (rebinding)
// cannot slip a denied one through.
func (g *Guard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s is not an address", ErrDenied, address)
	}
	if !g.Allowed(ap.Addr()) {
		return fmt.Errorf("%w: %s is %s", ErrDenied, ap.Addr(), describe(ap.Addr()))
	}
	return nil
}

// Client returns an HTTP client for webhooks: every connection goes
// through the guard, no proxy from the environment (it would be dialed
// instead of the receiver), redirects are not followed (the answer counts
// as a failure), and each request takes at most timeout.
func (g *Guard) Client(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: min(timeout, 10*time.Second), KeepAlive: 30 * time.Second, Control: g.control}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   min(timeout, 10*time.Second),
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// denied reports whether err is the guard's refusal.
func denied(err error) bool { return errors.Is(err, ErrDenied) }
