package pickle

// stdlib_modules.go lists the modules of the sandbox's Python 3.11; it is
// generated from Debian's python3.11, the same version the sandbox runs.
//go:generate /usr/bin/python3.11 gen_stdlib_modules.py
//go:generate gofmt -w stdlib_modules.go
