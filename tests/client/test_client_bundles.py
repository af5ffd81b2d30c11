"""Bundles against the real server (`faas up`, the `server` fixture): your
modules and pure-Python packages registered with a function are importable
in its sandbox, and objects of them travel by reference, in the function,
its arguments and its results.

The modules are written to a temporary directory on sys.path (the
`module_tree` fixture); functions that run remotely are plain Python and
use no `assert` (pytest rewrites asserts in test modules).
"""
import importlib
import importlib.util

import pytest

from client_fixtures import POINT_MODULE, client, module_tree, request_log, server  # noqa: F401  (fixtures; also puts clients/python on sys.path)

import wasmfaas  # noqa: E402
from wasmfaas import bundles  # noqa: E402


@pytest.fixture
def geo(module_tree):
    module_tree.write("PFX_geo.py", POINT_MODULE)
    return module_tree.load("geo")


def _import_and_call(name, attr, *args):
    """Runs in the sandbox: import a module by name and call one of its
    functions."""
    import importlib
    return getattr(importlib.import_module(name), attr)(*args)


# --- your modules


def test_function_of_a_bundled_module(client, geo, module_tree):
    h = client.register(geo.scale, modules=[geo])
    assert h.bundled == {geo.__name__}
    p = geo.Point(1.5, 2.0)
    r = h(p, 2).result(timeout=30)
    assert type(r) is geo.Point
    assert r == geo.Point(3.0, 4.0)
    # The argument is an instance of the class the function's code uses,
    # and the module comes from the bundle, not from this machine.
    assert client.register(geo.is_mine, modules=[geo])(p).result(timeout=30) is True
    where = client.register(geo.where, modules=[geo])().result(timeout=30)
    assert where.endswith(geo.__name__ + ".py") and not where.startswith(str(module_tree.root))


def test_function_importing_a_bundled_module(client, geo):
    h = client.register(_import_and_call, modules=[geo])
    assert h(geo.__name__, "scale", geo.Point(1, 1), 5).result(timeout=30) == geo.Point(5, 5)

    def length_of_scaled(x, y):  # by value; geo by reference
        return geo.scale(geo.Point(x, y), 2).norm()

    assert client.register(length_of_scaled, modules=[geo])(3, 4).result(timeout=30) == 10.0


def test_without_the_bundle_the_module_is_missing(client, geo):
    h = client.register(_import_and_call, auto_bundle=False)
    with pytest.raises(ModuleNotFoundError, match=geo.__name__):
        h(geo.__name__, "where").result(timeout=30)
    # By value (auto-bundling off): works, but the class is a copy.
    h = client.register(geo.is_mine, auto_bundle=False)
    assert h(geo.Point(0, 0)).result(timeout=30) is False


def test_auto_bundling_sends_your_module(client, geo, request_log):
    log = request_log(client)
    h = client.register(geo.scale)  # no modules=: bundled automatically
    assert h.bundled == {geo.__name__}
    r = h(geo.Point(1, 2), 3).result(timeout=30)
    assert type(r) is geo.Point and r == geo.Point(3, 6)
    assert log.count("POST", "/register_function") == 1


def test_closures_and_enums_of_a_bundled_module(client, module_tree):
    module_tree.write("PFX_kinds.py", """
        import enum


        class Color(enum.Enum):
            RED = 1
            BLUE = 2


        def make_adder(k):
            def add(x):
                return x + k + OFFSET
            return add


        OFFSET = 100


        def flip(c):
            return Color.RED if c is Color.BLUE else Color.BLUE
    """)
    kinds = module_tree.load("kinds")
    assert client.register(kinds.make_adder(5), modules=[kinds])(1).result(timeout=30) == 106
    # An Enum cannot travel by value; from a bundle it travels by reference.
    assert client.register(kinds.flip)(kinds.Color.BLUE).result(timeout=30) is kinds.Color.RED


def test_bundled_package_with_subpackages_and_data(client, module_tree):
    module_tree.write("PFX_pkg/__init__.py", "from .sub import answer\n")
    module_tree.write("PFX_pkg/data.json", '{"answer": 42}\n')
    module_tree.write("PFX_pkg/sub/__init__.py", "from .x import answer\n")
    module_tree.write("PFX_pkg/sub/x.py", """
        import json, os
        from ..util.strings import shout


        def answer():
            with open(os.path.join(os.path.dirname(__file__), "..", "data.json")) as f:
                return shout(str(json.load(f)["answer"]))
    """)
    module_tree.write("PFX_pkg/util/__init__.py", "")
    module_tree.write("PFX_pkg/util/strings.py", "def shout(s):\n    return s + '!'\n")
    x = importlib.import_module(module_tree.name("pkg") + ".sub.x")
    h = client.register(x.answer, modules=[x])  # the whole top-level package
    assert h.bundle.names()[0] == module_tree.name("pkg") + "/__init__.py"
    assert h().result(timeout=30) == "42!"
    h = client.register(_import_and_call, modules=[module_tree.name("pkg")])
    assert h(module_tree.name("pkg"), "answer").result(timeout=30) == "42!"


def test_each_function_has_its_own_bundle(client, module_tree):
    one = module_tree.write("one/PFX_ver.py", "VALUE = 1\n\ndef value():\n    return VALUE\n")
    two = module_tree.write("two/PFX_ver.py", "VALUE = 2\n\ndef value():\n    return VALUE\n")
    h1 = client.register(_import_and_call, modules=[str(one)])
    h2 = client.register(_import_and_call, modules=[str(two)])
    name = module_tree.name("ver")
    for _ in range(3):  # warm sandboxes are reused per function, never across
        assert h1(name, "value").result(timeout=30) == 1
        assert h2(name, "value").result(timeout=30) == 2


def test_executor_and_map_with_a_bundle(client, geo, request_log):
    log = request_log(client)
    pts = [geo.Point(i, i) for i in range(4)]
    out = list(client.map(geo.scale, pts, [2] * 4, timeout=60))
    assert out == [geo.Point(2 * i, 2 * i) for i in range(4)]
    assert all(type(o) is geo.Point for o in out)
    with wasmfaas.Executor(client, modules=[geo]) as ex:
        assert list(ex.map(geo.is_mine, pts, timeout=60)) == [True] * 4
        assert type(ex.submit(geo.scale, pts[1], 10).result(timeout=30)) is geo.Point
    assert log.count("POST", "/register_function") == 2


# --- installed packages


def _installed(name):
    if importlib.util.find_spec(name) is None:
        pytest.skip("%s is not installed for this Python" % name)
    return importlib.import_module(name)


def test_installed_single_file_package(client):
    six = _installed("six")

    def use_six(b):
        return six.ensure_str(b), six.__file__

    with pytest.raises(wasmfaas.BadRequest, match="six"):
        client.register(use_six)  # a reference to six, which the sandbox lacks
    text, where = client.register(use_six, packages=["six"])(b"caf\xc3\xa9").result(timeout=30)
    assert text == "caf\u00e9"
    assert where.endswith("six.py") and where != six.__file__


def test_installed_packages(client):
    _installed("attr")
    _installed("idna")

    def use_them(word):
        import attr
        import idna

        @attr.s(frozen=True)
        class Pair:
            a = attr.ib()
            b = attr.ib(default=0)

        return attr.astuple(Pair(word, 2)), idna.encode(word).decode("ascii")

    h = client.register(use_them, packages=["attr", "idna"])
    assert h.bundled == {"attr", "idna"}
    assert h("b\u00fccher.example").result(timeout=30) == (("b\u00fccher.example", 2), "xn--bcher-kva.example")


def test_package_with_c_extensions_is_refused_by_the_client(client, request_log):
    spec = importlib.util.find_spec("yaml")
    if spec is None:
        pytest.skip("PyYAML is not installed")
    log = request_log(client)
    try:
        bundles.prepare(len, packages=["yaml"])
    except wasmfaas.BundleError:
        pass
    else:
        pytest.skip("this PyYAML has no C extension")
    with pytest.raises(wasmfaas.BundleError, match="yaml.*compiled extension.*pure-Python"):
        client.register(lambda: 1, packages=["yaml"])
    assert log.calls == []


# --- what the server refuses


def test_server_refuses_what_the_client_would_not_send(client):
    data = wasmfaas.pickling.dumps(lambda: 1)
    shadow = bundles.Bundle([("json.py", b"X = 1\n")], ["json"])
    with pytest.raises(wasmfaas.BadRequest, match="json"):
        client._register_pickle(data, "shadow", None, shadow)
    ext = bundles.Bundle([("fast/__init__.py", b""), ("fast/x.cpython-311-x86_64-linux-gnu.so", b"\x7fELF")],
                         ["fast"])
    with pytest.raises(wasmfaas.BadRequest, match="compiled extension"):
        client._register_pickle(data, "ext", None, ext)
