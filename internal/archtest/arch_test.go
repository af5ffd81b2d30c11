// Package archtest checks the import graph against the architecture that
// README's package table describes: shared types in a leaf, storage that
// knows no transport and runs no code, a sandbox host that is a leaf, and
// workers that link no Redis client.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/wasmfaas/wasmfaas/"

func TestImportGraph(t *testing.T) {
	for _, tc := range []struct {
		pkg string
		// allowed are the only packages of this module pkg may link
		// (besides itself).
		allowed []string
		// forbidden are import path prefixes pkg must not link.
		forbidden []string
	}{
		{pkg: "faastype", allowed: []string{}, forbidden: []string{"github.com/", "golang.org/x/"}},
		{pkg: "pickle", allowed: []string{"faastype"}, forbidden: []string{"github.com/"}},
		{pkg: "bundle", allowed: []string{}, forbidden: []string{"github.com/", "golang.org/x/"}},
		{pkg: "wire", allowed: []string{"faastype", "internal/ratelog"}, forbidden: []string{"github.com/redis/", "github.com/tetratelabs/wazero"}},
		{pkg: "schedule", allowed: []string{}, forbidden: []string{"github.com/redis/", "github.com/go-zeromq/", "github.com/tetratelabs/wazero"}},
		{pkg: "store", allowed: []string{"faastype", "pickle", "schedule"}, forbidden: []string{"github.com/go-zeromq/", "github.com/tetratelabs/wazero"}},
		{pkg: "taskview", allowed: []string{"faastype", "pickle", "schedule", "store"}, forbidden: []string{"github.com/go-zeromq/", "github.com/tetratelabs/wazero"}},
		{pkg: "hooks", allowed: []string{"faastype", "pickle", "schedule", "store", "taskview"}, forbidden: []string{"github.com/go-zeromq/", "github.com/tetratelabs/wazero"}},
		{pkg: "api", allowed: []string{"bundle", "faastype", "hooks", "pickle", "schedule", "store", "taskview"}, forbidden: []string{"github.com/go-zeromq/", "github.com/tetratelabs/wazero"}},
		{pkg: "runtime", allowed: []string{"bundle", "faastype", "pyshim"}, forbidden: []string{"github.com/redis/", "github.com/go-zeromq/"}},
		{pkg: "worker", allowed: []string{"bundle", "faastype", "internal/ratelog", "wire"}, forbidden: []string{"github.com/redis/", "github.com/alicebob/"}},
		{pkg: "dispatch", allowed: []string{"bundle", "faastype", "hooks", "internal/ratelog", "pickle", "schedule", "store", "taskview", "wire"}, forbidden: []string{"github.com/tetratelabs/wazero"}},
	} {
		t.Run(tc.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-deps", module+tc.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tc.pkg, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				own, ok := strings.CutPrefix(dep, module)
				if !ok {
					for _, f := range tc.forbidden {
						if strings.HasPrefix(dep, f) {
							t.Errorf("%s links %s", tc.pkg, dep)
						}
					}
					continue
				}
				if own == tc.pkg {
					continue
				}
				found := false
				for _, a := range tc.allowed {
					found = found || own == a
				}
				if !found {
					t.Errorf("%s links %s, which is not among the packages it may use %v", tc.pkg, own, tc.allowed)
				}
			}
		})
	}
}
