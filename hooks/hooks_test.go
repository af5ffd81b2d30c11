package hooks_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wasmfaas/wasmfaas/faastype"
	"github.com/wasmfaas/wasmfaas/hooks"
	"github.com/wasmfaas/wasmfaas/pickle"
	"github.com/wasmfaas/wasmfaas/store"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

func TestCheckURL(t *testing.T) {
	g := hooks.NewGuard(nil, nil)
	loop := hooks.NewGuard(mustCIDRs(t, "127.0.0.0/8"), nil)
	for _, c := range []struct {
		g       *hooks.Guard
		url     string
		wantErr string // "" ok
		denied  bool
	}{
		{g, "https://example.com/hook", "", false},
		{g, "http://example.com:8080/a?b=c", "", false},
		{g, "https://93.184.216.34/x", "", false},
		{g, "https://[2606:2800:220:1:248:1893:25c8:1946]/x", "", false},
		{g, "ftp://example.com/x", `scheme "ftp" is not allowed`, false},
		{g, "file:///etc/passwd", `scheme "file" is not allowed`, false},
		{g, "gopher://127.0.0.1:6379/_FLUSHALL", `scheme "gopher"`, false},
		{g, "example.com/hook", "not an absolute URL", false},
		{g, "http://", "no host", false},
		{g, "http://:80/x", "no host", false},
		{g, "http://exa mple.com/", "not a URL", false},
		{g, "http://user:pw@example.com/", "user name or password", false},
		{g, "http://example.com:99999/", "not a port", false},
		{g, "https://example.com/" + strings.Repeat("a", hooks.MaxURLLength), "longer than", false},
		{g, "http://127.0.0.1:8000/x", "loopback", true},
		{g, "http://127.1.2.3/x", "loopback", true},
		{g, "http://[::1]/x", "loopback", true},
		{g, "http://[::ffff:127.0.0.1]/x", "loopback", true},
		{g, "http://localhost:9000/x", "loopback", true},
		{g, "http://api.localhost./x", "loopback", true},
		{g, "http://10.1.2.3/x", "private", true},
		{g, "http://172.16.0.1/x", "private", true},
		{g, "http://192.168.1.1/x", "private", true},
		{g, "http://169.254.169.254/latest/meta-data/", "link-local", true},
		{g, "http://[fe80::1]/x", "link-local", true},
		{g, "http://[fd00::1]/x", "private", true},
		{g, "http://0.0.0.0/x", "unspecified", true},
		{g, "http://[::]/x", "unspecified", true},
		{g, "http://224.0.0.1/x", "multicast", true},
		{g, "http://100.64.0.1/x", "denied range", true},
		{loop, "http://127.0.0.1:8000/x", "", false},
		{loop, "http://localhost:8000/x", "loopback", true}, // ::1 is not allowed
		{loop, "http://10.0.0.1/x", "private", true},
	} {
		_, err := c.g.CheckURL(c.url)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("CheckURL(%.60q) = %v, want ok", c.url, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("CheckURL(%.60q) = %v, want an error with %q", c.url, err, c.wantErr)
		case err != nil && errors.Is(err, hooks.ErrDenied) != c.denied:
			t.Errorf("CheckURL(%.60q) = %v: denied %v, want %v", c.url, err, !c.denied, c.denied)
		}
	}
}

func mustCIDRs(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := hooks.ParseCIDRs(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGuardAllowed(t *testing.T) {
	g := hooks.NewGuard(mustCIDRs(t, "10.1.0.0/16, ::1"), mustCIDRs(t, "203.0.113.0/24 2001:db8::/32"))
	for _, c := range []struct {
		ip   string
		want bool
	}{
		{"8.8.8.8", true}, {"2001:4860:4860::8888", true},
		{"127.0.0.1", false}, {"::1", true}, {"::ffff:127.0.0.1", false},
		{"10.0.0.1", false}, {"10.1.2.3", true}, {"::ffff:10.1.2.3", true},
		{"203.0.113.9", false}, {"2001:db8::1", false},
		{"169.254.169.254", false}, {"fe80::1%eth0", false}, {"fc00::1", false}, {"255.255.255.255", false},
		{"ff02::1", false}, {"0.0.0.0", false},
	} {
		if got := g.Allowed(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Allowed(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
	if _, err := hooks.ParseCIDRs("10.0.0.0/8,nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("ParseCIDRs with a bad item = %v", err)
	}
	if p, err := hooks.ParseCIDRs(""); err != nil || len(p) != 0 {
		t.Errorf(`ParseCIDRs("") = %v, %v`, p, err)
	}
}

// The client dials only checked addresses: a name that resolves to a
// denied one (localhost here) is refused at connection time, whatever
// CheckURL let through.
func TestClientRefusesDeniedAddressesAtDialTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	c := hooks.NewGuard(nil, nil).Client(5 * time.Second)
	_, err := c.Post("http://localhost:"+port+"/", "text/plain", nil)
	if !errors.Is(err, hooks.ErrDenied) {
		t.Fatalf("POST to localhost = %v, want ErrDenied", err)
	}
	ok := hooks.NewGuard(mustCIDRs(t, "127.0.0.0/8,::1"), nil).Client(5 * time.Second)
	resp, err := ok.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatalf("POST with loopback allowed = %v", err)
	}
	resp.Body.Close()
}

func TestSignature(t *testing.T) {
	s, err := hooks.NewSigner("0123456789abcdef-secret")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hooks.NewSigner("short"); err == nil || strings.Contains(err.Error(), "short") {
		t.Errorf("NewSigner(weak) = %v; want an error without the secret", err)
	}
	if s.Key("") != "0123456789abcdef-secret" {
		t.Error("the default tenant's key is not the secret")
	}
	ka, kb := s.Key("alice"), s.Key("bob")
	if len(ka) != 64 || ka == kb || ka == s.Key("") {
		t.Errorf("tenant keys %q, %q are not distinct 64-hex-digit keys", ka, kb)
	}
	body := []byte(`{"task_id":"x"}` + "\n")
	at := time.Unix(1_800_000_000, 0)
	sig := hooks.Sign(ka, at, body)
	// The documented scheme, computed independently in the README's terms.
	if !strings.HasPrefix(sig, "t=1800000000,v1=") || len(sig) != len("t=1800000000,v1=")+64 {
		t.Fatalf("signature %q", sig)
	}
	for _, c := range []struct {
		name   string
		key    string
		header string
		body   []byte
		now    time.Time
		ok     bool
	}{
		{"good", ka, sig, body, at.Add(time.Minute), true},
		{"other tenant's key", kb, sig, body, at, false},
		{"body changed", ka, sig, []byte(`{"task_id":"y"}` + "\n"), at, false},
		{"replayed later", ka, sig, body, at.Add(10 * time.Minute), false},
		{"from the future", ka, sig, body, at.Add(-10 * time.Minute), false},
		{"timestamp changed", ka, strings.Replace(sig, "t=1800000000", "t=1800000001", 1), body, at, false},
		{"malformed", ka, "v1=abc", body, at, false},
		{"empty", ka, "", body, at, false},
	} {
		err := hooks.Verify(c.key, c.header, c.body, c.now, hooks.DefaultTolerance)
		if (err == nil) != c.ok {
			t.Errorf("%s: Verify = %v, want ok %v", c.name, err, c.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	for _, c := range []struct {
		n    int
		u    float64
		want time.Duration
	}{
		{1, 0, 500 * time.Millisecond}, {1, 0.999999, time.Second - time.Microsecond},
		{2, 0, time.Second}, {3, 0, 2 * time.Second}, {4, 0.5, 6 * time.Second},
		{30, 0, 30 * time.Second}, {1000, 0, 30 * time.Second},
	} {
		got := hooks.Backoff(c.n, time.Second, time.Minute, c.u)
		if got < c.want-time.Microsecond || got > c.want+time.Microsecond {
			t.Errorf("Backoff(%d, u=%v) = %v, want %v", c.n, c.u, got, c.want)
		}
	}
}

// receiver is a webhook receiver that fails the first fails requests.
type receiver struct {
	mu    sync.Mutex
	fails int
	got   []delivery
}

type delivery struct {
	header http.Header
	body   []byte
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.got = append(rc.got, delivery{r.Header.Clone(), b})
	n := len(rc.got)
	rc.mu.Unlock()
	if n <= rc.fails {
		http.Error(w, "not now", http.StatusServiceUnavailable)
	}
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

// A deliverer against a receiver that fails twice: three signed posts of
// the same body with the same Idempotency-Key, one recorded success;
// against one that always fails it gives up after its attempts.
func TestDeliverer(t *testing.T) {
	for _, b := range redistest.Backends {
		t.Run(b.Name, func(t *testing.T) {
			rdb := b.Start(t)
			st := store.New(rdb, store.Options{})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			flaky := &receiver{fails: 2}
			dead := &receiver{fails: 1 << 30}
			fs, ds := httptest.NewServer(flaky), httptest.NewServer(dead)
			defer fs.Close()
			defer ds.Close()
			signer, _ := hooks.NewSigner("a-webhook-secret-for-tests")
			d, err := hooks.NewDeliverer(hooks.Config{Store: st,
				Settings: hooks.Settings{Guard: hooks.NewGuard(mustCIDRs(t, "127.0.0.0/8"), nil), Signer: signer},
				Backoff:  20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, MaxAttempts: 3, Poll: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ok := finish(t, st, "alice", fs.URL+"/hook")
			bad := finish(t, st, "", ds.URL+"/hook")
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { d.Run(runCtx); close(done) }()
			defer func() { stop(); <-done }()
			waitState(t, st, ok, store.CallbackDelivered)
			waitState(t, st, bad, store.CallbackUndeliverable)
			got := flaky.deliveries()
			if len(got) != 3 {
				t.Fatalf("the flaky receiver got %d posts, want 3", len(got))
			}
			for i, dl := range got {
				if err := hooks.Verify(signer.Key("alice"), dl.header.Get("X-WasmFaaS-Signature"), dl.body, time.Now(), time.Minute); err != nil {
					t.Errorf("post %d: %v", i+1, err)
				}
				if k := dl.header.Get("Idempotency-Key"); k != ok+":0" { // cancelled before it ran: 0 runs
					t.Errorf("post %d: Idempotency-Key %q, want %q", i+1, k, ok+":0")
				}
				if a := dl.header.Get("X-WasmFaaS-Delivery-Attempt"); a != string(rune('1'+i)) {
					t.Errorf("post %d: attempt header %q", i+1, a)
				}
				if string(dl.body) != string(got[0].body) || !strings.Contains(string(dl.body), `"status":"FAILED"`) ||
					strings.Contains(string(dl.body), `"callback"`) {
					t.Errorf("post %d: body %s", i+1, dl.body)
				}
			}
			if n := len(dead.deliveries()); n != 3 {
				t.Errorf("the dead receiver got %d posts, want 3 (MaxAttempts)", n)
			}
			tk, _ := st.GetTask(ctx, bad)
			if tk.Callback.Attempts != 3 || tk.Callback.Error != "HTTP 503" {
				t.Errorf("undeliverable callback = %+v", tk.Callback)
			}
			stats, _ := st.Stats(ctx)
			if w := stats.Webhooks; w["delivered"] != 1 || w["failed"] != 5 || w["undeliverable"] != 1 {
				t.Errorf("webhook stats = %v", w)
			}
		})
	}
}

// finish makes a FAILED (cancelled) task of tenant with a callback.
func finish(t *testing.T, st *store.Store, tenant, url string) string {
	t.Helper()
	ctx := context.Background()
	id := uuid.NewString()
	fn := pickle.EncodeBase64(pickle.SourcePayload("def f():\n    return 1\n", "f", "f"))
	if err := st.Enqueue(ctx, store.Task{ID: id, FunctionID: uuid.NewString(), FnPayload: fn, ParamPayload: fn,
		Isolation: faastype.Warm, Owner: tenant, CallbackURL: url}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	return id
}

func waitState(t *testing.T, st *store.Store, id string, want store.CallbackState) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		tk, err := st.GetTask(context.Background(), id)
		if err == nil && tk.Callback != nil && tk.Callback.State == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tk, _ := st.GetTask(context.Background(), id)
	t.Fatalf("task %s: callback %+v, want %s", id, tk.Callback, want)
}

// A deliverer that sleeps between polls is woken when a webhook is queued:
// the delivery does not wait for the poll.
func TestDelivererIsWokenByNewWebhooks(t *testing.T) {
	rdb := redistest.StartMini(t)
	st := store.New(rdb, store.Options{})
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	signer, _ := hooks.NewSigner("a-webhook-secret-for-tests")
	d, err := hooks.NewDeliverer(hooks.Config{Store: st, Poll: time.Hour,
		Settings: hooks.Settings{Guard: hooks.NewGuard(mustCIDRs(t, "127.0.0.0/8"), nil), Signer: signer}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	defer func() { stop(); <-done }()
	time.Sleep(200 * time.Millisecond) // it polled once and sleeps
	start := time.Now()
	id := finish(t, st, "", srv.URL+"/")
	waitState(t, st, id, store.CallbackDelivered)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("delivered after %v", took)
	}
}
