//go:build !linux

package runtime

import "errors"

func lockDown(cfg lockConfig) (*wallReport, error) {
	r := &wallReport{missing: []string{"all (not Linux)"}}
	if cfg.mode == WallsStrict {
		return r, errors.New("sandbox walls are strict, and only Linux has them")
	}
	return r, nil
}

func attempt(act string) string { return "err not Linux" }
