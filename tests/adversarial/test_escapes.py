"""Escapes: host files, /proc, path tricks, symlinks, the environment,
sockets, native code, the read-only stdlib and pyshim, WASI preopened
descriptors, and state shared between functions.

The guest's world is /usr/local/lib (read-only stdlib), /faas (pyshim,
embedded in the binary), /tmp (in-memory, capped, per instance), /dev
(only null) and /bundle (the function's bundle, read-only; empty for a
function without one), preopened as descriptors 3 to 7. Everything else must be
unreachable, whatever the path. Each case also runs the checks of
Harness.attack (server, innocent canary, host canary file, processes, log).
"""
import glob
import hashlib
import os

import pytest

from adv_harness import Cases, adv, deserialize, harness  # noqa: F401


def f(src):
    return src.strip("\n") + "\n"


# Tries a list of paths; returns {path: ("ok", first bytes) | ("err", errno)}.
TRY_READ = f("""
def try_read(paths):
    out = {}
    for p in paths:
        try:
            with open(p, 'rb') as fh:
                out[p] = ('ok', fh.read(200))
        except OSError as e:
            out[p] = ('err', e.errno)
        except Exception as e:
            out[p] = ('exc', type(e).__name__)
    return out
""")

CASES = Cases({
    "try_read": TRY_READ,
    "try_write": f("""
def try_write(paths):
    out = {}
    for p in paths:
        for mode in ('ab', 'wb', 'r+b'):
            try:
                with open(p, mode) as fh:
                    fh.write(b'#pwned')
                out[p + ' ' + mode] = 'written'
            except OSError as e:
                out[p + ' ' + mode] = ('err', e.errno)
    return out
"""),
    "host_dir_ops": f("""
def host_dir_ops(d, target):
    import os
    out = {}
    ops = {
        'listdir': lambda: os.listdir(d),
        'stat': lambda: tuple(os.stat(target)),
        'remove': lambda: os.remove(target),
        'rename': lambda: os.rename(target, target + '.x'),
        'mkdir': lambda: os.mkdir(d + '/new'),
        'create': lambda: open(d + '/pwned', 'w').close(),
        'chmod': lambda: os.chmod(target, 0o777),
        'utime': lambda: os.utime(target, (0, 0)),
        'via_tmp': lambda: open('/tmp/..' + target).read(),
    }
    for name, op in ops.items():
        try:
            out[name] = ('ok', repr(op())[:100])
        except OSError as e:
            out[name] = ('err', e.errno)
    return out
"""),
    "env_and_identity": f("""
def env_and_identity():
    import os, sys
    return {
        'environ': dict(os.environ),
        'argv': sys.argv,
        'path': sys.path,
        'executable': sys.executable,
        'platform': sys.platform,
        'cwd': os.getcwd(),
        'getenv_home': os.getenv('HOME'),
        'getenv_path': os.getenv('PATH'),
    }
"""),
    "chdir_and_list": f("""
def chdir_and_list():
    import os
    out = {}
    for d in ['/', '..', '/usr', '/usr/local', '/etc', '/proc', '/home', '/root', '/tmp/..', '.']:
        try:
            out['list ' + d] = ('ok', sorted(os.listdir(d)))
        except OSError as e:
            out['list ' + d] = ('err', e.errno)
    for d in ['/', '..', '/usr', '/etc']:
        try:
            os.chdir(d)
            out['chdir ' + d] = ('ok', os.getcwd())
        except OSError as e:
            out['chdir ' + d] = ('err', e.errno)
    return out
"""),
    "walk_everything": f("""
def walk_everything():
    import os
    tops = {}
    for top in ['/usr/local/lib', '/faas', '/tmp', '/dev']:
        for root, dirs, files in os.walk(top):
            for name in dirs + files:
                p = os.path.join(root, name)
                tops[p.split('/')[1]] = tops.get(p.split('/')[1], 0) + 1
    return tops, sorted(os.listdir('/faas')), sorted(os.listdir('/dev')), sorted(os.listdir('/usr/local/lib'))
"""),
    "symlinks": f("""
def symlinks(host_file):
    import os
    out = {}
    for target, link in [('/etc/passwd', '/tmp/l1'), ('../etc/passwd', '/tmp/l2'),
                         (host_file, '/tmp/l3'), ('/usr/local/lib/python3.11/os.py', '/tmp/l4')]:
        try:
            os.symlink(target, link)
            out[link] = ('ok', open(link).read(50))
        except OSError as e:
            out[link] = ('err', e.errno)
    for src, dst in [('/usr/local/lib/python3.11/os.py', '/tmp/h1'), ('/faas/pyshim.py', '/tmp/h2')]:
        try:
            os.link(src, dst)
            out[dst] = 'linked'
        except OSError as e:
            out[dst] = ('err', e.errno)
    out['tmp'] = sorted(os.listdir('/tmp'))
    return out
"""),
    "sockets": f("""
def sockets(port):
    import socket
    out = {}
    def attempt(name, fn):
        try:
            out[name] = ('ok', repr(fn())[:80])
        except Exception as e:
            out[name] = ('err', type(e).__name__)
    attempt('socket', lambda: socket.socket())
    attempt('udp', lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    attempt('unix', lambda: socket.socket(socket.AF_UNIX))
    attempt('connect', lambda: socket.create_connection(('127.0.0.1', port), timeout=1))
    attempt('getaddrinfo', lambda: socket.getaddrinfo('localhost', 80))
    attempt('socketpair', lambda: socket.socketpair())
    for fd in range(0, 10):
        attempt(f'fromfd {fd}', lambda: socket.socket(fileno=fd).getsockname())
    return out
"""),
    "http_to_host": f("""
def http_to_host(url):
    import urllib.request
    try:
        return ('ok', urllib.request.urlopen(url + '/healthz', timeout=1).read())
    except Exception as e:
        return ('err', type(e).__name__)
"""),
    "native_modules": f("""
def native_modules():
    import sys
    out = {}
    for m in ['ctypes', '_ctypes', 'cffi', '_cffi_backend', 'mmap', 'resource', 'fcntl',
              '_posixsubprocess', '_testcapi', '_testinternalcapi', 'termios', 'pty',
              '_multiprocessing', 'readline', 'ssl', '_ssl', 'grp', 'pwd', '_crypt', 'nis']:
        try:
            __import__(m)
            out[m] = 'imported'
        except BaseException as e:
            out[m] = type(e).__name__
    return out, list(sys.builtin_module_names)
"""),
    "write_readonly": f("""
def write_readonly():
    import os
    out = {}
    targets = ['/usr/local/lib/python3.11/os.py', '/usr/local/lib/python3.11/evil.py',
               '/usr/local/lib/python3.11/site-packages/dill/__init__.py',
               '/usr/local/lib/python3.11/__pycache__/os.cpython-311.pyc',
               '/faas/pyshim.py', '/faas/evil.py', '/usr/local/lib/evil.pth',
               '/usr/local/lib/python3.11/site-packages/evil.pth']
    for p in targets:
        for mode in ('ab', 'wb'):
            try:
                with open(p, mode) as fh:
                    fh.write(b'#pwned')
                out[p + ' ' + mode] = 'written'
            except OSError as e:
                out[p + ' ' + mode] = ('err', e.errno)
    for name, op in [('remove', lambda: os.remove('/usr/local/lib/python3.11/os.py')),
                     ('rmdir', lambda: os.rmdir('/usr/local/lib/python3.11/json')),
                     ('mkdir', lambda: os.mkdir('/faas/x')),
                     ('rename', lambda: os.rename('/faas/pyshim.py', '/tmp/p.py')),
                     ('rename_stdlib', lambda: os.rename('/usr/local/lib/python3.11/os.py', '/tmp/os.py')),
                     ('chmod', lambda: os.chmod('/usr/local/lib/python3.11/os.py', 0o777)),
                     ('utime', lambda: os.utime('/usr/local/lib/python3.11/os.py', (0, 0)))]:
        try:
            op()
            out[name] = 'done'
        except OSError as e:
            out[name] = ('err', e.errno)
    return out
"""),
    "preopen_fds": f("""
def preopen_fds():
    import os
    out = {}
    for fd in range(0, 11):
        r = {}
        ops = [
            ('fstat', lambda: os.fstat(fd).st_mode),
            ('read', lambda: os.read(fd, 64)),
            ('write', lambda: os.write(fd, b'')),
            ('lseek', lambda: os.lseek(fd, 0, 2)),
            ('ftruncate', lambda: os.ftruncate(fd, 0)),
            ('open_create', lambda: os.close(os.open('fd_created', os.O_CREAT | os.O_WRONLY, dir_fd=fd))),
            ('open_up', lambda: os.open('../etc/passwd', os.O_RDONLY, dir_fd=fd)),
            ('open_abs', lambda: os.open('/etc/passwd', os.O_RDONLY, dir_fd=fd)),
            ('scandir', lambda: sorted(e.name for e in os.scandir(fd))),
            ('fdopen', lambda: os.fdopen(os.dup(fd), 'rb').read(10)),
        ]
        for name, op in ops:
            try:
                r[name] = ('ok', repr(op())[:60])
            except BaseException as e:
                r[name] = ('err', getattr(e, 'errno', None) or type(e).__name__)
        out[fd] = r
    return out
"""),
    "poison": f("""
def poison():
    import builtins, sys, types, os
    builtins.POISON = 'set by poison'
    sys.modules['evilmod'] = types.ModuleType('evilmod')
    with open('/tmp/poison', 'w') as fh:
        fh.write('x')
    import json
    json.dumps = lambda *a, **k: 'FORGED'
    return 'poisoned'
"""),
    "peek": f("""
def peek():
    import builtins, sys, os, json
    return (getattr(builtins, 'POISON', None), 'evilmod' in sys.modules,
            sorted(os.listdir('/tmp')), json.dumps([1]))
"""),
    "kv": f("""
def kv(key, value=None):
    import os
    path = '/tmp/' + key
    if value is None:
        return open(path).read() if os.path.exists(path) else None
    with open(path, 'w') as fh:
        fh.write(value)
    return 'stored'
"""),
    "randomness": f("""
def randomness():
    import random, secrets, uuid, os, tempfile
    return (random.getrandbits(64), secrets.token_hex(8), str(uuid.uuid4()), os.urandom(8).hex(),
            tempfile.mktemp())
"""),
}, extra={
    # Arguments whose unpickling runs code in the sandbox (as any pickle may):
    # it poisons the warm instance of the function being called.
    "poison_args": (f("""
class Poison:
    def __reduce__(self):
        return (exec, ("import builtins, sys, types\\nbuiltins.POISON = 'from args'\\n"
                       "sys.modules['evilmod'] = types.ModuleType('evilmod')\\n"
                       "open('/tmp/poison', 'w').write('x')",))
"""), "((), {'x': Poison()})"),
})


# --- files on the host

def test_read_system_files(adv):
    """COMPLETED with every read refused: /etc/passwd, /proc/self/*,
    /proc/1/environ, /root, /home are unreachable (WASI ENOTCAPABLE 76 or
    ENOENT 44); nothing of the host comes back."""
    paths = ["/etc/passwd", "/etc/shadow", "/etc/hostname", "/proc/self/environ", "/proc/self/maps",
             "/proc/self/cmdline", "/proc/self/mem", "/proc/1/environ", "/proc/self/status",
             "/sys/kernel/hostname", "/root/.bashrc", "/home", "/dev/mem", "/dev/sda", "/dev/tty",
             "/dev/zero", "/dev/urandom", "/dev/stdin", "/proc", "/"]
    body = adv.attack(CASES.fn("try_read"), args=(paths,), expect="COMPLETED")
    for p, res in body["value"].items():
        assert res[0] != "ok", (p, res)


def test_read_host_canary_by_path(adv):
    """COMPLETED with every read refused: the host canary file by absolute,
    ../-laden and relative paths, from each mount."""
    h = adv.host.path
    rel = h.lstrip("/")
    paths = [h, "/tmp/.." + h, "/tmp/../.." + h, "/usr/local/lib/../../.." + h,
             "/usr/local/lib/python3.11/../../../../.." + h, "/faas/.." + h, "/dev/.." + h,
             "../../../../" + rel, rel, "./" + rel, "//" + rel, h + "/.", h.replace("/", "//")]
    body = adv.attack(CASES.fn("try_read"), args=(paths,), expect="COMPLETED")
    for p, res in body["value"].items():
        assert res[0] != "ok", (p, res)


def test_write_host_canary_by_path(adv):
    """COMPLETED with every write refused; the host file stays unchanged
    (checked by the harness: content, mtime, atime, directory listing)."""
    h = adv.host.path
    paths = [h, "/tmp/.." + h, "/usr/local/lib/../../.." + h, h.lstrip("/"), adv.host.marker]
    body = adv.attack(CASES.fn("try_write"), args=(paths,), expect="COMPLETED")
    for p, res in body["value"].items():
        assert res != "written", p


def test_host_directory_operations(adv):
    """COMPLETED with every operation refused on the host canary's
    directory: list, stat, remove, rename, mkdir, create, chmod, utime."""
    body = adv.attack(CASES.fn("host_dir_ops"), args=(adv.host.dir, adv.host.path), expect="COMPLETED")
    v = body["value"]
    # chmod is a no-op that reports success in WASI CPython (there is no
    # WASI call for it): allowed, the harness checks the host file's mode.
    assert v.pop("chmod") in (("ok", "None"), ("err", 44), ("err", 76))
    for op, res in v.items():
        assert res[0] == "err", (op, res)


def test_environment_is_empty(adv):
    """COMPLETED: os.environ is empty, argv is [''], sys.path holds only the
    guest's stdlib and /faas, cwd is /, the platform is wasi: nothing of the
    host's environment (tokens, paths, FAAS_* settings) is visible."""
    body = adv.attack(CASES.fn("env_and_identity"), expect="COMPLETED")
    v = body["value"]
    assert v["environ"] == {} and v["getenv_home"] is None and v["getenv_path"] is None
    assert v["argv"] == [""] and v["executable"] == "" and v["platform"] == "wasi" and v["cwd"] == "/"
    assert all(p.startswith(("/usr/local/lib/python3.11", "/faas")) for p in v["path"]), v["path"]


def test_chdir_and_listdir_outside_mounts(adv):
    """COMPLETED: listing /, .., /usr, /etc, /proc, ... and chdir to them
    fail; nothing outside the four mounts can be listed."""
    body = adv.attack(CASES.fn("chdir_and_list"), expect="COMPLETED")
    for k, res in body["value"].items():
        assert res[0] == "err", (k, res)


def test_walk_every_reachable_directory(adv):
    """COMPLETED: walking every mount finds only the guest's own tree:
    /usr (stdlib), /faas (pyshim.py only), /tmp (empty), /dev (null only)."""
    body = adv.attack(CASES.fn("walk_everything"), expect="COMPLETED")
    tops, faas, dev, lib = body["value"]
    assert set(tops) == {"usr", "faas", "dev"}, tops
    assert faas == ["pyshim.py"] and dev == ["null"] and lib == ["python3.11"]


def test_symlinks_and_hard_links(adv):
    """COMPLETED: os.symlink and os.link are refused (the in-memory /tmp
    has no links, the stdlib is read-only); /tmp stays empty."""
    body = adv.attack(CASES.fn("symlinks"), args=(adv.host.path,), expect="COMPLETED")
    v = body["value"]
    assert v.pop("tmp") == []
    for k, res in v.items():
        assert res[0] == "err", (k, res)


# --- network

def test_sockets(adv):
    """COMPLETED with every attempt failing: creating sockets (TCP, UDP,
    unix), connecting to the API's own port, name resolution and wrapping
    the stdio and preopened descriptors as sockets all raise OSError."""
    body = adv.attack(CASES.fn("sockets"), args=(adv.server.port,), expect="COMPLETED")
    for k, res in body["value"].items():
        assert res[0] == "err", (k, res)


def test_http_to_the_api_itself(adv):
    """COMPLETED ('err', ...): urllib cannot reach the API from inside (no SSRF)."""
    body = adv.attack(CASES.fn("http_to_host"), args=(adv.server.url,), expect="COMPLETED")
    assert body["value"][0] == "err"


# --- native code

def test_native_modules_missing(adv):
    """COMPLETED: ctypes, _ctypes, cffi, mmap, resource, fcntl,
    _posixsubprocess, _testcapi, termios, ssl, ... do not import. Without
    ctypes a function cannot call the C exports faas_run/faas_alloc (nor
    any other wasm export or host import directly): the only builtin
    modules are CPython's own."""
    body = adv.attack(CASES.fn("native_modules"), expect="COMPLETED")
    mods, builtin = body["value"]
    for m in ["ctypes", "_ctypes", "cffi", "_cffi_backend", "mmap", "resource", "fcntl", "_posixsubprocess",
              "_testcapi", "_testinternalcapi", "termios", "_multiprocessing", "readline", "_ssl"]:
        assert mods[m] in ("ModuleNotFoundError", "ImportError"), (m, mods[m])
    assert not [b for b in builtin if "faas" in b.lower() or "ctypes" in b or "ffi" in b], builtin


def _image_files():
    """The host's copies of what the guest sees read-only, with their hashes."""
    out = {}
    cache = os.environ.get("FAAS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "wasmfaas")
    for p in glob.glob(os.path.join(cache, "python-*", "lib", "python3.11", "os.py")) + \
            glob.glob(os.path.join(cache, "python-*", "lib", "python3.11", "site-packages", "dill", "__init__.py")):
        st = os.stat(p)
        with open(p, "rb") as fh:
            out[p] = (hashlib.sha256(fh.read()).hexdigest(), st.st_mtime_ns, st.st_mode)
    return out


def test_write_readonly_stdlib_and_pyshim(adv):
    """COMPLETED with every write refused: the stdlib (/usr/local/lib,
    read-only host mount) and pyshim (/faas, embedded in the binary) cannot
    be written, created in, removed, renamed, chmod-ed or touched; the
    host's image files are unchanged."""
    before = _image_files()
    body = adv.attack(CASES.fn("write_readonly"), expect="COMPLETED")
    v = body["value"]
    v.pop("chmod")  # a no-op "success" in WASI CPython; the mode check below covers it
    for k, res in v.items():
        assert res != "written" and res != "done", k
    assert _image_files() == before


def test_wasi_preopened_descriptors(adv):
    """COMPLETED. Descriptors by number: 0-2 are stdio (read of 0 is
    empty, writes to 1/2 go to captured output), 3-7 are the preopened
    mounts /usr/local/lib, /faas, /tmp, /dev, /bundle (no read/write/seek
    on them), >= 8 are EBADF. Only /tmp (fd 5) lets a file be created (not
    /bundle, the function's read-only bundle, empty here); '../' and
    absolute paths relative to any of them are refused.

    Observation (not a bug): fstat/stat on the stdlib mount returns the
    host's inode and device numbers and mtimes of the image files."""
    body = adv.attack(CASES.fn("preopen_fds"), expect="COMPLETED")
    fds = {int(k): v for k, v in body["value"].items()}
    for fd in range(0, 11):
        r = fds[fd]
        assert r["open_up"][0] == "err" and r["open_abs"][0] == "err", (fd, r)
        if fd >= 8:
            assert all(res[0] == "err" for res in r.values()), (fd, r)
            assert r["fstat"] == ("err", 8) and r["read"] == ("err", 8), (fd, r)  # EBADF
        if fd in (3, 4, 5, 6, 7):
            for op in ("read", "write", "lseek", "ftruncate"):
                assert r[op][0] == "err", (fd, op, r)
        if fd != 5:
            assert r["open_create"][0] == "err", (fd, r)
    assert fds[5]["open_create"][0] == "ok"
    assert fds[0]["read"] == ("ok", "b''")


# --- state shared between functions

def test_warm_isolation_between_functions(adv):
    """Function A poisons builtins, sys.modules, json.dumps and /tmp;
    function B (other code) sees none of it on any sandbox; A itself may
    see its own warm state."""
    canary = adv.submit_canary()
    a = adv.attacker.register(CASES.fn("poison"), name="poison")
    b = adv.victim.register(CASES.fn("peek"), name="peek")
    assert _value(adv.attacker.run(a)) == "poisoned"
    for _ in range(4):
        assert _value(adv.victim.run(b)) == (None, False, [], "[1]")
    adv.check_unaffected(canary)


def test_args_pickle_poisons_only_its_function(adv):
    """Arguments are a pickle, so unpickling them runs code in the sandbox:
    here exec() via __reduce__ poisons the called function's warm instance
    (allowed: the function's own state) -- but never another function."""
    canary = adv.submit_canary()
    victim_peek = adv.victim.register(CASES.fn("peek"), name="peek")
    poison = adv.attacker.register(CASES.fn("kv"), name="kv")
    body = adv.attacker.wait(adv.attacker.execute(poison, payload=CASES.get("poison_args")))
    assert body["status"] == "FAILED" and body["error"]["kind"] == "USER_EXCEPTION"  # kv() got no key
    assert _value(adv.attacker.run(poison, "poison")) == "x"  # the poison ran, in kv's instance
    for _ in range(4):
        assert _value(adv.victim.run(victim_peek)) == (None, False, [], "[1]")
    adv.check_unaffected(canary)


def test_warm_state_not_shared_between_registrations(adv):
    """TENANT: the attacker registers byte-for-byte the victim's function
    and stores data through it; the victim's own registration must not see
    it (expected: None), nor the poison that the attacker's arguments
    planted in builtins/sys.modules/tmp."""
    canary = adv.submit_canary()
    victim_fid = adv.victim.register(CASES.fn("kv"), name="kv")
    attacker_fid = adv.attacker.register(CASES.fn("kv"), name="kv")
    assert victim_fid != attacker_fid
    assert _value(adv.attacker.run(attacker_fid, "session", "planted by the attacker")) == "stored"
    leaked = [_value(adv.victim.run(victim_fid, "session")) for _ in range(2)]
    adv.check_unaffected(canary)
    assert leaked == [None, None], f"victim's function saw the attacker's /tmp: {leaked}"


def test_randomness_differs_between_fresh_instances(adv):
    """COMPLETED x3 (fresh isolation): random, secrets, uuid4, urandom and
    tempfile names differ between instances restored from the same
    snapshot, so one caller cannot predict another's values."""
    fid = adv.attacker.register(CASES.fn("randomness"), name="randomness", isolation="fresh")
    canary = adv.submit_canary()
    runs = [_value(adv.attacker.run(fid)) for _ in range(3)]
    for i in range(5):
        assert len({r[i] for r in runs}) == 3, [r[i] for r in runs]
    adv.check_unaffected(canary)


def _value(body):
    assert body["status"] == "COMPLETED", body.get("error")
    return deserialize(body["result"])
