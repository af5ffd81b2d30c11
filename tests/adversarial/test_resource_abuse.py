"""Resource abuse inside the function: process and thread bombs, infinite
loops, memory bombs, huge outputs, deep recursion, huge and unpicklable
results, results whose pickling runs code, /tmp filling, and every way to
end the interpreter.

Each case names its expected outcome in its id or docstring; every case then
checks (through Harness.attack) that the server answers /healthz and runs a
normal task, that an innocent caller's concurrent canary task completes with
the right value, that the host canary file is unchanged and unread, and that
the server has exactly its sandbox processes (none leaked, none zombie) and
logged no panic, ERROR or 5xx.

Functions that run remotely are plain source here, pickled by a fresh Debian
python3 as a course client's __main__ (adv_harness.Cases).
"""
import pytest

from adv_harness import (MEMORY, OUTPUT_CAP, TASK_TIMEOUT, Cases, adv, harness)  # noqa: F401

MEMORY_BYTES = 256 << 20
assert MEMORY == "256MiB"
TMP_CAP = 16 << 20
EIO = 29  # WASI errno for EIO: what a full /tmp reports (wazero has no ENOSPC)


def f(src):
    """Dedent helper: sources below are written at column 0."""
    return src.strip("\n") + "\n"


CASES = Cases({
    # --- processes
    "fork": f("""
def fork():
    import os
    return os.fork()
"""),
    "fork_bomb": f("""
def fork_bomb():
    import os
    while True:
        os.fork()
"""),
    "subprocess_run": f("""
def subprocess_run():
    import subprocess
    return subprocess.run(['/bin/sh', '-c', 'echo pwned'], capture_output=True).stdout
"""),
    "popen": f("""
def popen():
    import os
    return os.popen('id').read()
"""),
    "system": f("""
def system():
    import os
    return os.system('id')
"""),
    "posix_spawn": f("""
def posix_spawn():
    import os
    return os.posix_spawn('/bin/sh', ['sh'], {})
"""),
    "execv": f("""
def execv():
    import os
    os.execv('/bin/sh', ['sh'])
"""),
    "mp_process": f("""
def mp_process():
    import multiprocessing
    p = multiprocessing.Process(target=print)
    p.start()
    return p.pid
"""),
    "mp_pool": f("""
def mp_pool():
    import multiprocessing
    with multiprocessing.Pool(4) as p:
        return p.map(abs, range(10))
"""),
    # --- threads
    "thread_start": f("""
def thread_start():
    import threading
    t = threading.Thread(target=print)
    t.start()
    return 'started'
"""),
    "thread_bomb": f("""
def thread_bomb():
    import threading
    ts = []
    while True:
        t = threading.Thread(target=lambda: None)
        t.start()
        ts.append(t)
"""),
    "low_level_thread": f("""
def low_level_thread():
    import _thread
    return _thread.start_new_thread(print, ())
"""),
    "thread_pool": f("""
def thread_pool():
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as ex:
        return list(ex.map(abs, range(100)))
"""),
    # --- CPU and wall clock
    "busy_loop": f("""
def busy_loop():
    while True:
        pass
"""),
    "sleep_forever": f("""
def sleep_forever():
    import time
    time.sleep(3600)
"""),
    "uncatchable_loop": f("""
def uncatchable_loop():
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
"""),
    # --- memory
    "bytearray_1g": f("""
def bytearray_1g():
    return len(bytearray(1 << 30))
"""),
    "bytearray_chunks": f("""
def bytearray_chunks():
    keep = []
    while True:
        keep.append(bytearray(1 << 20))
"""),
    "list_growth": f("""
def list_growth():
    keep = []
    while True:
        keep.append([0] * 1000000)
"""),
    "string_doubling": f("""
def string_doubling():
    s = 'x'
    while True:
        s = s + s
"""),
    "dict_growth": f("""
def dict_growth():
    d = {}
    i = 0
    while True:
        d[i] = bytearray(1 << 16)
        i += 1
"""),
    "deep_nested": f("""
def deep_nested():
    x = {}
    while True:
        x = {'child': [x], 'pad': bytearray(1 << 18)}
"""),
    "list_repeat": f("""
def list_repeat():
    return len([None] * (1 << 28))
"""),
    "catch_memory_error": f("""
def catch_memory_error():
    keep = []
    try:
        while True:
            keep.append(bytearray(1 << 20))
    except MemoryError:
        n = len(keep)
        keep = None
        return ('survived', n)
"""),
    # --- output
    "print_flood": f("""
def print_flood():
    for i in range(200000):
        print('x' * 99)
    return 'done'
"""),
    "stderr_flood": f("""
def stderr_flood():
    import sys
    for i in range(30000):
        sys.stderr.write('e' * 1000)
    return 'done'
"""),
    "os_write_flood": f("""
def os_write_flood():
    import os
    for i in range(300):
        os.write(1, b'y' * 10000)
        os.write(2, b'z' * 10000)
    return 'done'
"""),
    "os_write_one_huge": f("""
def os_write_one_huge():
    import os
    os.write(1, b'q' * (50 << 20))
    return 'done'
"""),
    # --- recursion
    "py_recursion": f("""
def py_recursion():
    def down(n):
        return down(n + 1)
    return down(0)
"""),
    "py_recursion_raised_limit": f("""
def py_recursion_raised_limit():
    import sys
    sys.setrecursionlimit(30000)
    def down(n):
        return down(n + 1)
    return down(0)
"""),
    "repr_deep": f("""
def repr_deep():
    x = []
    for i in range(100000):
        x = [x]
    return len(repr(x))
"""),
    "c_pickle_deep": f("""
def c_pickle_deep():
    import sys, pickle
    sys.setrecursionlimit(10 ** 6)
    x = []
    for i in range(100000):
        x = [x]
    return len(pickle.dumps(x))
"""),
    "c_json_deep": f("""
def c_json_deep():
    import sys, json
    sys.setrecursionlimit(10 ** 7)
    x = []
    for i in range(2000000):
        x = [x]
    return len(json.dumps(x))
"""),
    "c_compare_deep": f("""
def c_compare_deep():
    import sys
    sys.setrecursionlimit(10 ** 7)
    a, b = [], []
    for i in range(700000):  # 200,000 fits the 8 MiB stack; 2,000,000 took 7 s to build
        a, b = [a], [b]
    return a == b
"""),
    "parser_deep": f("""
def parser_deep():
    return eval('[' * 100000 + ']' * 100000)
"""),
    "deep_result": f("""
def deep_result():
    x = []
    for i in range(100000):
        x = [x]
    return x
"""),
    # --- results
    "huge_result": f("""
def huge_result():
    return b'a' * (11 << 20)
"""),
    "big_but_allowed_result": f("""
def big_but_allowed_result():
    return ['a' * 1000 for i in range(5000)]
"""),
    "generator_result": f("""
def generator_result():
    return (i for i in range(3))
"""),
    "frame_result": f("""
def frame_result():
    import sys
    return sys._getframe()
"""),
    "reduce_loops": f("""
def reduce_loops():
    class Evil:
        def __reduce__(self):
            while True:
                pass
    return Evil()
"""),
    "reduce_allocates": f("""
def reduce_allocates():
    class Evil:
        def __reduce__(self):
            keep = []
            while True:
                keep.append(bytearray(1 << 20))
    return Evil()
"""),
    "reduce_exits": f("""
def reduce_exits():
    class Evil:
        def __reduce__(self):
            import os
            os._exit(7)
    return Evil()
"""),
    "reduce_raises_systemexit": f("""
def reduce_raises_systemexit():
    class Evil:
        def __reduce__(self):
            raise SystemExit(4)
    return Evil()
"""),
    # --- /tmp
    "fill_tmp": f("""
def fill_tmp():
    written = 0
    try:
        with open('/tmp/big', 'wb') as fh:
            while True:
                fh.write(b'x' * (1 << 20))
                fh.flush()
                written += 1 << 20
    except OSError as e:
        return ('full', written, e.errno)
    return ('never', written)
"""),
    "fill_tmp_many_files": f("""
def fill_tmp_many_files():
    total = 0
    try:
        for i in range(100):
            with open(f'/tmp/f{i}', 'wb') as fh:
                fh.write(b'y' * (1 << 20))
            total += 1 << 20
    except OSError as e:
        return ('full', total, e.errno)
    return ('never', total)
"""),
    "sparse_tmp": f("""
def sparse_tmp():
    import os
    out = []
    fd = os.open('/tmp/sparse', os.O_CREAT | os.O_WRONLY)
    try:
        os.ftruncate(fd, 1 << 40)
        out.append('truncated')
    except OSError as e:
        out.append(e.errno)
    try:
        os.lseek(fd, 1 << 40, 0)
        os.write(fd, b'x')
        out.append('wrote')
    except OSError as e:
        out.append(e.errno)
    return out
"""),
    "many_files": f("""
def many_files():
    n = 0
    try:
        for i in range(100000):
            open(f'/tmp/i{i}', 'w').close()
            n += 1
    except OSError as e:
        return ('stopped', n, e.errno)
    return ('all', n)
"""),
    "deep_dirs": f("""
def deep_dirs():
    import os
    p = '/tmp'
    n = 0
    try:
        for i in range(100000):
            p = p + '/d'
            os.mkdir(p)
            n += 1
    except OSError as e:
        return ('stopped', n, e.errno)
    return ('all', n)
"""),
    "tmp_then_read": f("""
def tmp_then_read(write):
    import os
    if write:
        with open('/tmp/mine', 'w') as fh:
            fh.write('warm state')
    return sorted(os.listdir('/tmp'))
"""),
    "tmp_peek": f("""
def tmp_peek():
    import os
    return sorted(os.listdir('/tmp'))
"""),
    # --- ending the interpreter
    "sys_exit": f("""
def sys_exit():
    import sys
    sys.exit(3)
"""),
    "sys_exit_zero": f("""
def sys_exit_zero():
    import sys
    sys.exit(0)
"""),
    "os_exit": f("""
def os_exit():
    import os
    os._exit(0)
"""),
    "os_abort": f("""
def os_abort():
    import os
    os.abort()
"""),
    "raise_sigkill": f("""
def raise_sigkill():
    import signal
    signal.raise_signal(signal.SIGKILL)
"""),
    "raise_sigsegv": f("""
def raise_sigsegv():
    import signal
    signal.raise_signal(signal.SIGSEGV)
"""),
    "raise_sigint": f("""
def raise_sigint():
    import signal
    signal.raise_signal(signal.SIGINT)
"""),
    "keyboard_interrupt": f("""
def keyboard_interrupt():
    raise KeyboardInterrupt
"""),
    "os_kill": f("""
def os_kill():
    import os
    os.kill(1, 9)
"""),
    "builtin_exit": f("""
def builtin_exit():
    exit(5)
"""),
    "atexit_exit": f("""
def atexit_exit():
    import atexit, os
    atexit.register(os._exit, 9)
    return 'registered'
"""),
})


# --- processes: all fail cleanly, inside the sandbox

@pytest.mark.parametrize("name,error", [
    ("fork", "AttributeError"),             # WASI os has no fork
    ("fork_bomb", "AttributeError"),
    ("subprocess_run", "OSError"),           # "wasi does not support processes"
    ("popen", "OSError"),
    ("system", "AttributeError"),
    ("posix_spawn", "AttributeError"),
    ("execv", "AttributeError"),
    ("mp_process", "AttributeError"),        # multiprocessing needs os.pipe
    ("mp_pool", ""),                          # any Python error
])
def test_process_creation_fails_cleanly(adv, name, error):
    """FAILED USER_EXCEPTION naming the error; no process appears on the host."""
    body = adv.attack(CASES.fn(name), kind="USER_EXCEPTION")
    assert error in body["error"]["message"]


@pytest.mark.parametrize("name", ["thread_start", "thread_bomb", "low_level_thread", "thread_pool"])
def test_threads_fail_cleanly(adv, name):
    """FAILED USER_EXCEPTION RuntimeError("can't start new thread"): WASI has no threads."""
    body = adv.attack(CASES.fn(name), kind="USER_EXCEPTION")
    assert "can't start new thread" in body["error"]["message"]


# --- CPU and wall clock

@pytest.mark.parametrize("name", ["busy_loop", "sleep_forever", "uncatchable_loop"])
def test_infinite_loops_time_out(adv, name):
    """FAILED TIMEOUT ("task exceeded 3s", a TimeoutError); the sandbox
    process is killed and replaced; the innocent canary runs meanwhile."""
    body = adv.attack(CASES.fn(name), kind="TIMEOUT")
    assert body["error"]["message"] == f"task exceeded {TASK_TIMEOUT}s"
    assert isinstance(body["value"], TimeoutError)


# --- memory

@pytest.mark.parametrize("name", [
    "bytearray_1g", "bytearray_chunks", "list_growth", "string_doubling",
    "dict_growth", "deep_nested", "list_repeat",
])
def test_memory_bombs(adv, name):
    """FAILED MEMORY_LIMIT (a MemoryError), and the sandbox process's peak
    resident memory on the host stays near the 256 MiB guest cap."""
    body = adv.attack(CASES.fn(name), kind="MEMORY_LIMIT")
    assert isinstance(body["value"], MemoryError)
    assert adv.sandbox_peak_rss() < MEMORY_BYTES + (160 << 20), adv.sandbox_peak_rss()


def test_memory_error_caught_by_function(adv):
    """COMPLETED: a function that catches its own MemoryError and frees the
    memory may go on (about 250 chunks of 1 MiB fitted)."""
    body = adv.attack(CASES.fn("catch_memory_error"), expect="COMPLETED")
    tag, n = body["value"]
    assert tag == "survived" and 150 < n < 256


# --- output

@pytest.mark.parametrize("name,streams", [
    ("print_flood", ("stdout",)),
    ("stderr_flood", ("stderr",)),
    ("os_write_flood", ("stdout", "stderr")),
    ("os_write_one_huge", ("stdout",)),
])
def test_huge_output_is_capped(adv, name, streams):
    """COMPLETED 'done'; each flooded stream is cut at exactly the 1 MiB cap."""
    body = adv.attack(CASES.fn(name), expect="COMPLETED")
    assert body["value"] == "done"
    for s in streams:
        assert len(body[s]) == OUTPUT_CAP, (s, len(body[s]))
    for s in {"stdout", "stderr"} - set(streams):
        assert body[s] == ""


# --- recursion

def test_python_recursion(adv):
    """FAILED USER_EXCEPTION RecursionError (the default limit of 1000)."""
    body = adv.attack(CASES.fn("py_recursion"), kind="USER_EXCEPTION")
    assert "RecursionError" in body["error"]["message"]


def test_python_recursion_raised_limit(adv):
    """Python-to-Python calls do not use the C stack in 3.11: with the limit
    raised to 30000 it is still a RecursionError (USER_EXCEPTION), no crash."""
    body = adv.attack(CASES.fn("py_recursion_raised_limit"), kind="USER_EXCEPTION")
    assert "RecursionError" in body["error"]["message"]


def test_repr_deep_default_limit(adv):
    """FAILED USER_EXCEPTION RecursionError: repr of a 100000-deep list."""
    body = adv.attack(CASES.fn("repr_deep"), kind="USER_EXCEPTION")
    assert "RecursionError" in body["error"]["message"]


@pytest.mark.parametrize("name", ["c_pickle_deep", "c_json_deep", "c_compare_deep"])
def test_c_stack_overflow(adv, name):
    """C-level recursion past the wasm stack (recursion limit raised, so
    CPython's own guard does not stop it): FAILED SANDBOX_CRASH (wasm
    "stack overflow" or an out-of-bounds trap below the stack) or a Python
    error; never a hang, never memory corruption that lets the task
    complete; the instance is discarded."""
    body = adv.attack(CASES.fn(name))
    kind = body["error"]["kind"]
    assert kind in ("SANDBOX_CRASH", "USER_EXCEPTION"), kind
    if kind == "SANDBOX_CRASH":
        assert "C stack overflow" in body["error"]["message"]


def test_parser_too_deep(adv):
    """eval of 100000 nested brackets: the 3.11 parser raises MemoryError
    ("too complex"), reported as FAILED MEMORY_LIMIT (or a Python error)."""
    body = adv.attack(CASES.fn("parser_deep"))
    assert body["error"]["kind"] in ("MEMORY_LIMIT", "USER_EXCEPTION"), body["error"]


def test_deep_result(adv):
    """A 100000-deep list as the result: FAILED RESULT_UNPICKLABLE (RecursionError in dill)."""
    body = adv.attack(CASES.fn("deep_result"), kind="RESULT_UNPICKLABLE")
    assert "RecursionError" in body["error"]["message"]


# --- results

def test_huge_result(adv):
    """FAILED RESULT_TOO_LARGE: 11 MiB pickled, over the 10 MiB cap."""
    body = adv.attack(CASES.fn("huge_result"), kind="RESULT_TOO_LARGE")
    assert isinstance(body["value"], ValueError)


def test_big_result_under_cap(adv):
    """COMPLETED: 5 MB of strings is under the cap and comes back whole."""
    body = adv.attack(CASES.fn("big_but_allowed_result"), expect="COMPLETED")
    assert body["value"] == ["a" * 1000] * 5000


@pytest.mark.parametrize("name", ["generator_result", "frame_result"])
def test_unpicklable_result(adv, name):
    """FAILED RESULT_UNPICKLABLE with a TypeError that names the type."""
    body = adv.attack(CASES.fn(name), kind="RESULT_UNPICKLABLE")
    assert "cannot be pickled" in body["error"]["message"]
    assert isinstance(body["value"], TypeError)


@pytest.mark.parametrize("name,kind", [
    ("reduce_loops", "TIMEOUT"),
    ("reduce_allocates", "MEMORY_LIMIT"),
    ("reduce_exits", "USER_EXIT"),
    ("reduce_raises_systemexit", "RESULT_UNPICKLABLE"),
])
def test_result_whose_pickling_runs_code(adv, name, kind):
    """A result whose __reduce__ runs when pyshim pickles it: its loop, its
    allocation or its exit still end the task with the right kind."""
    adv.attack(CASES.fn(name), kind=kind)


# --- /tmp

@pytest.mark.parametrize("name", ["fill_tmp", "fill_tmp_many_files"])
def test_fill_tmp(adv, name):
    """COMPLETED: writes past the 16 MiB /tmp cap fail with OSError EIO
    (wazero has no ENOSPC) after exactly 16 MiB."""
    body = adv.attack(CASES.fn(name), expect="COMPLETED")
    assert body["value"] == ("full", TMP_CAP, EIO)


def test_sparse_tmp(adv):
    """COMPLETED: a 1 TiB ftruncate or a write at offset 1 TiB fails with
    EIO (holes count against the cap) instead of allocating."""
    body = adv.attack(CASES.fn("sparse_tmp"), expect="COMPLETED")
    assert body["value"] == [EIO, EIO]


def test_many_files(adv):
    """COMPLETED: creating 100k files stops with EIO at the inode cap
    (10000 inodes, the root directory included)."""
    body = adv.attack(CASES.fn("many_files"), expect="COMPLETED")
    tag, n, errno = body["value"]
    assert tag == "stopped" and 9000 <= n < 10000 and errno == EIO


def test_deep_dirs(adv):
    """COMPLETED: nesting directories stops at PATH_MAX (ENAMETOOLONG, WASI errno 37)."""
    body = adv.attack(CASES.fn("deep_dirs"), expect="COMPLETED")
    tag, n, errno = body["value"]
    assert tag == "stopped" and n < 5000 and errno == 37


def test_tmp_is_per_function(adv):
    """The same function (warm, nothing else ran in between) sees its own
    /tmp again; another function never does; a fresh-isolation function
    never sees its previous task's. (Warm state is best effort: the pool may
    give the slot to another function, which gets a new instance.)"""
    canary = adv.submit_canary()
    fid = adv.attacker.register(CASES.fn("tmp_then_read"), name="tmp_then_read")
    assert deserialize_value(adv.attacker.run(fid, True)) == ["mine"]
    assert deserialize_value(adv.attacker.run(fid, False)) == ["mine"]  # its own warm state
    # Another function gets a pristine /tmp, whichever sandbox it lands on.
    peek = adv.attacker.register(CASES.fn("tmp_peek"), name="tmp_peek")
    for _ in range(3):
        assert deserialize_value(adv.attacker.run(peek)) == []
    fresh = adv.attacker.register(CASES.fn("tmp_then_read"), name="fresh", isolation="fresh")
    assert deserialize_value(adv.attacker.run(fresh, True)) == ["mine"]
    assert deserialize_value(adv.attacker.run(fresh, False)) == []
    adv.check_unaffected(canary)


def deserialize_value(body):
    from adv_harness import deserialize
    assert body["status"] == "COMPLETED", body.get("error")
    return deserialize(body["result"])


# --- ending the interpreter

@pytest.mark.parametrize("name,kind,text", [
    ("sys_exit", "USER_EXIT", "sys.exit(3)"),
    ("sys_exit_zero", "USER_EXIT", "sys.exit(0)"),
    ("os_exit", "USER_EXIT", "os._exit(0)"),
    ("os_abort", "SANDBOX_CRASH", "unreachable"),
    ("raise_sigkill", "SANDBOX_CRASH", "unreachable"),
    ("raise_sigsegv", "SANDBOX_CRASH", "unreachable"),
    ("raise_sigint", "USER_EXCEPTION", "KeyboardInterrupt"),
    ("keyboard_interrupt", "USER_EXCEPTION", "KeyboardInterrupt"),
    ("os_kill", "USER_EXCEPTION", "AttributeError"),       # WASI os has no kill
    ("builtin_exit", "USER_EXCEPTION", "NameError"),       # no site module: no exit()
])
def test_ending_the_interpreter(adv, name, kind, text):
    """Each way out is a FAILED task of the stated kind; the same function
    runs again afterwards on a new instance."""
    body = adv.attack(CASES.fn(name), kind=kind)
    assert text in body["error"]["message"]
    again = adv.attacker.run(body["function_id"])
    assert again["status"] == "FAILED" and again["error"]["kind"] == kind


def test_atexit_never_runs(adv):
    """COMPLETED: atexit handlers never run (the interpreter is not
    finalized); the next task of the same warm function is unaffected."""
    body = adv.attack(CASES.fn("atexit_exit"), expect="COMPLETED")
    assert body["value"] == "registered"
    assert deserialize_value(adv.attacker.run(body["function_id"])) == "registered"


def test_cancel_a_runaway_task(adv):
    """DELETE /task/{id} on a busy loop: FAILED CANCELLED well before the
    timeout; its sandbox process is killed and replaced (no zombie, no
    leak); the innocent canary completes."""
    import time
    import requests
    canary = adv.submit_canary()
    fid = adv.attacker.register(CASES.fn("busy_loop"), name="busy_loop")
    tid = adv.attacker.execute(fid, args=())
    deadline = time.time() + 10
    while adv.attacker.get(f"/status/{tid}").json()["status"] != "RUNNING" and time.time() < deadline:
        time.sleep(0.05)
    t0 = time.time()
    r = requests.delete(f"{adv.server.url}/task/{tid}", timeout=10)
    assert r.status_code == 200, r.text
    body = adv.attacker.wait(tid)
    assert body["status"] == "FAILED" and body["error"]["kind"] == "CANCELLED", body.get("error")
    assert time.time() - t0 < 2
    adv.check_unaffected(canary)
