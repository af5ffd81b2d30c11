"""Bundles in the Python client, without a server: what goes into the zip
(modules, packages with subpackages and data files, installed packages),
what is refused (compiled extensions, the standard library, dill), what
auto-bundling picks and when it falls back to sending by value, the request
body, the registration cache, and objects of bundled modules travelling by
reference in arguments and results.

A fake transport stands in for the server. It can also "run" a task the
way the sandbox does: in a fresh Python (``-I``: none of the test's paths)
with only the bundle, extracted, first on sys.path, so that the tests see
the function's module imported from the bundle and a ``mod.Point`` result
unpickled here as the real ``mod.Point``.
"""
import base64
import importlib
import io
import json
import os
import pickletools
import subprocess
import sys
import types
import uuid
import warnings
import zipfile

import pytest

from client_fixtures import POINT_MODULE, module_tree  # noqa: F401  (a fixture; also puts clients/python on sys.path)

import wasmfaas  # noqa: E402
from wasmfaas import bundles, pickling  # noqa: E402
from wasmfaas.transport import Response  # noqa: E402


# --- helpers


@pytest.fixture
def tree(module_tree):
    return module_tree


RUNNER = r"""
import base64, json, os, sys, traceback, zipfile
import dill
work = sys.argv[1]
zpath = os.path.join(work, "bundle.zip")
if os.path.exists(zpath):
    root = os.path.join(work, "bundle")
    with zipfile.ZipFile(zpath) as z:
        for n in z.namelist():
            if n.startswith("/") or ".." in n.split("/") or "\\" in n:
                raise SystemExit("bad path in the bundle: %r" % n)
        z.extractall(root)
    sys.path.insert(0, root)
sys.dont_write_bytecode = True
with open(os.path.join(work, "fn.pkl"), "rb") as f:
    fn = dill.loads(f.read())
with open(os.path.join(work, "args.pkl"), "rb") as f:
    args, kwargs = dill.loads(f.read())
try:
    out = {"status": "COMPLETED", "result": base64.b64encode(dill.dumps(fn(*args, **kwargs))).decode()}
except Exception as e:
    out = {"status": "FAILED", "result": base64.b64encode(dill.dumps(e)).decode(),
           "error": {"kind": "USER_EXCEPTION", "message": repr(e), "traceback": traceback.format_exc()}}
print(json.dumps(out))
"""


class FakeServer:
    """Replaces a client's transport: records every request with its JSON
    body, registers functions, and (run=True) runs tasks like the sandbox
    (see the module doc). ``answer`` overrides the answer to a register."""

    def __init__(self, client, workdir, run=True, answer=None):
        self.requests = []
        self.functions = {}
        self.results = {}
        self.workdir = workdir
        self.run = run
        self.answer = answer
        client.transport.request = self.request

    def registrations(self):
        return [body for method, path, body in self.requests if path == "/register_function"]

    def executions(self):
        return [body for method, path, body in self.requests if path == "/execute_function"]

    def request(self, method, path, body=None, timeout=None):
        self.requests.append((method, path.split("?")[0], body))
        if path == "/register_function":
            if self.answer is not None:
                return self.answer
            fid = str(uuid.uuid4())
            self.functions[fid] = body
            return Response(200, {"function_id": fid}, "")
        if path == "/execute_function":
            tid = str(uuid.uuid4())
            if self.run:
                self.results[tid] = self._run(self.functions[body["function_id"]], body["payload"], tid)
            else:
                self.results[tid] = {"task_id": tid, "status": "COMPLETED", "result": wasmfaas.serialize(None)}
            return Response(200, {"task_id": tid}, "")
        if path.startswith("/result/"):
            tid = path.split("/")[2].split("?")[0]
            return Response(200, self.results[tid], "")
        if method == "DELETE":
            return Response(409, {"detail": "already final"}, "")
        return Response(404, {"detail": "no such path %s" % path}, "")

    def _run(self, fbody, args_b64, tid):
        work = self.workdir / tid
        work.mkdir(parents=True)
        (work / "fn.pkl").write_bytes(base64.b64decode(fbody["payload"]))
        (work / "args.pkl").write_bytes(base64.b64decode(args_b64))
        if "bundle" in fbody:
            (work / "bundle.zip").write_bytes(base64.b64decode(fbody["bundle"]))
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        out = subprocess.run([sys.executable, "-I", "-c", RUNNER, str(work)], capture_output=True, text=True,
                             cwd=str(work), env=env, timeout=60)
        if out.returncode != 0:
            return {"task_id": tid, "status": "FAILED", "result": None,
                    "error": {"kind": "BAD_PAYLOAD", "message": out.stderr.strip().splitlines()[-1],
                              "traceback": out.stderr}}
        info = json.loads(out.stdout)
        info["task_id"] = tid
        return info


@pytest.fixture
def fake(tmp_path):
    clients = []

    def make(**kwargs):
        c = wasmfaas.Client("http://127.0.0.1:9", retries=0)
        clients.append(c)
        return c, FakeServer(c, tmp_path / "tasks", **kwargs)

    yield make
    for c in clients:
        c.close()


def zip_of(body):
    """The bundle of a register body: {path: bytes}, after checking its
    form (sorted entries, relative POSIX paths, deflated, no directories)."""
    raw = base64.b64decode(body["bundle"], validate=True)
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        for i in infos:
            assert not i.is_dir()
            assert i.compress_type == zipfile.ZIP_DEFLATED
            assert not i.filename.startswith("/") and ".." not in i.filename.split("/")
            assert "\\" not in i.filename
        return {i.filename: z.read(i) for i in infos}


def globals_in(data):
    """(module, name) pairs a pickle refers to with STACK_GLOBAL/GLOBAL."""
    out, strings = [], []
    for op, arg, _ in pickletools.genops(data):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif op.name == "STACK_GLOBAL":
            out.append((strings[-2], strings[-1]))
        elif op.name == "GLOBAL":
            out.append(tuple(arg.split(" ", 1)))
    return out


def square(x):
    return x * x


# --- what goes into a bundle


def test_module_bundle_and_request_body(tree, fake):
    tree.write("PFX_geo.py", POINT_MODULE)
    geo = tree.load("geo")
    client, srv = fake(run=False)
    h = client.register(geo.scale, modules=[geo])
    (body,) = srv.registrations()
    assert set(body) == {"name", "payload", "bundle"}
    assert body["name"] == "scale"
    files = zip_of(body)
    assert files == {tree.name("geo") + ".py": (tree.root / (tree.name("geo") + ".py")).read_bytes()}
    # The function travels by reference: the pickle is just "geo.scale".
    data = base64.b64decode(body["payload"])
    assert globals_in(data) == [(tree.name("geo"), "scale")]
    assert h.bundled == {tree.name("geo")}
    assert h.bundle.names() == [tree.name("geo") + ".py"]


def test_package_with_subpackages_and_data_files(tree):
    tree.write("PFX_pkg/__init__.py", "from . import sub\n")
    tree.write("PFX_pkg/data.json", '{"answer": 42}\n')
    tree.write("PFX_pkg/sub/__init__.py", "from .x import answer\n")
    tree.write("PFX_pkg/sub/x.py", """
        import json, os

        def answer():
            with open(os.path.join(os.path.dirname(__file__), "..", "data.json")) as f:
                return json.load(f)["answer"]
    """)
    tree.write("PFX_pkg/sub/deeper/leaf.py", "LEAF = 1\n")
    tree.write("PFX_pkg/__pycache__/junk.cpython-311.pyc", binary=b"\0junk")
    tree.write("PFX_pkg/sub/stale.pyc", binary=b"\0junk")
    tree.write("PFX_pkg/sub/stale.pyo", binary=b"\0junk")
    p = tree.name("pkg")
    want = [p + "/__init__.py", p + "/data.json", p + "/sub/__init__.py", p + "/sub/deeper/leaf.py", p + "/sub/x.py"]
    x = importlib.import_module(p + ".sub.x")
    # Every way of naming the package, or a module inside it, bundles the
    # whole top-level package.
    for item in (x, importlib.import_module(p), p, p + ".sub.x", str(tree.root / p), tree.root / p):
        _, b = bundles.prepare(x.answer, modules=[item], auto_bundle=False)
        assert b.names() == want, item
        assert b.modules == {p}
    files = dict(b.files)
    assert files[p + "/data.json"] == b'{"answer": 42}\n'
    # The zip is deterministic: same files, same bytes.
    _, again = bundles.prepare(x.answer, modules=[p], auto_bundle=False)
    assert again.zip == b.zip and again.sha256 == b.sha256


def test_module_given_as_a_path(tree):
    path = tree.write("elsewhere/PFX_tool.py", "def hello():\n    return 'hi'\n")
    for item in (str(path), path):
        _, b = bundles.prepare(square, modules=[item], auto_bundle=False)
        assert b.names() == [tree.name("tool") + ".py"]
        assert dict(b.files)[tree.name("tool") + ".py"] == path.read_bytes()
    with pytest.raises(wasmfaas.BundleError, match="does not exist"):
        bundles.prepare(square, modules=[str(tree.root / "nope.py")])
    notpy = tree.write("elsewhere/readme.txt", "x")
    with pytest.raises(wasmfaas.BundleError, match="neither a .py file nor a package"):
        bundles.prepare(square, modules=[str(notpy)])


def test_installed_pure_python_packages():
    pytest.importorskip("six")
    _, b = bundles.prepare(square, packages=["six"], auto_bundle=False)
    assert b.names() == ["six.py"]
    if importlib.util.find_spec("attr") is not None:
        _, b = bundles.prepare(square, packages=["attr"], auto_bundle=False)
        names = b.names()
        assert "attr/__init__.py" in names and "attr/_make.py" in names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        assert b.modules == {"attr"}
    with pytest.raises(wasmfaas.BundleError, match="import name"):
        bundles.prepare(square, packages=["PyYAML-not-an-import-name"])
    with pytest.raises(wasmfaas.BundleError, match="not installed"):
        bundles.prepare(square, packages=["no_such_package_%s" % uuid.uuid4().hex[:8]])


# --- refusals


def test_package_with_a_c_extension_is_refused(tree, fake):
    tree.write("PFX_fast/__init__.py", "")
    tree.write("PFX_fast/core.py", "X = 1\n")
    tree.write("PFX_fast/x.cpython-311-x86_64-linux-gnu.so", binary=b"\x7fELF not really")
    name = tree.name("fast")
    client, srv = fake(run=False)
    for kwargs in ({"packages": [name]}, {"modules": [name]}, {"modules": [str(tree.root / name)]}):
        with pytest.raises(wasmfaas.BundleError) as info:
            client.register(square, **kwargs)
        msg = str(info.value)
        assert name in msg
        assert name + "/x.cpython-311-x86_64-linux-gnu.so" in msg
        assert "pure-Python" in msg
        assert isinstance(info.value, ValueError) and isinstance(info.value, wasmfaas.WasmFaaSError)
    assert srv.requests == []  # refused before anything was sent


@pytest.mark.parametrize("filename", ["PFX_ext.cpython-311-x86_64-linux-gnu.so", "PFX_ext.abi3.so", "PFX_ext.pyd"])
def test_extension_module_is_refused(tree, filename):
    path = tree.write(filename, binary=b"\x7fELF not really")
    with pytest.raises(wasmfaas.BundleError, match="compiled extension.*pure-Python"):
        bundles.prepare(square, modules=[str(path)])
    if filename.endswith(".so"):
        # Found (not loaded) by its import name too.
        with pytest.raises(wasmfaas.BundleError, match="%s.*compiled extension" % tree.name("ext")):
            bundles.prepare(square, packages=[tree.name("ext")])


def test_real_package_with_extensions_is_refused():
    spec = importlib.util.find_spec("yaml")
    if spec is None or not any(f.endswith(".so") for f in os.listdir(spec.submodule_search_locations[0])):
        pytest.skip("no PyYAML with its C extension here")
    with pytest.raises(wasmfaas.BundleError, match=r"package 'yaml' contains yaml/_yaml\..*\.so.*pure-Python"):
        bundles.prepare(square, packages=["yaml"])
    if importlib.util.find_spec("_cffi_backend") is not None:
        with pytest.raises(wasmfaas.BundleError, match="_cffi_backend.*compiled extension module"):
            bundles.prepare(square, packages=["_cffi_backend"])


def test_standard_library_and_dill_are_refused():
    import dill
    for kwargs in ({"modules": [json]}, {"modules": ["json"]}, {"modules": ["os.path"]}, {"packages": ["json"]},
                   {"modules": [importlib.import_module("email.mime.text")]}):
        with pytest.raises(wasmfaas.BundleError, match="standard library, which the sandbox already has"):
            bundles.prepare(square, **kwargs)
    for kwargs in ({"modules": [dill]}, {"packages": ["dill"]}):
        with pytest.raises(wasmfaas.BundleError, match="'dill' is already in the sandbox"):
            bundles.prepare(square, **kwargs)
    with pytest.raises(wasmfaas.BundleError, match="__main__"):
        bundles.prepare(square, modules=["__main__"])
    with pytest.raises(wasmfaas.BundleError, match="cannot be imported"):
        bundles.prepare(square, modules=["no_such_module_%s" % uuid.uuid4().hex[:8]])
    with pytest.raises(TypeError):
        bundles.prepare(square, modules=[42])


def test_two_things_with_one_name_are_refused(tree):
    tree.write("PFX_dup.py", "A = 1\n")
    other = tree.write("other/PFX_dup.py", "A = 2\n")
    with pytest.raises(wasmfaas.BundleError, match="two different things"):
        bundles.prepare(square, modules=[tree.name("dup"), str(other)])
    # The same thing twice is fine.
    _, b = bundles.prepare(square, modules=[tree.name("dup"), tree.load("dup")], auto_bundle=False)
    assert b.names() == [tree.name("dup") + ".py"]


def test_symlinks_are_skipped_with_a_warning(tree):
    tree.write("PFX_linky/__init__.py", "")
    target = tree.write("outside/secret.txt", "not for the sandbox")
    (tree.root / tree.name("linky") / "alias.txt").symlink_to(target)
    (tree.root / tree.name("linky") / "loop").symlink_to(tree.root / tree.name("linky"))
    with pytest.warns(wasmfaas.BundleWarning, match="alias.txt"):
        _, b = bundles.prepare(square, modules=[tree.name("linky")], auto_bundle=False)
    assert b.names() == [tree.name("linky") + "/__init__.py"]


# --- auto-bundling


def test_auto_bundle_picks_the_functions_module(tree, fake):
    tree.write("PFX_geo.py", POINT_MODULE)
    geo = tree.load("geo")
    client, srv = fake(run=False)
    h = client.register(geo.scale)
    (body,) = srv.registrations()
    assert list(zip_of(body)) == [tree.name("geo") + ".py"]
    assert globals_in(base64.b64decode(body["payload"])) == [(tree.name("geo"), "scale")]
    assert h.bundled == {tree.name("geo")}

    # Turned off: by value, as without bundles.
    h = client.register(geo.scale, auto_bundle=False)
    body = srv.registrations()[-1]
    assert "bundle" not in body and h.bundled == frozenset() and h.bundle is None
    assert (tree.name("geo"), "scale") not in globals_in(base64.b64decode(body["payload"]))


def test_auto_bundle_picks_modules_the_function_refers_to(tree):
    tree.write("PFX_helpers.py", "def twice(x):\n    return 2 * x\n")
    tree.write("PFX_base.py", "def one():\n    return 1\n")
    tree.write("PFX_uses.py", "from PFX_base import one\n\ndef three():\n    return 3 * one()\n")
    helpers, uses = tree.load("helpers"), tree.load("uses")
    twice = helpers.twice

    def via_global(x):  # a function of this test module (by value) using a function of yours
        return twice(x) + uses.three()

    _, b = bundles.prepare(via_global)
    # helpers (a global of the function), uses (a module it uses) and
    # base (which uses imports) are all bundled.
    assert b.names() == sorted(tree.name(n) + ".py" for n in ("helpers", "uses", "base"))
    # This test module itself imports pytest: it is not bundled, and the
    # function travels by value.
    assert not any(n.startswith("test_") for n in b.names())


def test_auto_bundle_falls_back_to_by_value(tree, monkeypatch):
    if importlib.util.find_spec("yaml") is None:
        pytest.skip("yaml is not installed")
    unsafe = {
        "third": "import yaml\n",  # an installed third-party package
        "left_out": "import ssl\n",  # left out of the sandbox
        "client_user": "import wasmfaas\n",  # the client itself
        "lazy": "def g():\n    import numpy_surely_not_here\n",  # imported inside a function
    }
    for short, head in unsafe.items():
        tree.write("PFX_%s.py" % short, head + "\ndef f():\n    return 1\n")
    tree.write("PFX_cext/__init__.py", "def f():\n    return 1\n")
    tree.write("PFX_cext/x.cpython-311-x86_64-linux-gnu.so", binary=b"\x7fELF")
    # A dependency not installed anywhere: written after the module was
    # imported here (it could not be imported otherwise).
    path = tree.write("PFX_broken.py", "def f():\n    return 1\n")
    broken = tree.load("broken")
    path.write_text("import PFX_no_such_dependency\n\ndef f():\n    return 1\n".replace("PFX_", tree.prefix))
    tree.write("PFX_big.py", "DATA = %r\n\ndef f():\n    return 1\n" % ("x" * 5000))
    mods = [tree.load(short) for short in list(unsafe) + ["cext"]] + [broken]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # falling back is silent
        for mod in mods:
            data, b = bundles.prepare(mod.f)
            assert b is None, mod.__name__
            assert (mod.__name__, "f") not in globals_in(data)  # by value
        # The function of a test module (it imports pytest).
        assert bundles.prepare(square)[1] is None
        # Over the auto-bundling cap.
        big = tree.load("big")
        assert bundles.prepare(big.f)[1] is not None
        monkeypatch.setattr(bundles, "AUTO_MAX_BYTES", 1000)
        assert bundles.prepare(big.f)[1] is None
    # Asked for by name, a module that imports a third-party package is
    # bundled (you may bundle that package too); a C extension is refused.
    third = tree.load("third")
    _, b = bundles.prepare(third.f, modules=[third])
    assert b.names() == [tree.name("third") + ".py"]
    with pytest.raises(wasmfaas.BundleError, match="compiled extension"):
        bundles.prepare(mods[-2].f, modules=[mods[-2]])


def test_auto_bundle_ignores_optional_imports(tree):
    tree.write("PFX_opt.py", """
        try:
            import numpy_surely_not_here as np
        except ImportError:
            np = None
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            import also_not_here

        def f():
            return np is None
    """)
    opt = tree.load("opt")
    _, b = bundles.prepare(opt.f)
    assert b.names() == [tree.name("opt") + ".py"]


def test_auto_bundle_skips_a_package_with_symlinks(tree):
    tree.write("PFX_lnk/__init__.py", "def f():\n    return 1\n")
    (tree.root / tree.name("lnk") / "alias.py").symlink_to(tree.root / tree.name("lnk") / "__init__.py")
    lnk = tree.load("lnk")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bundles.prepare(lnk.f)[1] is None


def test_auto_bundle_leaves_out_namespace_packages_and_send_by_value(tree, monkeypatch):
    tree.write("PFX_ns/mod.py", "def f():\n    return 1\n")
    mod = importlib.import_module(tree.name("ns") + ".mod")
    assert bundles.prepare(mod.f)[1] is None
    _, b = bundles.prepare(mod.f, modules=[tree.name("ns")])  # named: fine
    assert b.names() == [tree.name("ns") + "/mod.py"]

    tree.write("PFX_mine.py", "def f():\n    return 2\n")
    mine = tree.load("mine")
    assert bundles.prepare(mine.f)[1] is not None
    monkeypatch.setattr(pickling, "_forced_by_value", set())
    monkeypatch.setattr(pickling, "_decided", {})
    wasmfaas.send_by_value(mine)
    data, b = bundles.prepare(mine.f)
    assert b is None and (mine.__name__, "f") not in globals_in(data)


def test_explicit_modules_bring_their_own_imports(tree):
    tree.write("PFX_low.py", "def low():\n    return 1\n")
    tree.write("PFX_high.py", "import PFX_low\n\ndef high():\n    return PFX_low.low() + 1\n")
    high = tree.load("high")
    _, b = bundles.prepare(square, modules=[high])
    assert b.names() == [tree.name("high") + ".py", tree.name("low") + ".py"]
    _, b = bundles.prepare(square, modules=[high], auto_bundle=False)
    assert b.names() == [tree.name("high") + ".py"]
    # A module that is imported only in the sandbox is not imported here,
    # and the client's by-value decisions do not remember it (it could be
    # an installed package, imported later).
    tree.write("PFX_top.py", "def f():\n    import PFX_lazydep\n    return PFX_lazydep.X\n")
    tree.write("PFX_lazydep.py", "X = 1\n")
    _, b = bundles.prepare(square, modules=[tree.name("top")])
    assert b.names() == [tree.name("lazydep") + ".py", tree.name("top") + ".py"]
    assert tree.name("lazydep") not in sys.modules
    assert tree.name("lazydep") not in pickling._decided


# --- by reference, in the function, the arguments and the results


def test_objects_of_bundled_modules_travel_by_reference(tree, fake):
    tree.write("PFX_geo.py", POINT_MODULE)
    geo = tree.load("geo")
    client, srv = fake()
    h = client.register(geo.scale, modules=[geo])
    p = geo.Point(1.5, 2.0)
    r = h(p, 2).result(timeout=60)
    assert type(r) is geo.Point and r == geo.Point(3.0, 4.0)
    (args_body,) = srv.executions()
    refs = globals_in(base64.b64decode(args_body["payload"]))
    assert (tree.name("geo"), "Point") in refs
    # In the "sandbox" the argument is an instance of the module's own class,
    # and the module is imported from the bundle.
    assert client.register(geo.is_mine, modules=[geo])(p).result(timeout=60) is True
    where = client.register(geo.where, modules=[geo])().result(timeout=60)
    assert os.sep + "bundle" + os.sep in where and str(tree.root) not in where

    # Without a bundle: by value, the argument's class is a copy.
    h = client.register(geo.is_mine, auto_bundle=False)
    assert h(p).result(timeout=60) is False


def test_closures_enums_and_named_tuples_of_bundled_modules(tree, fake):
    tree.write("PFX_kinds.py", """
        import enum
        from collections import namedtuple

        Pair = namedtuple("Pair", "a b")


        class Color(enum.Enum):
            RED = 1
            BLUE = 2


        def make_adder(k):
            def add(x):
                return x + k + OFFSET
            return add


        OFFSET = 100


        def describe(c, p):
            return (c is Color.BLUE, type(p) is Pair, Pair(p.b, p.a), Color.RED)
    """)
    kinds = tree.load("kinds")
    client, srv = fake()
    assert client.register(kinds.make_adder(5), modules=[kinds])(1).result(timeout=60) == 106
    r = client.register(kinds.describe)(kinds.Color.BLUE, kinds.Pair(1, 2)).result(timeout=60)
    assert r == (True, True, kinds.Pair(2, 1), kinds.Color.RED)
    assert type(r[2]) is kinds.Pair and r[3] is kinds.Color.RED


def test_auto_bundle_picks_the_module_of_an_enum(tree, fake):
    tree.write("PFX_colors.py", "import enum\n\n\nclass Color(enum.Enum):\n    RED = 1\n    BLUE = 2\n")
    colors = tree.load("colors")
    favourite = colors.Color.BLUE

    def is_favourite(c):  # by value; the Enum can only travel by reference
        return c is favourite

    client, srv = fake()
    h = client.register(is_favourite)
    assert h.bundled == {colors.__name__}
    assert h(colors.Color.BLUE).result(timeout=60) is True
    assert h(colors.Color.RED).result(timeout=60) is False


def test_main_function_using_a_bundled_module(tree, fake):
    tree.write("PFX_geo.py", POINT_MODULE)
    geo = tree.load("geo")
    client, srv = fake()

    def length_of_scaled(x, y):  # by value; geo by reference
        return geo.scale(geo.Point(x, y), 2).norm()

    h = client.register(length_of_scaled)  # auto-bundled
    assert h.bundled == {geo.__name__}
    assert h(3, 4).result(timeout=60) == 10.0


def test_submit_map_and_executor_use_the_bundle(tree, fake):
    tree.write("PFX_geo.py", POINT_MODULE)
    geo = tree.load("geo")
    client, srv = fake()
    pts = [geo.Point(i, 0) for i in range(3)]
    assert client.submit(geo.scale, pts[1], 3).result(timeout=60) == geo.Point(3, 0)
    out = list(client.map(geo.scale, pts, [2] * 3, timeout=120))
    assert out == [geo.Point(2 * i, 0) for i in range(3)]
    assert all(type(o) is geo.Point for o in out)
    assert len(srv.registrations()) == 1  # registered once for submit and map
    with wasmfaas.Executor(client) as ex:
        assert type(ex.submit(geo.scale, pts[2], 1).result(timeout=60)) is geo.Point
    tree.write("PFX_other.py", "X = 1\n")
    with wasmfaas.Executor(client, modules=[tree.name("other")]) as ex:
        assert list(ex.map(geo.is_mine, pts[:2], timeout=120)) == [True, True]
    body = srv.registrations()[-1]
    assert sorted(zip_of(body)) == [tree.name("geo") + ".py", tree.name("other") + ".py"]


def test_registration_cache_keys_on_the_bundle(tree, fake):
    path = tree.write("PFX_calc.py", "def f(x):\n    return x + 1\n")
    calc = tree.load("calc")
    client, srv = fake(run=False)
    h1 = client._resolve(calc.f)
    assert client._resolve(calc.f) is h1
    assert len(srv.registrations()) == 1
    # Same function, same pickle (a reference), new module text: a new
    # registration.
    path.write_text("def f(x):\n    return x + 2  # changed\n")
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    h2 = client._resolve(calc.f)
    assert h2 is not h1 and h2.function_id != h1.function_id
    assert len(srv.registrations()) == 2
    assert zip_of(srv.registrations()[1])[tree.name("calc") + ".py"].endswith(b"# changed\n")
    # Without the bundle it is yet another registration.
    h3 = client._resolve(calc.f, auto_bundle=False)
    assert h3 not in (h1, h2) and h3.bundle is None
    assert client._resolve(calc.f, auto_bundle=False) is h3


def test_serialize_stays_compatible(tree):
    tree.write("PFX_geo.py", POINT_MODULE)
    geo = tree.load("geo")
    p = geo.Point(1, 2)
    # By value by default, as before.
    text = wasmfaas.serialize(p)
    assert (geo.__name__, "Point") not in globals_in(base64.b64decode(text))
    back = wasmfaas.deserialize(text)
    assert (back.x, back.y) == (1, 2) and type(back) is not geo.Point
    # By reference for a bundled module.
    text = wasmfaas.serialize(p, bundled=[geo.__name__])
    assert (geo.__name__, "Point") in globals_in(base64.b64decode(text))
    assert type(wasmfaas.deserialize(text)) is geo.Point
    assert pickling.dumps([1, "a"]) == pickling.dumps([1, "a"], bundled=[geo.__name__])
    # A module object of a bundled module is a plain reference, not its dict.
    data = pickling.dumps(types.SimpleNamespace(m=geo), bundled=[geo.__name__])
    assert b"math" not in data and b"hypot" not in data


def test_errors_about_bundles_from_the_server(tree, fake):
    tree.write("PFX_geo.py", POINT_MODULE)
    geo = tree.load("geo")
    client, _ = fake(answer=Response(413, {"detail": "bundle: 9999 files, over the limit of 4096"}, ""))
    with pytest.raises(wasmfaas.PayloadTooLarge, match="with its bundle .*over the limit"):
        client.register(geo.scale, modules=[geo])
    client, _ = fake(answer=Response(400, {"detail": "bundle: top-level module \"json\" would shadow"}, ""))
    with pytest.raises(wasmfaas.BadRequest, match="shadow"):
        client.register(geo.scale, modules=[geo])


def test_client_side_caps(tree, monkeypatch):
    tree.write("PFX_many/__init__.py", "")
    for i in range(5):
        tree.write("PFX_many/m%d.py" % i, "X = %d\n" % i)
    monkeypatch.setattr(bundles, "MAX_FILES", 3)
    with pytest.raises(wasmfaas.BundleError, match="more than 3 files"):
        bundles.prepare(square, modules=[tree.name("many")])


def test_left_out_list_matches_the_server():
    """The client's copy of the standard library modules the sandbox leaves
    out is the server's (pickle/modules.go, sandboxLeftOut)."""
    import re
    from wasmfaas import bundles
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    with open(os.path.join(root, "pickle", "modules.go")) as f:
        go = f.read()
    block = re.search(r"var sandboxLeftOut = \[\]string\{(.*?)\}", go, re.S).group(1)
    assert set(re.findall(r'"([^"]+)"', block)) == set(bundles._SANDBOX_LEFT_OUT)
