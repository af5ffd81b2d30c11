package pickle

import "strings"

// sandboxLeftOut are the standard library modules the sandbox's CPython
// (wasm32-wasi: no threads, processes, sockets, terminals, users, or
// native libraries it cannot link) does not have, as
// runtime/pybuild/stdlib_probe.py finds them (the table in README).
var sandboxLeftOut = []string{
	"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "ctypes", "curses", "venv", "turtle",
	"_tkinter", "_ctypes", "_curses", "_curses_panel", "_dbm", "_gdbm", "_ssl", "ssl", "_hashlib",
	"_uuid", "readline", "_multiprocessing", "_posixshmem", "_posixsubprocess", "grp", "pwd",
	"resource", "spwd", "syslog", "nis", "ossaudiodev", "fcntl", "mmap", "termios", "pty", "tty",
	"msvcrt", "winreg", "winsound", "_winapi", "nt", "_overlapped", "_msi", "msilib", "_scproxy",
}

// sandboxExtra are top-level modules the sandbox has beyond the standard
// library, or names an unpickler resolves without importing a module:
// dill's own, the task's __main__, and Python 2's __builtin__ (dill writes
// "__builtin__ __main__" for a function's globals).
var sandboxExtra = []string{"dill", "__main__", "__builtin__"}

// sandboxModules is the set of top-level module names a pickle may refer to.
var sandboxModules = func() map[string]bool {
	m := make(map[string]bool, len(stdlibModuleNames)+len(sandboxExtra))
	for _, name := range stdlibModuleNames {
		m[name] = true
	}
	for _, name := range sandboxExtra {
		m[name] = true
	}
	for _, name := range sandboxLeftOut {
		delete(m, name)
	}
	return m
}()

// sandboxHasModule reports whether module (dotted) lives in a top-level
// package the sandbox has. It does not know every submodule; a wrong
// submodule name fails in the sandbox instead, with the error of
// Python's import.
func sandboxHasModule(module string) bool {
	top, _, _ := strings.Cut(module, ".")
	return sandboxModules[top]
}

// fixImports maps a Python 2 (module, name) reference to its Python 3
// counterpart, as Python's unpickler does for protocol 0-2 streams.
func fixImports(module, name string) (string, string) {
	if to, ok := compatNameMapping[module+" "+name]; ok {
		m, n, _ := strings.Cut(to, " ")
		return m, n
	}
	if to, ok := compatImportMapping[module]; ok {
		return to, name
	}
	return module, name
}

// isLeftOutStdlib reports whether module belongs to a standard library
// package the sandbox leaves out.
func isLeftOutStdlib(module string) bool {
	top, _, _ := strings.Cut(module, ".")
	return leftOut[top]
}

var leftOut = func() map[string]bool {
	m := make(map[string]bool, len(sandboxLeftOut))
	for _, name := range sandboxLeftOut {
		m[name] = true
	}
	return m
}()

// isModuleName reports whether s is a dotted Python module name
// (identifiers of ASCII letters, digits and underscores).
func isModuleName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, part := range strings.Split(s, ".") {
		if part == "" || (part[0] >= '0' && part[0] <= '9') {
			return false
		}
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}
