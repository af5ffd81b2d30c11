package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/wasmfaas/wasmfaas/bundle"
	"github.com/wasmfaas/wasmfaas/pickle"
)

// reservedModule says a bundle may not provide top-level module name: the
// sandbox has it (standard library, dill) or runs it (pyshim).
func reservedModule(name string) bool { return pickle.SandboxModule(name) || name == "pyshim" }

// readBundle checks the optional "modules" (an object: relative path ->
// file text) and "bundle" (base64 zip) of a registration, without running
// anything, and returns the bundle they make (nil when neither is given).
// A refusal is a 400, a cap a 413 (package bundle says which).
func (h *Handler) readBundle(m map[string]json.RawMessage) (*bundle.Bundle, error) {
	rawMods, hasMods := m["modules"]
	_, hasZip := m["bundle"]
	if !hasMods && !hasZip {
		return nil, nil
	}
	var modules map[string]string
	if hasMods && string(rawMods) != "null" {
		if len(rawMods) == 0 || rawMods[0] != '{' || json.Unmarshal(rawMods, &modules) != nil {
			return nil, errorf(http.StatusUnprocessableEntity,
				`field "modules" must be a JSON object of file paths to their text, e.g. {"mymod.py": "def f(): ..."}`)
		}
	}
	var zip []byte
	if hasZip {
		text, _, err := stringField(m, "bundle", true)
		if err != nil {
			return nil, withHint(err, " (base64 of a zip of Python modules and packages)")
		}
		if text != "" {
			if zip, err = pickle.DecodeBase64(text); err != nil {
				return nil, errorf(http.StatusBadRequest, `field "bundle" is not valid base64: %v`, err)
			}
		}
	}
	if zip == nil && len(modules) == 0 {
		return nil, nil
	}
	b, err := bundle.Build(zip, modules, h.opts.BundleLimits, reservedModule)
	var be *bundle.Error
	if errors.As(err, &be) {
		status := http.StatusBadRequest
		if be.TooLarge {
			status = http.StatusRequestEntityTooLarge
		}
		return nil, errorf(status, "%v", be)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}
