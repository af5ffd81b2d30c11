#!/usr/bin/env bash
# Builds, for comparison only, the guest's CPython natively for this machine
# from the same Debian source tarball with the same compiler and the same
# choices the WebAssembly build has: clang-16 at -O2, no computed gotos (the
# eval loop dispatches through a switch, as it must in WebAssembly), no PGO,
# no LTO. BenchmarkFib25 runs it beside the sandbox and Debian's python3
# (built with PGO, LTO and computed gotos), which splits the sandbox's
# slowdown into what the WebAssembly engine costs and what Debian's build
# gains. The guest never uses it.
#
# Usage: runtime/pybuild/native.sh     builds if needed (about a minute on
#                                      2 cores), prints the interpreter's path
# Needs build.sh to have run first (it installs clang-16 and fetches the
# tarball into the same cache).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${FAAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmfaas}"
# The tarball and its hash are build.sh's: one pinned source for both builds.
PY_ORIG="$(sed -n 's/^PY_ORIG=//p' "$HERE/build.sh" | sed "s/\${PY_VERSION}/$(sed -n 's/^PY_VERSION=//p' "$HERE/build.sh")/")"
PY_SHA256="$(sed -n 's/^PY_SHA256=//p' "$HERE/build.sh")"
CFLAGS_NATIVE="-O2"
CONFIGURE_ARGS="--without-computed-gotos --disable-test-modules --without-ensurepip"
OUT="$CACHE/native-$(echo "$PY_SHA256 $CFLAGS_NATIVE $CONFIGURE_ARGS" | sha256sum | cut -c1-12)"

log() { printf '[native %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[native] error: %s\n' "$*" >&2; exit 1; }

if [[ -x "$OUT/python" ]]; then
    echo "$OUT/python"
    exit 0
fi
TARBALL="$CACHE/work/$PY_ORIG"
[[ -f "$TARBALL" ]] || die "$TARBALL is missing: run runtime/pybuild/build.sh first"
echo "$PY_SHA256  $TARBALL" | sha256sum -c --status || die "$TARBALL does not match the pinned sha256"
command -v clang-16 >/dev/null || die "clang-16 is missing: run runtime/pybuild/build.sh first"

TMP="$OUT.tmp"
rm -rf "$TMP" && mkdir -p "$TMP"
tar -xzf "$TARBALL" -C "$TMP" --strip-components=1
LOGFILE="$TMP/native-build.log"
log "configuring and compiling CPython natively (clang-16 $CFLAGS_NATIVE $CONFIGURE_ARGS), about a minute; log: $LOGFILE"
# shellcheck disable=SC2086 # CONFIGURE_ARGS is a list of words
if ! (cd "$TMP" && CC=clang-16 CFLAGS="$CFLAGS_NATIVE" ./configure $CONFIGURE_ARGS && make -j"$(nproc)" python) >"$LOGFILE" 2>&1; then
    tail -n 30 "$LOGFILE" >&2
    die "the native build failed; full log: $LOGFILE"
fi
"$TMP/python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' || die "the native build does not run"
rm -rf "$OUT" && mv -T "$TMP" "$OUT"
log "ready: $OUT/python"
echo "$OUT/python"
