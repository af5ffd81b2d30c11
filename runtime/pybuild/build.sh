#!/usr/bin/env bash
# Builds the WasmFaaS guest image: CPython 3.11 for wasm32-wasi (a reactor
# module exporting faas_init/faas_run/faas_main and __stack_pointer), its
# precompiled stdlib without what a sandbox never needs, zlib, and dill.
#
# Usage: runtime/pybuild/build.sh            builds if needed, prints the image dir
#        FAAS_CACHE=/path runtime/pybuild/build.sh
#
# Output: $FAAS_CACHE/python-<recipe hash>/ (default ~/.cache/wasmfaas) with
#   python.wasm   the stripped reactor module
#   lib/python3.11/...   stdlib (.py + unchecked-hash .pyc), lib-dynload, site-packages/dill
#   RECIPE        what went in
# The directory appears atomically when the build succeeds, so a second run
# takes well under a second. The last line printed is the image directory.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# --- the recipe: change anything here and the hash (and the cache key) changes
PY_VERSION=3.11.2
PY_ORIG=python3.11_${PY_VERSION}.orig.tar.gz
PY_SHA256=2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849
ZLIB_ORIG=zlib_1.2.13.dfsg.orig.tar.bz2
ZLIB_SHA256=71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1
DILL_VERSION=0.3.6
PACKAGES=(clang-16 lld-16 llvm-16 wasi-libc libclang-rt-16-dev-wasm32 python3.11 python3-dill)
CFLAGS_WASM="-O2 -Wno-int-conversion -DPy_DEFAULT_RECURSION_LIMIT=1000"
STACK_SIZE=8388608
# wazero's poll_oneoff rejects absolute-time clock subscriptions, which
# clock_nanosleep(TIMER_ABSTIME) needs; without it time.sleep uses nanosleep.
CONFIGURE_VARS="ac_cv_func_clock_nanosleep=no ac_cv_lib_rt_clock_nanosleep=no"
INITIAL_MEMORY=16777216
# Parts of the stdlib a sandbox never needs (or cannot use: no _ctypes, no
# _sqlite3, no _curses, no _tkinter in the WASI build).
PRUNE=(test idlelib tkinter turtledemo ensurepip lib2to3 pydoc_data ctypes
       sqlite3 curses dbm venv distutils/tests unittest/test
       config-3.11-wasm32-wasi site-packages/README.txt turtle.py)

log() { printf '[pybuild %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[pybuild] error: %s\n' "$*" >&2; exit 1; }

recipe_hash() {
    # runtime/image.go computes the same hash from its embedded copies.
    cat "$HERE/build.sh" "$HERE/shim.c" | sha256sum | cut -c1-16
}

CACHE="${FAAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wasmfaas}"
HASH="$(recipe_hash)"
OUT="$CACHE/python-$HASH"

if [[ "${1:-}" == "--print-dir" ]]; then
    echo "$OUT"
    exit 0
fi
if [[ -f "$OUT/python.wasm" && -f "$OUT/RECIPE" ]]; then
    echo "$OUT"
    exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "not root and no sudo: install ${PACKAGES[*]} by hand"
    SUDO="sudo"
fi

# --- 1. build tools from Debian
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]} (apt-get)"
    $SUDO apt-get update -qq || die "apt-get update failed"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi
[[ -x /usr/bin/python3.11 ]] || die "/usr/bin/python3.11 is missing (Debian package python3.11)"
/usr/bin/python3.11 -c 'import sys; assert sys.version_info[:3] == (3, 11, 2), sys.version' \
    || die "Debian's python3.11 must be 3.11.2, the guest's version (bytecode must match)"

WORK="$CACHE/work"
mkdir -p "$WORK"
LOGFILE="$WORK/build.log"
: >"$LOGFILE"
run() { # run a step, its output into the log; on failure show the end of the log
    local what="$1"; shift
    log "$what"
    if ! "$@" >>"$LOGFILE" 2>&1; then
        tail -n 40 "$LOGFILE" >&2
        die "$what failed; full log: $LOGFILE"
    fi
}

# --- 2. Debian's source tarballs, checked against the pinned hashes
have_src() { [[ -n "$(apt-cache showsrc "$1" 2>/dev/null)" ]]; }
add_deb_src() {
    log "no deb-src entry for Debian; adding /etc/apt/sources.list.d/wasmfaas-src.sources"
    local suite
    suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")"
    $SUDO tee /etc/apt/sources.list.d/wasmfaas-src.sources >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO apt-get update -qq || die "apt-get update failed"
}
fetch_src() { # fetch_src <source package> <upstream tarball> <sha256>
    local pkg="$1" file="$2" sum="$3" ver
    ok() { [[ -f "$WORK/$file" ]] && echo "$sum  $WORK/$file" | sha256sum -c --status; }
    ok && return 0
    have_src "$pkg" || add_deb_src
    have_src "$pkg" || die "apt knows no source package $pkg even with deb-src entries"
    # Every Debian revision of the package shares the upstream tarball; a
    # mirror sometimes lists a revision it no longer serves, so try each.
    for ver in $(apt-cache showsrc "$pkg" | awk '/^Version:/ {print $2}'); do
        (cd "$WORK" && apt-get source --download-only -qq "$pkg=$ver" >>"$LOGFILE" 2>&1) || true
        ok && return 0
    done
    [[ -f "$WORK/$file" ]] || die "apt-get source $pkg did not bring $file (see $LOGFILE)"
    die "$file does not match the pinned sha256 $sum"
}
log "fetching Debian source packages python3.11 and zlib"
fetch_src python3.11 "$PY_ORIG" "$PY_SHA256"
fetch_src zlib "$ZLIB_ORIG" "$ZLIB_SHA256"

export CC="clang-16 --target=wasm32-wasi"
export AR=llvm-ar-16 RANLIB=llvm-ranlib-16

# --- 3. zlib
ZSRC="$WORK/zlib-src"
ZPREFIX="$WORK/zlib"
if [[ ! -f "$ZPREFIX/lib/libz.a" ]]; then
    rm -rf "$ZSRC" && mkdir -p "$ZSRC"
    tar -xjf "$WORK/$ZLIB_ORIG" -C "$ZSRC" --strip-components=1
    run "building zlib for wasm32-wasi" bash -c "cd '$ZSRC' && CFLAGS='-O2' CHOST=wasm32 ./configure --static --prefix='$ZPREFIX' && make -j2 libz.a && make install"
fi

# --- 4. CPython
# keyed by what goes into the compile, so a change to later steps reuses it
SRC="$WORK/cpython-$(echo "$PY_SHA256 $ZLIB_SHA256 $CFLAGS_WASM $CONFIGURE_VARS" | sha256sum | cut -c1-12)"
if [[ ! -f "$SRC/libpython3.11.a" ]]; then
    rm -rf "$SRC" && mkdir -p "$SRC"
    tar -xzf "$WORK/$PY_ORIG" -C "$SRC" --strip-components=1
    mkdir -p "$WORK/empty-pkgconfig"
    run "configuring CPython $PY_VERSION for wasm32-wasi" bash -c "cd '$SRC' && \
        CONFIG_SITE=Tools/wasm/config.site-wasm32-wasi \
        PKG_CONFIG_LIBDIR='$WORK/empty-pkgconfig' \
        ZLIB_CFLAGS='-I$ZPREFIX/include' ZLIB_LIBS='-L$ZPREFIX/lib -lz' \
        CFLAGS='$CFLAGS_WASM' $CONFIGURE_VARS \
        ./configure --host=wasm32-unknown-wasi --build=x86_64-pc-linux-gnu \
            --with-build-python=/usr/bin/python3.11 --prefix=/usr/local \
            --disable-test-modules --without-ensurepip"
    grep -q "^MODULE_ZLIB_STATE=yes" "$SRC/Makefile" || die "configure did not pick up zlib (see $LOGFILE)"
    run "compiling CPython (make -j$(nproc); a few minutes on 2 cores)" \
        make -C "$SRC" -j"$(nproc)" libpython3.11.a python.wasm pybuilddir.txt
fi

# --- 5. the reactor module
cat >"$WORK/faas.mk" <<'MK'
faas.wasm: faas_shim.o $(LINK_PYTHON_DEPS)
	$(LINKCC) $(PY_CORE_LDFLAGS) $(LINKFORSHARED) -mexec-model=reactor \
	    -z stack-size=$(FAAS_STACK) -Wl,--initial-memory=$(FAAS_INITIAL_MEMORY) \
	    -Wl,--export=__stack_pointer \
	    -o $@ faas_shim.o $(LINK_PYTHON_OBJS) $(BLDLIBRARY) $(LIBS) $(MODLIBS) $(SYSLIBS)
faas_shim.o: $(FAAS_SHIM)
	$(CC) -c $(PY_CORE_CFLAGS) -o $@ $(FAAS_SHIM)
MK
rm -f "$SRC/faas.wasm" "$SRC/faas_shim.o"
run "linking the reactor module" make -C "$SRC" -f Makefile -f "$WORK/faas.mk" \
    FAAS_SHIM="$HERE/shim.c" FAAS_STACK="$STACK_SIZE" FAAS_INITIAL_MEMORY="$INITIAL_MEMORY" faas.wasm

# --- 6. the image
STAGE="$WORK/stage"
rm -rf "$STAGE" && mkdir -p "$STAGE/lib"
log "assembling the image (stdlib, dill, precompiled bytecode)"
llvm-strip-16 -o "$STAGE/python.wasm" "$SRC/faas.wasm"
LIB="$STAGE/lib/python3.11"
cp -a "$SRC/Lib" "$LIB"
for p in "${PRUNE[@]}"; do rm -rf "${LIB:?}/$p"; done
find "$LIB" -name '__pycache__' -prune -exec rm -rf {} +
find "$LIB" -type d \( -name tests -o -name test \) -prune -exec rm -rf {} +
mkdir -p "$LIB/lib-dynload" "$LIB/site-packages"
cp "$SRC/$(cat "$SRC/pybuilddir.txt")"/_sysconfigdata_*.py "$LIB/lib-dynload/"
DILL_SRC=/usr/lib/python3/dist-packages/dill
/usr/bin/python3 -c "import dill, sys; sys.exit(dill.__version__ != '$DILL_VERSION')" \
    || die "Debian's python3-dill is not $DILL_VERSION"
cp -a "$DILL_SRC" "$LIB/site-packages/dill"
rm -rf "$LIB/site-packages/dill/tests" "$LIB/site-packages/dill/__pycache__"
run "precompiling the stdlib with /usr/bin/python3.11" /usr/bin/python3.11 -I -m compileall -q -j0 \
    --invalidation-mode unchecked-hash -d /usr/local/lib/python3.11 "$LIB"
{
    echo "python $PY_VERSION from Debian $PY_ORIG sha256 $PY_SHA256"
    echo "zlib from Debian $ZLIB_ORIG sha256 $ZLIB_SHA256"
    echo "dill $DILL_VERSION from Debian python3-dill"
    echo "CFLAGS $CFLAGS_WASM; $CONFIGURE_VARS; stack $STACK_SIZE"
    echo "clang $(clang-16 --version | head -n1)"
    echo "recipe $HASH"
} >"$STAGE/RECIPE"
rm -rf "$OUT.tmp" && mv "$STAGE" "$OUT.tmp" && mv -T "$OUT.tmp" "$OUT"
log "image ready: $OUT ($(du -sh "$OUT" | cut -f1), python.wasm $(du -h "$OUT/python.wasm" | cut -f1))"
echo "$OUT"
