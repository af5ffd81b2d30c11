#!/usr/bin/env bash
# Experiment (issue 13): a profile-guided guest image.
#
#  1. builds the guest's CPython (same Debian tarball as runtime/pybuild/build.sh)
#     natively with clang-16 and -fprofile-instr-generate, configured as
#     close to the wasm32-wasi build as a native build can be: the same
#     CFLAGS (-O2 ...), the same configure variables and options, switch
#     dispatch (--without-computed-gotos), no LTO;
#  2. runs runtime/pybuild/pgo_workload.py in it (plus a few dill round
#     trips, as the sandbox does per call) and merges the raw profiles with
#     llvm-profdata-16;
#  3. builds the wasm32-wasi image with a copy of build.sh whose
#     CPython compile also gets -fprofile-instr-use=<profile> and the
#     warnings that count mismatched and unprofiled functions, into the
#     same cache.
#
# Usage: FAAS_CACHE=/tmp/pgo-cache bench/guestpgo/build-pgo.sh
#   prints the PGO image directory last; the profile and the match counts
#   are in $FAAS_CACHE/pgo/. Run runtime/pybuild/build.sh with the same
#   FAAS_CACHE first (it installs the tools and fetches the tarballs).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYB="$ROOT/runtime/pybuild"
CACHE="${FAAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmfaas}"
var() { sed -n "s/^$1=//p" "$PYB/build.sh" | sed 's/^"\(.*\)"$/\1/'; }
PY_VERSION="$(var PY_VERSION)"
PY_ORIG="$(var PY_ORIG | sed "s/\${PY_VERSION}/$PY_VERSION/")"
PY_SHA256="$(var PY_SHA256)"
CFLAGS_WASM="$(var CFLAGS_WASM)"
CONFIGURE_VARS="$(var CONFIGURE_VARS)"
CONFIGURE_ARGS="--without-computed-gotos --disable-test-modules --without-ensurepip --prefix=/usr/local"
PGO="$CACHE/pgo"
mkdir -p "$PGO"

log() { printf '[guestpgo %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[guestpgo] error: %s\n' "$*" >&2; exit 1; }
TARBALL="$CACHE/work/$PY_ORIG"
[[ -f "$TARBALL" ]] || die "$TARBALL is missing: run FAAS_CACHE=$CACHE runtime/pybuild/build.sh first"
echo "$PY_SHA256  $TARBALL" | sha256sum -c --status || die "$TARBALL does not match the pinned sha256"

# --- 1. the instrumented native interpreter
NKEY="$(echo "$PY_SHA256 $CFLAGS_WASM $CONFIGURE_VARS $CONFIGURE_ARGS" | sha256sum | cut -c1-12)"
NATIVE="$PGO/native-$NKEY"
if [[ ! -x "$NATIVE/python" ]]; then
    rm -rf "$NATIVE.tmp" && mkdir -p "$NATIVE.tmp"
    tar -xzf "$TARBALL" -C "$NATIVE.tmp" --strip-components=1
    t0=$SECONDS
    log "configuring and compiling the instrumented native CPython (log: $NATIVE.tmp/native-build.log)"
    # shellcheck disable=SC2086 # word lists
    if ! (cd "$NATIVE.tmp" && env CC=clang-16 CFLAGS="$CFLAGS_WASM -fprofile-instr-generate" \
            LDFLAGS="-fprofile-instr-generate" $CONFIGURE_VARS ./configure $CONFIGURE_ARGS &&
          make -j"$(nproc)" all) >"$NATIVE.tmp/native-build.log" 2>&1; then
        tail -n 30 "$NATIVE.tmp/native-build.log" >&2
        die "the instrumented native build failed"
    fi
    rm -rf "$NATIVE" && mv -T "$NATIVE.tmp" "$NATIVE"
    log "instrumented native build: $((SECONDS - t0)) s"
fi

# --- 2. the training run and the merged profile
PKEY="$(cat "$PYB/pgo_workload.py" "$HERE/train.py" "$HERE/build-pgo.sh" | sha256sum | cut -c1-12)"
PROFDATA="$PGO/guest-$NKEY-$PKEY.profdata"
if [[ ! -f "$PROFDATA" ]]; then
    RAW="$PGO/raw-$NKEY-$PKEY"
    rm -rf "$RAW" && mkdir -p "$RAW/dillpath"
    ln -s /usr/lib/python3/dist-packages/dill "$RAW/dillpath/dill"
    t0=$SECONDS
    # The guest runs precompiled bytecode: compile the native tree's stdlib
    # first, its profile thrown away, so that the parser and compiler do
    # not weigh in the training run beyond the workload's own source.
    mkdir -p "$RAW/discard"
    LLVM_PROFILE_FILE="$RAW/discard/%p-%m.profraw" "$NATIVE/python" -m compileall -q -j0 "$NATIVE/Lib" \
        >"$RAW/compileall.log" 2>&1 || true
    LLVM_PROFILE_FILE="$RAW/discard/%p-%m.profraw" PYTHONPATH="$RAW/dillpath" "$NATIVE/python" -c 'import dill' \
        >>"$RAW/compileall.log" 2>&1 || true
    log "training run"
    (cd "$RAW" && LLVM_PROFILE_FILE="$RAW/%p-%m.profraw" PYTHONPATH="$RAW/dillpath:$PYB" \
        "$NATIVE/python" "$HERE/train.py") >"$RAW/train.log" 2>&1 || { cat "$RAW/train.log" >&2; die "training failed"; }
    log "training run: $((SECONDS - t0)) s, $(ls "$RAW"/*.profraw | wc -l) raw profiles"
    llvm-profdata-16 merge -o "$PROFDATA.tmp" "$RAW"/*.profraw
    mv "$PROFDATA.tmp" "$PROFDATA"
    llvm-profdata-16 show "$PROFDATA" >"$PROFDATA.show.txt"
    rm -rf "$RAW"
fi
log "profile: $PROFDATA ($(grep -E 'Total functions' "$PROFDATA.show.txt"))"

# --- 3. the wasm32-wasi image built with the profile
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
cp "$PYB/build.sh" "$PYB/shim.c" "$T/"
# The profile goes in at make time (EXTRA_CFLAGS, which CPython's Makefile
# adds to every compile), not into configure's CFLAGS: configure's probes
# would warn on it and some of them treat warnings as errors. It joins the
# CPython tree's cache key.
PGO_FLAGS="-fprofile-instr-use=$PROFDATA -Wprofile-instr-out-of-date -Wprofile-instr-missing -Wprofile-instr-unprofiled"
sed -i -e "s|^CFLAGS_WASM=.*|&\nPGO_FLAGS=\"$PGO_FLAGS\"|" \
    -e 's|\$CFLAGS_WASM \$CONFIGURE_VARS" \| sha256sum|$CFLAGS_WASM $CONFIGURE_VARS $PGO_FLAGS" \| sha256sum|' \
    -e 's|make -C "\$SRC" -j"\$(nproc)" libpython3.11.a|make -C "$SRC" -j"$(nproc)" EXTRA_CFLAGS="$PGO_FLAGS" libpython3.11.a|' \
    -e 's|echo "CFLAGS \$CFLAGS_WASM;|echo "CFLAGS $CFLAGS_WASM $PGO_FLAGS;|' "$T/build.sh"
[[ $(grep -c 'PGO_FLAGS' "$T/build.sh") -eq 4 ]] || die "could not patch the copy of build.sh"
t0=$SECONDS
# output-sync keeps each file's warnings after its compile line in the log
IMG="$(MAKEFLAGS=--output-sync=target FAAS_CACHE="$CACHE" bash "$T/build.sh" | tail -n1)"
log "wasm build with the profile: $((SECONDS - t0)) s"
[[ -f "$CACHE/work/build.log" ]] && cp "$CACHE/work/build.log" "$PGO/wasm-build-$(basename "$IMG").log"
echo "$IMG"
