"""Imports every module in sys.stdlib_module_names and reports which fail.

Run it inside the sandbox:

    bin/faas python - < runtime/pybuild/stdlib_probe.py
    bin/faas python - --markdown < runtime/pybuild/stdlib_probe.py

Each module is imported on its own (a failure does not hide the next one);
the report groups failures by cause. Modules that only exist on other
platforms (msvcrt, winreg, _osx_support's helpers...) are listed apart.
With --markdown the failures come out as a Markdown table for
runtime/pybuild/NOTES.md. The exit code is 0: the probe reports, it does not judge.
"""
import contextlib
import gc
import importlib
import io
import sys
import traceback

# Modules of other platforms: they are in stdlib_module_names everywhere.
OTHER_PLATFORM = {
    "_msi", "msilib", "msvcrt", "nt", "winreg", "winsound", "_winapi",
    "_overlapped", "_scproxy", "_osx_support", "_aix_support", "ntpath",
    "nturl2path", "_wmi", "_winreg",
}

# Why a module cannot work under wasm32-wasi in this guest, by the module
# whose absence makes the import fail (the innermost missing one).
REASONS = {
    "_ctypes": "no _ctypes: needs libffi and dlopen, neither exists for wasm32-wasi under wazero",
    "_curses": "not built: no terminal, and no ncurses for wasm32-wasi",
    "_curses_panel": "not built: no terminal, and no ncurses for wasm32-wasi",
    "readline": "no readline: no terminal; the guest's stdin is a pipe",
    "_tkinter": "not built: no Tk and no display",
    "_posixsubprocess": "no processes: WASI has no fork/exec",
    "_multiprocessing": "no processes and no semaphores in WASI",
    "_posixshmem": "no shared memory in WASI",
    "fcntl": "no fcntl module: WASI has no fcntl locks/ioctls (configure marks it n/a)",
    "mmap": "no mmap module: WASI has no mmap (configure marks it n/a)",
    "grp": "no grp: WASI has no users or groups",
    "pwd": "no pwd: WASI has no users or groups",
    "spwd": "no spwd: WASI has no users or groups",
    "resource": "no resource: WASI has no rlimits",
    "syslog": "no syslog in WASI",
    "termios": "no termios: no terminals in WASI",
    "ossaudiodev": "no audio devices",
    "nis": "no NIS (and no network)",
    "_gdbm": "not built: no gdbm for wasm32-wasi; dbm falls back to dbm.dumb",
    "_dbm": "not built: no ndbm for wasm32-wasi; dbm falls back to dbm.dumb",
    "_ssl": "no OpenSSL built for wasm32-wasi (and no sockets to use it on)",
    "_hashlib": "not built: no OpenSSL; hashlib uses its built-in md5/sha1/sha2/sha3/blake2",
    "_uuid": "not built: no libuuid; uuid falls back to pure Python (uuid1/uuid4 work)",
    "_xxsubinterpreters": "needs threads (n/a on WASI)",
    "_thread": "no threads in wasm32-wasi CPython 3.11",
    "_testcapi": "test module, not built (--disable-test-modules)",
    "_testinternalcapi": "test module, not built (--disable-test-modules)",
    "_testbuffer": "test module, not built",
    "_testimportmultiple": "test module, not built",
    "_testmultiphase": "test module, not built",
    "_testclinic": "test module, not built",
    "_xxtestfuzz": "test module, not built",
    "_ctypes_test": "test module, not built",
    "xxlimited": "example module, not built",
    "xxlimited_35": "example module, not built",
    "idlelib": "pruned: IDLE needs tkinter",
    "tkinter": "pruned: needs _tkinter",
    "turtle": "pruned: needs tkinter",
    "turtledemo": "pruned: needs tkinter",
    "venv": "pruned: creating one needs the interpreter's executable (there is none in the guest)",
    "ensurepip": "pruned: installs pip by running a subprocess",
    "lib2to3": "pruned (deprecated tooling, not for functions)",
    "ctypes": "pruned: needs _ctypes (libffi, dlopen)",
    "curses": "pruned: needs _curses (terminal)",
    "test": "pruned: CPython's test suite",
}


# Modules that import but whose main use cannot work in WASI: each check
# exercises that use and should fail (or, where it passes, says so).
def _thread_start():
    import threading
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()


def _subprocess_run():
    import subprocess
    subprocess.run(["true"])


def _socket_create():
    import socket
    socket.socket().close()


def _mp_process():
    import multiprocessing
    p = multiprocessing.Process(target=print)
    p.start()
    p.join()


def _signal_alarm():
    import signal
    signal.alarm(1)
    signal.alarm(0)


def _os_fork():
    import os
    os.fork()


def _asyncio_run():
    import asyncio

    async def f():
        await asyncio.sleep(0)
        return 1
    coro = f()
    try:
        assert asyncio.run(coro) == 1
    finally:
        coro.close()


def _pool_executor():
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        assert ex.submit(int, "1").result() == 1


def _getpass_getuser():
    import getpass
    getpass.getuser()


def _dbm_dumb():
    import dbm
    with dbm.open("/tmp/probe-dbm", "c") as d:
        d[b"k"] = b"v"
    with dbm.open("/tmp/probe-dbm") as d:
        assert d[b"k"] == b"v"


def _venv_create():
    import venv
    venv.create("/tmp/probe-venv", with_pip=False)


def _uuid4():
    import uuid
    uuid.uuid4()
    uuid.uuid1()


def _hashlib():
    import hashlib
    for n in ("md5", "sha1", "sha256", "sha512", "sha3_256", "blake2b"):
        hashlib.new(n, b"x").hexdigest()


def _tempfile():
    import tempfile
    with tempfile.TemporaryDirectory() as d, tempfile.NamedTemporaryFile(dir=d) as f:
        f.write(b"x")


def _time_sleep():
    import time
    time.sleep(0.001)


def _locale():
    import locale
    locale.setlocale(locale.LC_ALL, "C.UTF-8")


def _crypt():
    import crypt
    assert crypt.crypt("x", "ab")


def _pydoc_topics():
    import pydoc_data.topics
    assert "if" in pydoc_data.topics.topics


CHECKS = [
    ("threading.Thread.start", _thread_start, "no threads in wasm32-wasi CPython 3.11"),
    ("concurrent.futures.ThreadPoolExecutor", _pool_executor, "no threads"),
    ("subprocess.run", _subprocess_run, "no processes: WASI has no fork/exec"),
    ("os.fork", _os_fork, "no processes"),
    ("multiprocessing.Process", _mp_process, "no processes"),
    ("socket.socket()", _socket_create, "no sockets: the host grants none"),
    ("signal.alarm", _signal_alarm, "no signals in WASI (only emulated raise())"),
    ("getpass.getuser", _getpass_getuser, "no pwd and no environment (USER unset)"),
    ("asyncio.run", _asyncio_run, "the event loop's self-pipe is a socket.socketpair(); no sockets"),
    ("dbm (dbm.dumb)", _dbm_dumb, ""),
    ("venv.create", _venv_create, "pruned: no interpreter executable to copy or run"),
    ("uuid.uuid4/uuid1", _uuid4, ""),
    ("hashlib builtins", _hashlib, ""),
    ("tempfile", _tempfile, ""),
    ("time.sleep", _time_sleep, ""),
    ("locale.setlocale C.UTF-8", _locale, ""),
    ("crypt.crypt", _crypt, ""),
    ("pydoc_data.topics", _pydoc_topics, ""),
]


def probe(name):
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # this, antigravity
            importlib.import_module(name)
    except BaseException as e:  # SystemExit, too: report everything
        missing = getattr(e, "name", None) if isinstance(e, ImportError) else None
        last = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
        where = ""
        if last and not last.filename.startswith("<frozen"):
            where = f" ({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"
        return missing, f"{type(e).__name__}: {e}{where}"
    return None, None


def main():
    markdown = "--markdown" in sys.argv
    names = sorted(sys.stdlib_module_names)
    ok, failed, other = [], [], []
    for name in names:
        missing, err = probe(name)
        if err is None:
            ok.append(name)
        elif name in OTHER_PLATFORM:
            other.append(name)
        else:
            reason = REASONS.get(name) or REASONS.get(missing or "", "")
            failed.append((name, err, reason))
    print(f"{len(names)} modules in sys.stdlib_module_names: {len(ok)} import, "
          f"{len(failed)} fail, {len(other)} belong to other platforms")
    if markdown:
        print("\n| module | error | why it cannot work here |\n|---|---|---|")
        for name, err, reason in failed:
            print(f"| `{name}` | {err.replace('|', '/')} | {reason or '?'} |")
    else:
        for name, err, reason in failed:
            print(f"FAIL {name}: {err}" + (f"\n     why: {reason}" if reason else ""))
    print("other platforms:", " ".join(other))
    print("\nuses that import but may not work:")
    if markdown:
        print("\n| use | result | why |\n|---|---|---|")
    for what, fn, why in CHECKS:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                fn()
                res = "works"
            except BaseException as e:
                res = f"{type(e).__name__}: {e}"
            gc.collect()  # a half-made event loop complains when collected
        if markdown:
            print(f"| {what} | {res.replace('|', '/')} | {why if res != 'works' else ''} |")
        else:
            print(f"  {what}: {res}" + (f" ({why})" if why and res != "works" else ""))
    print(f"{len(ok)} passed, {len(failed)} failed")


main()
