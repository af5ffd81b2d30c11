package runtime

import (
	"fmt"
	"strings"
)

// Walls says how a sandbox process locks itself down, at the OS level,
// after it has mapped the image and the snapshot and before it reads its
// first task: a second wall around the guest besides wazero's memory
// safety and WASI's missing capabilities (see lockDown).
type Walls string

const (
	// WallsBestEffort puts up every wall the kernel supports and says
	// which are up (the default).
	WallsBestEffort Walls = "best-effort"
	// WallsStrict refuses to run a sandbox process without all of them.
	WallsStrict Walls = "strict"
	// WallsOff puts up none (debugging; not for untrusted code).
	WallsOff Walls = "off"
)

// ParseWalls accepts "", "best-effort", "strict" and "off" ("" means
// best-effort).
func ParseWalls(s string) (Walls, error) {
	switch Walls(s) {
	case "", WallsBestEffort:
		return WallsBestEffort, nil
	case WallsStrict, WallsOff:
		return Walls(s), nil
	}
	return "", fmt.Errorf("sandbox walls must be %q, %q or %q, not %q", WallsStrict, WallsBestEffort, WallsOff, s)
}

// lockConfig is what lockDown needs to know about the process.
type lockConfig struct {
	mode        Walls
	libDir      string // the image's standard library, the one tree it may still read
	memoryBytes uint64 // the guest's memory cap
	keepFiles   bool   // a CPU profile is written at exit: files may still grow
	trap        bool   // debug: a forbidden system call traps (and is named) instead of killing
}

// envSeccompTrap, set to 1 in a sandbox process's environment, makes a
// system call outside the allow-list raise SIGSYS, whose crash report
// names it (Go prints the registers: rax is its number), instead of
// killing the process silently: how the allow-list was found.
const envSeccompTrap = "FAAS_SANDBOX_SECCOMP_TRAP"

// envProbes, set to 1 in the environment of the process that starts a
// pool (tests), lets its sandbox processes answer frameProbe: they attempt
// a forbidden act on the host side, after lockdown, and say what came of
// it (or are killed by their seccomp filter).
const envProbes = "FAAS_SANDBOX_PROBES"

// wallReport is what a sandbox process says it put up: the walls that
// are up, in order, and why the others are not.
type wallReport struct {
	up      []string
	missing []string
}

func (r *wallReport) add(name string, err error) {
	if err != nil {
		r.missing = append(r.missing, fmt.Sprintf("%s (%v)", name, err))
		return
	}
	r.up = append(r.up, name)
}

// String is the report as one line: "up: a, b; missing: c (why)".
func (r *wallReport) String() string {
	s := "up: " + strings.Join(r.up, ", ")
	if len(r.up) == 0 {
		s = "up: none"
	}
	if len(r.missing) > 0 {
		s += "; missing: " + strings.Join(r.missing, "; ")
	}
	return s
}
