// Package testkit holds small helpers that the tests of several packages
// share: a logger that stays quiet unless FAAS_TEST_VERBOSE is set, and a
// free loopback address for a ZeroMQ socket. Tests only; nothing else links
// it.
package testkit

import (
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
)

// Logger discards everything, or with FAAS_TEST_VERBOSE set writes debug
// and up to stderr.
func Logger() *slog.Logger {
	if os.Getenv("FAAS_TEST_VERBOSE") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// FreeURL is tcp://127.0.0.1:<a port free a moment ago>.
func FreeURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "tcp://127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
