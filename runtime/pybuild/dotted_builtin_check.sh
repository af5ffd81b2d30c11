#!/usr/bin/env bash
# Checks the mechanism a statically linked numpy needs (see runtime/pybuild/NOTES.md):
# extension modules linked into python.wasm and registered as built-ins under
# dotted names (shim.c's faas_extra_inittab and its DottedBuiltinFinder).
#
# It builds a throwaway image beside the real one: a C extension
# (pkgdemo._speed, single-phase init) and a Cython 0.29 one (pkgdemo._cy,
# multi-phase init), compiled for wasm32-wasi against the guest's CPython
# tree, linked with shim.c into a reactor module, plus pkgdemo/__init__.py in
# site-packages; then runs imports through `faas python`.
#
# Usage: runtime/pybuild/dotted_builtin_check.sh [path/to/faas]
#        (default bin/faas; run runtime/pybuild/build.sh first)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FAAS="${1:-bin/faas}"
CACHE="${FAAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmfaas}"
die() { printf '[dotted-check] error: %s\n' "$*" >&2; exit 1; }

IMG="$("$HERE/build.sh")"
SRC="$(ls -td "$CACHE"/work/cpython-*/ 2>/dev/null | while read -r d; do
    [[ -f "$d/libpython3.11.a" ]] && { echo "${d%/}"; break; }; done)"
[[ -n "$SRC" ]] || die "no built CPython tree in $CACHE/work"
command -v cython3 >/dev/null || die "cython3 is missing (Debian package cython3)"
[[ -x "$FAAS" ]] || die "$FAAS is missing: go build -o bin/faas ./cmd/faas"

T="$CACHE/work/dotted-check"
rm -rf "$T" && mkdir -p "$T/pkgdemo"
cat >"$T/_speed.c" <<'C'
#include <Python.h>
static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}
static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "add two ints"}, {NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "pkgdemo._speed", NULL, -1, methods};
PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&def); }
C
cat >"$T/_cy.pyx" <<'PYX'
# cython: language_level=3
from libc.math cimport sqrt
cdef class Vec:
    cdef double x, y
    def __init__(self, x, y):
        self.x = x
        self.y = y
    def norm(self):
        return sqrt(self.x * self.x + self.y * self.y)
def sizes():
    return sizeof(long), sizeof(void*), sizeof(long double)
PYX
cat >"$T/inittab.c" <<'C'
#include <Python.h>
extern PyObject *PyInit__speed(void);
extern PyObject *PyInit__cy(void);
struct _inittab faas_extra_inittab[] = {
    {"pkgdemo._speed", PyInit__speed},
    {"pkgdemo._cy", PyInit__cy},
    {NULL, NULL},
};
C
printf 'from ._speed import add\nfrom ._cy import Vec, sizes\n' >"$T/pkgdemo/__init__.py"
cython3 -3 --module-name pkgdemo._cy -o "$T/_cy.c" "$T/_cy.pyx"
cat >"$T/check.mk" <<'MK'
$(T)/%.o: $(T)/%.c
	$(CC) -c $(PY_CFLAGS) -I$(srcdir)/Include -I. -o $@ $<
$(T)/faas.wasm: $(T)/faas_shim.o $(T)/_speed.o $(T)/_cy.o $(T)/inittab.o $(LINK_PYTHON_DEPS)
	$(LINKCC) $(PY_CORE_LDFLAGS) $(LINKFORSHARED) -mexec-model=reactor \
	    -z stack-size=8388608 -Wl,--initial-memory=16777216 -Wl,--export=__stack_pointer \
	    -o $@ $(filter %.o,$^) $(LINK_PYTHON_OBJS) $(BLDLIBRARY) $(LIBS) $(MODLIBS) $(SYSLIBS)
$(T)/faas_shim.o: $(FAAS_SHIM)
	$(CC) -c $(PY_CORE_CFLAGS) -o $@ $(FAAS_SHIM)
MK
make -s -C "$SRC" -f Makefile -f "$T/check.mk" T="$T" FAAS_SHIM="$HERE/shim.c" "$T/faas.wasm" \
    >"$T/build.log" 2>&1 || { tail -n 30 "$T/build.log" >&2; die "build failed"; }
mkdir -p "$T/img"
cp -a "$IMG/lib" "$T/img/lib"
cp -a "$T/pkgdemo" "$T/img/lib/python3.11/site-packages/"
llvm-strip-16 -o "$T/img/python.wasm" "$T/faas.wasm"

FAAS_IMAGE="$T/img" "$FAAS" python -c '
import sys, pickle, importlib
dotted = sorted(n for n in sys.builtin_module_names if "." in n)
assert dotted == ["pkgdemo._cy", "pkgdemo._speed"], dotted
import pkgdemo, pkgdemo._speed as s
assert pkgdemo.add(2, 3) == 5 and s.__spec__.origin == "built-in", s.__spec__
assert pkgdemo.Vec(3, 4).norm() == 5.0
assert importlib.import_module("pkgdemo._cy").Vec is pkgdemo.Vec
assert pickle.loads(pickle.dumps(pkgdemo.add)) is pkgdemo.add
try:
    import pkgdemo._nope
    raise SystemExit("pkgdemo._nope imported")
except ModuleNotFoundError:
    pass
print("dotted built-ins ok:", dotted, "sizeof(long, void*, long double) =", pkgdemo.sizes())
'
