"""Bundles against the real binary (issue 11, part 2): a function registered
with its own modules and pure-Python packages, as plain HTTP clients send
them ("modules": {path: text} and "bundle": base64 zip).

Every deployment runs the same checks: faas up, API + local dispatcher +
redis-server, and push and pull dispatchers with a remote worker, which
fetches bundles from its dispatcher by hash (and, after a restart, again).
"""
import base64
import io
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import pytest
import requests

from conftest import _deployment, deserialize, serialize

TOKENS = {"alice": "alice-bundle-token-6b1d0c93e7", "bob": "bob-bundle-token-0e7f2a5c91"}

# The user's own code: a module and a package with a subpackage and a data
# file. They are written to a directory on this process's sys.path, so that
# dill pickles their functions and classes by reference, as it does for any
# importable module.
FILES = {
    "geom.py": '''
class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)
    def __repr__(self):
        return f"Point({self.x}, {self.y})"

def area(p):
    return p.x * p.y

def scale(p, k):
    return Point(p.x * k, p.y * k)
''',
    "shapes/__init__.py": "from .poly import square_area\n",
    "shapes/poly/__init__.py": "from .square import square_area\n",
    "shapes/poly/square.py": '''import os
import geom

def square_area(side):
    with open(os.path.join(os.path.dirname(__file__), "unit.txt")) as f:
        unit = f.read().strip()
    return geom.area(geom.Point(side, side)), unit
''',
    "shapes/poly/unit.txt": "cm2\n",
}

_dir = tempfile.mkdtemp(prefix="faas-bundle-src-")
for _name, _text in FILES.items():
    os.makedirs(os.path.dirname(os.path.join(_dir, _name)), exist_ok=True)
    with open(os.path.join(_dir, _name), "w") as _f:
        _f.write(_text)
sys.path.insert(0, _dir)
import geom  # noqa: E402
import shapes  # noqa: E402


def zipped(files, mode=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode and name in mode:
                info.external_attr = mode[name] << 16
            z.writestr(info, text)
    return base64.b64encode(buf.getvalue()).decode()


BUNDLE = zipped(FILES)


@pytest.fixture(scope="module", params=["up", "split", "sentinel", "push", "pull"])
def server(request):
    yield from _deployment(request, request.param,
                           env={"FAAS_TOKENS": ",".join(f"{t}:{k}" for t, k in TOKENS.items())})


def post(server, path, body, tenant="alice"):
    return requests.post(server.url + path, json=body, timeout=30,
                         headers={"Authorization": "Bearer " + TOKENS[tenant]})


def register(server, fn, tenant="alice", **extra):
    r = post(server, "/register_function", {"name": getattr(fn, "__name__", "fn"), "payload": serialize(fn), **extra}, tenant)
    assert r.status_code == 200, r.text
    return r.json()["function_id"]


def call(server, fid, *args, tenant="alice", **kwargs):
    r = post(server, "/execute_function", {"function_id": fid, "payload": serialize((args, kwargs))}, tenant)
    assert r.status_code == 200, r.text
    tid = r.json()["task_id"]
    deadline = time.time() + 60
    while time.time() < deadline:
        r = requests.get(f"{server.url}/result/{tid}?wait=5s", timeout=30,
                         headers={"Authorization": "Bearer " + TOKENS[tenant]})
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("COMPLETED", "FAILED"):
            return body
    raise AssertionError(f"task {tid} not final")


def value(body):
    assert body["status"] == "COMPLETED", body
    return deserialize(body["result"])


def test_module_function_by_reference(server):
    # Without the module: a 400 that names it.
    r = post(server, "/register_function", {"name": "area", "payload": serialize(geom.area)})
    assert r.status_code == 400 and "geom" in r.json()["detail"], r.text
    fid = register(server, geom.area, bundle=BUNDLE)
    assert value(call(server, fid, geom.Point(3, 4))) == 12


@pytest.mark.parametrize("isolation", ["warm", "fresh"])
def test_bundled_class_in_arguments_and_result(server, isolation):
    fid = register(server, geom.scale, bundle=BUNDLE, isolation=isolation)
    for k in (2, 3):
        got = value(call(server, fid, geom.Point(1, 2), k))
        assert type(got) is geom.Point and got == geom.Point(k, 2 * k)


def test_package_with_subpackages_and_data(server):
    def use():
        import shapes.poly.square
        return shapes.poly.square.square_area(5), shapes.square_area(1)

    fid = register(server, use, modules=FILES)  # the same files, as text
    assert value(call(server, fid)) == ((25, "cm2"), (1, "cm2"))


def test_other_functions_do_not_see_a_bundle(server):
    fid = register(server, geom.area, bundle=BUNDLE)
    value(call(server, fid, geom.Point(1, 1)))

    def probe():
        import importlib.util
        import os
        return os.listdir("/bundle"), importlib.util.find_spec("geom")

    assert value(call(server, register(server, probe))) == ([], None)


def test_tenants_have_their_own_bundles(server):
    fa = register(server, geom.area, bundle=BUNDLE, tenant="alice")
    fb = register(server, geom.area, bundle=BUNDLE, tenant="bob")
    assert value(call(server, fa, geom.Point(2, 5), tenant="alice")) == 10
    assert value(call(server, fb, geom.Point(2, 6), tenant="bob")) == 12
    # Bob cannot use Alice's function, bundle and all.
    r = post(server, "/execute_function", {"function_id": fa, "payload": serialize(((geom.Point(1, 1),), {}))}, "bob")
    assert r.status_code == 404, r.text


@pytest.mark.parametrize("files,mode,status,words", [
    ({"../evil.py": "x = 1"}, None, 400, '".."'),
    ({"/abs.py": ""}, None, 400, "absolute"),
    ({"link.py": "/etc/passwd"}, {"link.py": 0o120777}, 400, "symbolic link"),
    ({"pkg/__init__.py": "", "pkg/_c.cpython-311-x86_64-linux-gnu.so": "\x7fELF"}, None, 400, "compiled extension"),
    ({f"m/f{i}.py": "" for i in range(10000)}, None, 413, "10000 files"),
    ({"bomb.txt": "\0" * (40 << 20)}, None, 413, "over the limit"),
])
def test_bad_bundles_are_refused(server, files, mode, status, words):
    def f():
        return 1

    before = bundle_keys(server)
    r = post(server, "/register_function", {"name": "f", "payload": serialize(f), "bundle": zipped(files, mode)})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"], r.text
    assert bundle_keys(server) == before


def bundle_keys(server):
    """The bundles in Redis (None for faas up, whose Redis is inside)."""
    if server.kind == "up":
        return None
    out = subprocess.run(["redis-cli", "-p", str(server.primary_port()), "--scan", "--pattern", "faas:bundle:*"],
                         check=True, capture_output=True, text=True).stdout
    return sorted(out.split())


@pytest.fixture(params=["push", "pull"])
def remote(request):
    """A push or pull deployment of its own: the test restarts its worker."""
    yield from _deployment(request, request.param,
                           env={"FAAS_TOKENS": ",".join(f"{t}:{k}" for t, k in TOKENS.items())})


def test_worker_fetches_bundles_after_a_restart(remote):
    server = remote
    fid = register(server, geom.scale, bundle=BUNDLE)
    assert value(call(server, fid, geom.Point(1, 1), 2)) == geom.Point(2, 2)  # warm cache or first fetch
    args = server.worker_args
    server.kill("worker")
    server.spawn("worker", args)  # a new process: its cache is cold
    for k in (3, 4):  # the first fetches the bundle again, the second finds it cached
        assert value(call(server, fid, geom.Point(1, 1), k)) == geom.Point(k, k)
    # A bundle the worker has never seen, registered after the restart.
    other = dict(FILES)
    other["geom.py"] += "\nVERSION = 2\n"

    def version():
        import geom
        return geom.VERSION

    assert value(call(server, register(server, version, modules=other))) == 2


def test_source_function_with_modules_and_json_call(server):
    """A portable client: source text with modules as text, called with JSON
    arguments; the result comes back as JSON."""
    r = post(server, "/register_function", {
        "name": "area", "source": "import geom\ndef area(w, h):\n    return geom.area(geom.Point(w, h))",
        "modules": {"geom.py": FILES["geom.py"]}})
    assert r.status_code == 200, r.text
    r = post(server, "/execute_function", {"function_id": r.json()["function_id"], "args": [3, 4]})
    assert r.status_code == 200, r.text
    tid = r.json()["task_id"]
    body = requests.get(f"{server.url}/result/{tid}?wait=30s", timeout=60,
                        headers={"Authorization": "Bearer " + TOKENS["alice"]}).json()
    assert body["status"] == "COMPLETED", body
    assert body["result_json"] == 12
