package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wasmfaas/wasmfaas/internal/pyfixture"
	"github.com/wasmfaas/wasmfaas/store/redistest"
)

// Shutting down answers pending long-polls with the current status, then
// Serve returns nil.
func TestServeShutsDownGracefully(t *testing.T) {
	e := newEnv(t, redistest.StartMini(t), Options{MaxWait: 10 * time.Minute})
	fnID := e.register(pyfixture.Fixture(t, "fib"))
	taskID := e.execute(fnID, pyfixture.Fixture(t, "args_simple"))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- ServeListener(ctx, ln, e.h, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	type answer struct {
		status int
		body   map[string]any
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/result/" + taskID + "?wait=10m")
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		got <- answer{resp.StatusCode, body, err}
	}()
	waitForWaiters(t, e.h, 1)
	cancel()
	select {
	case a := <-got:
		if a.err != nil || a.status != 200 || a.body["status"] != "QUEUED" {
			t.Fatalf("long-poll during shutdown: %+v", a)
		}
	case <-time.After(DrainTimeout + 30*time.Second):
		t.Fatal("the long-poll was not answered on shutdown")
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v, want nil after a clean shutdown", err)
		}
	case <-time.After(DrainTimeout + 30*time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestServeReportsListenErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Serve(context.Background(), ln.Addr().String(), http.NotFoundHandler(), nil)
	if err == nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("Serve on a taken port = %v", err)
	}
}
