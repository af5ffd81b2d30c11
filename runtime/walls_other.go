//go:build !linux

package runtime

import "errors"

type lockConfig struct {
	mode        Walls
	libDir      string
	memoryBytes uint64
	keepFiles   bool
	trap        bool
}

const envSeccompTrap = "FAAS_SANDBOX_SECCOMP_TRAP"

func lockDown(cfg lockConfig) (*wallReport, error) {
	r := &wallReport{missing: []string{"all (not Linux)"}}
	if cfg.mode == WallsStrict {
		return r, errors.New("sandbox walls are strict, and only Linux has them")
	}
	return r, nil
}

const envProbes = "FAAS_SANDBOX_PROBES"

func attempt(act string) string { return "err not Linux" }
