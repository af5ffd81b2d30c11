"""Payload encoding: ``base64(dill.dumps(obj))``, with functions sent by value.

The sandbox cannot import your modules (unless they are bundled with the
function, see "Bundles" below), so everything of yours that a function needs
must travel inside the pickle. dill already sends functions
and classes defined in ``__main__`` by value, but it sends a function or
class defined at the top of an importable module (``mymod.f``, or a function
in a pytest test module) *by reference*: the pickle holds only the name
``mymod.f``, and the sandbox fails to import ``mymod``.

:class:`ByValuePickler` fixes that without touching your objects: whenever
the pickle is about to contain a function or a plain class that lives in one
of *your* modules (see :func:`is_by_value_module`), it pickles a copy of it
whose ``__module__`` is ``"__main__"``. dill then sends the copy by value,
and because the pickler runs with ``recurse=True`` it also sends the globals
the code refers to (helper functions, classes, constants, and the modules
they use, which travel as references and must exist in the sandbox). Copies
are made per pickle and never replace the originals.

What travels by value: functions (top-level, nested, lambdas, closures),
plain classes (metaclass ``type`` or ``abc.ABCMeta``) and their methods,
from ``__main__`` or from your own modules, and the data they reference.

What travels by reference, and so must exist in the sandbox: modules and
everything from the standard library, dill, and any installed third-party
package (anything under site-packages/dist-packages). The sandbox has only
the standard library and dill, so a function that uses, say, ``numpy``
(or a module-level object whose class comes from a third-party package) is
refused at registration with ``400`` naming the missing module
(:class:`wasmfaas.BadRequest`), unless it is a pure-Python package you
bundle (``packages=[...]``). Classes of your modules with another
metaclass (``Enum``) also travel by reference and are refused the same
way; define them inside the function, or bundle their module.

Force a module to be sent by value (for example your own package installed
in site-packages) with :func:`send_by_value`.

Bundles. A function can be registered with a *bundle* of modules and
pure-Python packages (``client.register(mymod.f, modules=[mymod],
packages=["attr"])``; see :mod:`wasmfaas.bundles`), which the sandbox can
import. Objects of a bundled module travel **by reference**, the way dill
sends anything importable (``mymod.f``, ``mymod.Point``), not copied to
``__main__``: :class:`ByValuePickler` and :func:`dumps` take ``bundled``,
the top-level names of the bundled modules and packages, and leave those
alone (a bundled module object is pickled as a plain reference, not with
its ``__dict__``). The client pickles a function's arguments with its
handle's ``bundled`` (``FunctionHandle.bundled``), so that a ``mymod.Point``
argument is an instance of the class the function's code uses, and a
``mymod.Point`` result unpickles here as your ``mymod.Point``. Classes of
bundled modules with any metaclass (``Enum`` too) work, and so do the
third-party packages you bundle. ``bundled`` defaults to none: :func:`dumps`,
:func:`serialize` and :func:`deserialize` behave as before.

By default the client also bundles the modules of yours that a function
refers to, where that is safe (``auto_bundle``; otherwise they travel by
value as described above). :attr:`ByValuePickler.your_modules` names
the modules of yours a pickle met, which is how the client finds them.
"""
import abc
import base64
import io
import os
import pickle
import site
import sys
import sysconfig
import threading
import types
import warnings

import dill

try:  # what dill pickles a module as: _import_module("name")
    from dill._dill import _import_module
except ImportError:  # pragma: no cover - another dill
    from importlib import import_module as _import_module

from .errors import SerializationError

__all__ = ["serialize", "deserialize", "dumps", "loads", "send_by_value",
           "is_by_value_module", "ByValuePickler"]

#: The Python the sandbox runs; bytecode pickled by another version fails there.
SANDBOX_PYTHON = (3, 11)

_forced_by_value = set()
_decided = {}
_lock = threading.Lock()
_warned_version = False


def send_by_value(module):
    """Always send functions and classes of ``module`` (a module object or a
    dotted name; its submodules too) by value, even if it is installed in
    site-packages, and never auto-bundle it (naming it in
    ``register(modules=...)`` still bundles it). Modules of the standard
    library cannot be forced."""
    name = module if isinstance(module, str) else module.__name__
    with _lock:
        _forced_by_value.add(name)
        _decided.clear()


def _forced(name):
    """True if module ``name`` was named with :func:`send_by_value`."""
    return any(name == m or name.startswith(m + ".") for m in _forced_by_value)


def _install_dirs():
    dirs = set()
    try:
        dirs.update(site.getsitepackages())
    except AttributeError:  # some virtualenvs
        pass
    try:
        dirs.add(site.getusersitepackages())
    except AttributeError:
        pass
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            dirs.add(paths[key])
    return tuple(os.path.realpath(d) + os.sep for d in dirs if d)


_INSTALL_DIRS = _install_dirs()
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"builtins", "__builtin__"}
_SANDBOX_PACKAGES = frozenset({"dill"})


def is_by_value_module(name):
    """True if objects of module ``name`` must be sent by value: it is one of
    your modules (not ``__main__``, which dill handles itself, not the
    standard library, dill, or a package installed in site-packages), or
    was named with :func:`send_by_value`."""
    if not name or name == "__main__":
        return False
    try:
        return _decided[name]
    except KeyError:
        pass
    top = name.partition(".")[0]
    if top in _STDLIB or top in _SANDBOX_PACKAGES:
        decision = False
    elif _forced(name):
        decision = True
    else:
        mod = sys.modules.get(name)
        path = getattr(mod, "__file__", None) if mod is not None else None
        if path:
            path = os.path.realpath(path)
            decision = not path.startswith(_INSTALL_DIRS)
        else:
            # Not imported, or no file (made at run time): nothing the
            # sandbox could import either.
            decision = True
    _decided[name] = decision
    return decision


_COPYABLE_METACLASSES = (type, abc.ABCMeta)
# The C state of an ABC's registry (cls._abc_impl) cannot be pickled;
# ABCMeta makes a new one when the class is rebuilt, so None stands in.
_ABC_DATA = type(getattr(abc.ABC, "_abc_impl", None))


class ByValuePickler(dill.Pickler):
    """A dill pickler (``recurse=True``) that sends your functions and classes
    by value, as described in the module documentation, except those of
    the modules named in ``bundled`` (top-level or dotted names), which
    travel by reference."""

    def __init__(self, file, protocol=None, bundled=()):
        super().__init__(file, protocol=protocol, recurse=True, byref=False)
        self._wasmfaas_copies = {}  # id(original) -> (original, copy)
        self._wasmfaas_names = set()  # names used by the code pickled so far
        #: Top-level names of the modules and packages bundled with the
        #: function: their objects travel by reference.
        self.bundled = frozenset(_top(name) for name in bundled)
        #: Names of your modules (not bundled) whose functions, classes or
        #: module objects this pickle met: copied by value, or, for classes
        #: that cannot be copied (Enum), referenced. Auto-bundling looks at
        #: them.
        self.your_modules = set()

    def _in_bundle(self, module_name):
        return bool(self.bundled) and _top(module_name) in self.bundled

    def save(self, obj, save_persistent_id=True):
        t = type(obj)
        if t is types.FunctionType:
            self._wasmfaas_names |= _code_names(obj.__code__)
            obj = self._by_value(obj)
        elif t in _COPYABLE_METACLASSES and isinstance(obj, type):
            obj = self._by_value(obj)
        elif isinstance(obj, type):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str) and not self._in_bundle(module) and is_by_value_module(module):
                self.your_modules.add(module)  # by reference: only a bundle has it
        elif t is types.ModuleType and id(obj) not in self.memo:
            name = obj.__name__
            if self._in_bundle(name):
                # A plain reference: the sandbox imports it from the bundle.
                # (dill would send the module's whole __dict__ along.)
                self.save_reduce(_import_module, (name,), obj=obj)
                return None
            if is_by_value_module(name):
                self.your_modules.add(name)
                self._save_module_by_value(obj)
                return None
        elif t is _ABC_DATA and t is not type(None):
            obj = None
        return super().save(obj, save_persistent_id)

    def _save_module_by_value(self, module):
        """Send one of your modules as a new module object holding the
        attributes that the code in this pickle may use (``mod.helper``):
        those whose names the pickled code mentions, followed transitively
        through the functions among them. Importing the module by name would
        fail in the sandbox, and all of its attributes (its imports of
        pytest, numpy, ...) would not survive the trip."""
        attrs = vars(module)
        state = {"__name__": module.__name__, "__doc__": attrs.get("__doc__")}
        todo = set(self._wasmfaas_names)
        seen = set()
        while todo:
            name = todo.pop()
            seen.add(name)
            if name.startswith("__") or name not in attrs:
                continue
            value = attrs[name]
            state[name] = value
            if isinstance(value, types.FunctionType):
                todo |= _code_names(value.__code__) - seen
        self.save_reduce(types.ModuleType, (module.__name__,), state, obj=module)

    def _by_value(self, obj):
        module = getattr(obj, "__module__", None)
        if not isinstance(module, str) or self._in_bundle(module) or not is_by_value_module(module):
            return obj
        self.your_modules.add(module)
        hit = self._wasmfaas_copies.get(id(obj))
        if hit is not None:
            return hit[1]
        if isinstance(obj, type):
            copy = _copy_class(obj)
        else:
            copy = _copy_function(obj)
        if copy is None:
            return obj
        # Keep the original alive so its id is not reused during this dump.
        self._wasmfaas_copies[id(obj)] = (obj, copy)
        return copy


def _copy_function(fn):
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__module__ = "__main__"
    copy.__qualname__ = fn.__qualname__
    copy.__doc__ = fn.__doc__
    copy.__kwdefaults__ = fn.__kwdefaults__
    # Annotations are left out: they are not needed to run the function and
    # often name classes or modules the sandbox does not have.
    copy.__annotations__ = {}
    if fn.__dict__:
        copy.__dict__.update(fn.__dict__)
    return copy


def _copy_class(cls):
    ns = dict(cls.__dict__)
    slots = ns.get("__slots__", ())
    if isinstance(slots, str):
        slots = (slots,)
    for name in slots:
        ns.pop(name, None)
    for name in ("__dict__", "__weakref__"):
        ns.pop(name, None)
    ns["__module__"] = "__main__"
    try:
        copy = type(cls)(cls.__name__, cls.__bases__, ns)
    except Exception:
        return None  # leave it by reference; the server names the module
    copy.__qualname__ = cls.__qualname__
    return copy


def _top(module_name):
    return module_name.partition(".")[0]


def _code_names(code):
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _check_version():
    global _warned_version
    if sys.version_info[:2] != SANDBOX_PYTHON and not _warned_version:
        _warned_version = True
        warnings.warn(
            "wasmfaas: this is Python %d.%d but the sandbox runs Python %d.%d; functions pickled "
            "here carry bytecode the sandbox may not run" % (sys.version_info[:2] + SANDBOX_PYTHON),
            RuntimeWarning, stacklevel=4)


class _NotPlain(Exception):
    pass


class _PlainPickler(pickle.Pickler):
    """The C pickler for plain data (numbers, strings, bytes, lists, tuples,
    dicts, sets): it calls reducer_override for anything else, which gives
    up so that dill does the job."""

    def reducer_override(self, obj):
        raise _NotPlain


class _PlainUnpickler(pickle.Unpickler):
    """The C unpickler for pickles that name no global: nothing in them can
    run code. Gives up at the first global, before anything ran."""

    def find_class(self, module, name):
        raise _NotPlain


def dumps(obj, bundled=()):
    """Pickle ``obj``: plain data with the C pickler, anything else with
    :class:`ByValuePickler`. ``bundled`` names the modules and packages
    bundled with the function (top-level names): their objects travel by
    reference. Raise :class:`wasmfaas.SerializationError` if it cannot be
    pickled."""
    return _dump(obj, bundled)[0]


def _dump(obj, bundled=()):
    """``(pickle, ByValuePickler.your_modules)``."""
    if not isinstance(obj, (types.FunctionType, type)):
        buf = io.BytesIO()
        try:
            _PlainPickler(buf, protocol=4).dump(obj)
            return buf.getvalue(), set()
        except _NotPlain:
            pass
        except Exception:
            pass  # let dill try, and report its error
    else:
        _check_version()
    buf = io.BytesIO()
    pickler = ByValuePickler(buf, bundled=bundled)
    try:
        pickler.dump(obj)
    except RecursionError as e:
        raise SerializationError("cannot pickle %s: %s (too deeply nested)" % (_describe(obj), e)) from e
    except Exception as e:
        raise SerializationError("cannot pickle %s: %s: %s" % (_describe(obj), type(e).__name__, e)) from e
    return buf.getvalue(), pickler.your_modules


def loads(data):
    """Unpickle ``data`` (plain data with the C unpickler, anything else
    with dill). This runs code from the pickle: only use it on data from a
    server you trust."""
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except _NotPlain:
        pass
    return dill.loads(data)


def serialize(obj, bundled=()):
    """``base64(dumps(obj, bundled))`` as text, the wire format of every
    payload."""
    return base64.b64encode(dumps(obj, bundled)).decode("ascii")


def deserialize(text):
    """The inverse of :func:`serialize` (newlines in the base64 are fine)."""
    return loads(base64.b64decode(text))


def _describe(obj):
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if name and callable(obj):
        return "%s %s.%s" % (type(obj).__name__, getattr(obj, "__module__", "?"), name)
    return "the %s" % type(obj).__name__
