package runtime

import (
	"io/fs"

	"github.com/wasmfaas/wasmfaas/bundle"
)

// bundleDir is where a function's bundle appears in the guest, read-only;
// pyshim puts it first on sys.path for a function that has one.
const bundleDir = "/bundle"

// emptyTree is what /bundle shows a function without a bundle.
var emptyTree = bundle.Empty()

// bundleMount is /bundle of one instance. The mount is part of the
// snapshot layout, so every instance has it from the start; what it shows
// is set per task before the guest runs (child.handle): mounting a bundle
// is a pointer to an open, immutable bundle.Tree, shared by every instance
// of the process, never a copy.
type bundleMount struct {
	tree *bundle.Tree
}

func (m *bundleMount) set(t *bundle.Tree) {
	if t == nil {
		t = emptyTree
	}
	m.tree = t
}

// Open implements fs.FS.
func (m *bundleMount) Open(name string) (fs.File, error) {
	if m.tree == nil {
		return emptyTree.Open(name)
	}
	return m.tree.Open(name)
}
