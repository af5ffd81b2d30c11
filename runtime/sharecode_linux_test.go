//go:build linux

package runtime

import (
	"os"
	"path/filepath"
	"testing"
)

// Sandboxes that start together with no shared code file yet each write
// one: the first stays, so that all of them map the same file (one copy in
// the page cache), and a later writer's file is dropped.
func TestSharedCodeFileIsWrittenOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.code")
	if err := writeAtomic(dir, path, []byte("first")); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeAtomic(dir, path, []byte("second")); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("a second writer replaced the shared code file: processes that mapped the first keep their own copy")
	}
	if b, _ := os.ReadFile(path); string(b) != "first" {
		t.Fatalf("the file holds %q", b)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".code-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
