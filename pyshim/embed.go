// Package pyshim holds the Python code that runs inside every sandbox
// (pyshim.py): it loads a dill-pickled function and its arguments, calls it,
// and returns the pickled result or exception to the host through linear
// memory. The Go side only embeds the file; runtime/ mounts it read-only at
// /faas in the guest and imports it before taking the interpreter snapshot.
package pyshim

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
)

//go:embed pyshim.py
var FS embed.FS

// Hash identifies this version of the guest code; snapshots are keyed by it.
func Hash() string {
	b, err := FS.ReadFile("pyshim.py")
	if err != nil {
		panic("pyshim: embedded file missing: " + err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
