package ratelog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestOneLinePerKeyAndInterval(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	for range 5 {
		l.Warn("a", "first key")
	}
	l.Error("b", "second key")
	out := buf.String()
	if n := strings.Count(out, "first key"); n != 1 {
		t.Fatalf("key a logged %d times:\n%s", n, out)
	}
	if !strings.Contains(out, "level=ERROR msg=\"second key\"") {
		t.Fatalf("key b not logged at its level:\n%s", out)
	}

	buf.Reset()
	l = New(slog.New(slog.NewTextHandler(&buf, nil)), 20*time.Millisecond)
	l.Warn("a", "x")
	l.Warn("a", "x")
	l.Warn("a", "x")
	time.Sleep(30 * time.Millisecond)
	l.Warn("a", "x")
	if !strings.Contains(buf.String(), "suppressed_since_last=2") || strings.Count(buf.String(), "msg=x") != 2 {
		t.Fatalf("want 2 lines, the second counting 2 held back:\n%s", buf.String())
	}
}
