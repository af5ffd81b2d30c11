package api

import (
	"net/http"
	"testing"

	"github.com/wasmfaas/wasmfaas/hooks"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

func webhookOptions(t *testing.T, allow string) Options {
	t.Helper()
	s, err := hooks.NewSigner("a-webhook-secret-for-tests")
	if err != nil {
		t.Fatal(err)
	}
	p, err := hooks.ParseCIDRs(allow)
	if err != nil {
		t.Fatal(err)
	}
	return Options{Webhooks: hooks.Settings{Signer: s, Guard: hooks.NewGuard(p, nil)}}
}

// callback_url on register and execute: checked (400 with the reason), a
// function's default copied to its calls unless a call gives its own or
// null, and shown in GET /result.
func TestCallbackURLs(t *testing.T) {
	e := newEnv(t, redistest.StartMini(t), webhookOptions(t, "127.0.0.0/8"))
	src := "def f(x):\n    return x"
	for _, c := range []struct {
		url, want string
	}{
		{"ftp://example.com/x", `scheme "ftp" is not allowed`},
		{"example.com/hook", "not an absolute URL"},
		{"http://10.0.0.5/hook", "10.0.0.5 is a private address"},
		{"http://[::1]:9000/hook", "::1 is a loopback address"},
		{"http://169.254.169.254/latest", "link-local"},
		{"http://localhost:8000/", "loopback"}, // ::1 is not allowed here
		{"https://u:p@example.com/", "user name or password"},
		{"http://exa mple.com/", "not a URL"},
	} {
		r := e.do("POST", "/register_function", map[string]any{"name": "f", "source": src, "callback_url": c.url})
		expectError(t, r, http.StatusBadRequest, c.want)
	}
	fid := e.do("POST", "/register_function", map[string]any{"name": "f", "source": src,
		"callback_url": "https://example.com/default"}).str("function_id")
	for _, c := range []struct {
		url, want string
	}{
		{"gopher://127.0.0.1:6379/", `scheme "gopher"`},
		{"http://192.168.1.1/", "private"},
	} {
		r := e.do("POST", "/execute_function", map[string]any{"function_id": fid, "args": []int{1}, "callback_url": c.url})
		expectError(t, r, http.StatusBadRequest, c.want)
		r = e.do("POST", "/execute_batch", map[string]any{"function_id": fid, "calls": []any{map[string]any{}}, "callback_url": c.url})
		expectError(t, r, http.StatusBadRequest, c.want)
	}
	expectError(t, e.do("POST", "/execute_function", map[string]any{"function_id": fid, "args": []int{1}, "callback_url": 3}),
		http.StatusUnprocessableEntity, "must be a string")
	for _, c := range []struct {
		body map[string]any
		want string // "" none
	}{
		{map[string]any{}, "https://example.com/default"},
		{map[string]any{"callback_url": "http://127.0.0.1:9/own"}, "http://127.0.0.1:9/own"},
		{map[string]any{"callback_url": nil}, ""},
		{map[string]any{"callback_url": ""}, ""},
	} {
		body := map[string]any{"function_id": fid, "args": []int{1}}
		for k, v := range c.body {
			body[k] = v
		}
		tid := e.do("POST", "/execute_function", body).str("task_id")
		tk, err := e.st.GetTask(t.Context(), tid)
		if err != nil || tk.CallbackURL != c.want {
			t.Fatalf("%v: task callback %q, %v; want %q", c.body, tk.CallbackURL, err, c.want)
		}
		r := e.do("GET", "/result/"+tid, nil)
		cb, _ := r.body["callback"].(map[string]any)
		if (c.want == "") != (cb == nil) || (cb != nil && (cb["url"] != c.want || cb["state"] != "waiting")) {
			t.Fatalf("%v: /result callback = %v", c.body, r.body["callback"])
		}
	}
	r := e.do("GET", "/webhook_secret", nil)
	if r.status != 200 || r.str("secret") != "a-webhook-secret-for-tests" {
		t.Fatalf("GET /webhook_secret in open mode = %d %v", r.status, r.raw)
	}
}

// Without a secret, webhooks are off: a callback URL is refused, and so is
// GET /webhook_secret.
func TestCallbackURLsOff(t *testing.T) {
	e := newEnv(t, redistest.StartMini(t), Options{})
	r := e.do("POST", "/register_function", map[string]any{"name": "f", "source": "def f():\n    return 1",
		"callback_url": "https://example.com/"})
	expectError(t, r, http.StatusBadRequest, "webhooks are off")
	expectError(t, e.do("GET", "/webhook_secret", nil), http.StatusNotFound, "--webhook-secret")
	// null is still fine: no webhook asked for.
	if r := e.do("POST", "/register_function", map[string]any{"name": "f", "source": "def f():\n    return 1", "callback_url": nil}); r.status != 200 {
		t.Fatalf("register with callback_url null = %d %s", r.status, r.raw)
	}
}

// Each tenant gets its own key, from the same secret.
func TestWebhookSecretIsPerTenant(t *testing.T) {
	opts := webhookOptions(t, "")
	opts.Auth = testAuth(t)
	e := newEnv(t, redistest.StartMini(t), opts)
	a := e.as(aliceToken).do("GET", "/webhook_secret", nil).str("secret")
	b := e.as(bobToken).do("GET", "/webhook_secret", nil).str("secret")
	if a == "" || a == b || a != opts.Webhooks.Signer.Key("alice") || b != opts.Webhooks.Signer.Key("bob") {
		t.Fatalf("alice's key %q, bob's %q", a, b)
	}
	if r := e.as("").do("GET", "/webhook_secret", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", r.status)
	}
}
