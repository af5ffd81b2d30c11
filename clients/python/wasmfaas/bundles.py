"""Bundles: your modules and pure-Python packages, sent with a function.

A function registered with a bundle gets the bundle's modules and packages
importable in the sandbox (mounted read-only, first on ``sys.path``, for that
function only), so objects of those modules travel *by reference* (as
``mymod.f``, ``mymod.Point``) instead of being copied by value: a
``mymod.Point`` you pass as an argument is an instance of the very class the
function's code uses, and a ``mymod.Point`` returned comes back as your
``mymod.Point``.

What goes into a bundle (:func:`prepare`, used by ``Client.register``):

- ``modules=[...]``: module objects, dotted module names (imported with
  :func:`importlib.import_module`), or filesystem paths (a string holding a
  path separator or ending in ``.py``, or an :class:`os.PathLike`) of a
  ``.py`` file or a package directory. A plain module is its source file at
  the root of the bundle (``mymod.py``); a package, or a module inside one,
  brings its whole top-level package directory (``pkg/__init__.py``,
  ``pkg/sub/x.py``, data files such as ``pkg/data.json``).
- ``packages=[...]``: installed packages (site-packages/dist-packages) by
  import name (``"attr"``, ``"yaml"``, not the distribution name
  ``"PyYAML"``), bundled the same way. They are located without being
  imported.
- ``auto_bundle=True`` (the default): the modules of yours (see
  :func:`wasmfaas.pickling.is_by_value_module`: not ``__main__``, not the
  standard library, not site-packages) that the pickle of the function
  meets (the function's own module, and those of the functions, classes
  and modules it uses), with the modules of yours they import, and those
  that explicitly bundled modules import. Only where that is safe: each is
  a ``.py`` file or a regular package (with ``__init__.py``) on disk, none
  holds a compiled extension or a symbolic link, everything they import
  (read from their source; imports under ``try: ... except ImportError``
  or ``if TYPE_CHECKING:`` do not count) is the standard library the
  sandbox has, dill, or another such module of yours (not the client,
  ``wasmfaas``), none was named with
  :func:`wasmfaas.pickling.send_by_value`, and all of it is at most
  :data:`AUTO_MAX_FILES` files and :data:`AUTO_MAX_BYTES` bytes. Where it
  is not, those modules travel by value as they do without bundles,
  silently (the reason is logged at DEBUG level on the ``wasmfaas``
  logger). ``auto_bundle=False`` bundles only what you name.

Never in a bundle: ``__pycache__`` directories and ``*.pyc``/``*.pyo``
files (the sandbox compiles from source), and symbolic links inside a
package directory, which are skipped, never followed, with a
:class:`wasmfaas.BundleWarning` naming them (a module file or package
directory you name yourself may be a link: its target is read).

Refused with :class:`wasmfaas.BundleError` before anything is sent: a
package that contains a compiled extension (``.so``, ``.pyd``, ``.dll``,
``.dylib``, ABI-tagged names such as ``x.cpython-311-x86_64-linux-gnu.so``
too) or a module that is one (the sandbox runs pure-Python code only),
standard-library modules and dill (the sandbox has them already),
``__main__``, modules without a source file, two different things with the
same top-level name, and bundles over :data:`MAX_FILES` files or
:data:`MAX_BYTES` bytes uncompressed (the server's default caps; a server
with other caps answers 413, :class:`wasmfaas.PayloadTooLarge`).

The bundle is what is on disk when the function is registered: edits made
to a module after it was imported are sent, changes made to it in memory are
not. A bundled module is imported in the sandbox, so whatever it does at
import time runs there (by value, only the objects the function uses
travel): if that fails in the sandbox, name what to bundle yourself with
``auto_bundle=False``, or keep one module out with ``send_by_value``.

On the wire it is a zip (deflated, entries sorted, relative POSIX paths, no
directory entries, fixed timestamps, so the same files always make the same
zip), sent as ``"bundle": base64(zip)`` with ``POST /register_function``.
"""
import ast
import base64
import hashlib
import importlib
import importlib.util
import io
import logging
import os
import stat
import sys
import sysconfig
import threading
import types
import warnings
import zipfile
from collections import OrderedDict

from . import pickling as _ser
from .errors import BundleError, BundleWarning

__all__ = ["Bundle", "prepare", "MAX_FILES", "MAX_BYTES", "AUTO_MAX_FILES", "AUTO_MAX_BYTES"]

log = logging.getLogger("wasmfaas")

#: The server's default caps on a bundle (files, uncompressed bytes).
MAX_FILES = 4096
MAX_BYTES = 32 << 20
#: Auto-bundling sends at most this much; beyond it, by value.
AUTO_MAX_FILES = 4096
AUTO_MAX_BYTES = 8 << 20

_EXTENSIONS = (".so", ".pyd", ".dll", ".dylib")
_BYTECODE = (".pyc", ".pyo")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

# Standard-library modules the sandbox's CPython (wasm32-wasi) leaves out,
# as the server lists them (pickle/modules.go): a module of yours that needs
# one is not auto-bundled.
_SANDBOX_LEFT_OUT = frozenset({
    "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "ctypes", "curses", "venv", "turtle",
    "_tkinter", "_ctypes", "_curses", "_curses_panel", "_dbm", "_gdbm", "_ssl", "ssl", "_hashlib",
    "_uuid", "readline", "_multiprocessing", "_posixshmem", "_posixsubprocess", "grp", "pwd",
    "resource", "spwd", "syslog", "nis", "ossaudiodev", "fcntl", "mmap", "termios", "pty", "tty",
    "msvcrt", "winreg", "winsound", "_winapi", "nt", "_overlapped", "_msi", "msilib", "_scproxy",
})
# Never auto-bundled (a module of yours that imports one is sent by value):
# the client itself.
_NEVER_AUTO = frozenset({"wasmfaas"})


class Bundle:
    """The files of a bundle. ``files`` is a tuple of ``(path, bytes)``
    sorted by path (relative, POSIX); ``modules`` the top-level module and
    package names it makes importable; ``zip`` the zip sent to the server,
    ``sha256`` its hex digest; ``nbytes`` the uncompressed size."""

    def __init__(self, files, modules):
        self.files = tuple(sorted(files))
        self.modules = frozenset(modules)
        self.nbytes = sum(len(data) for _, data in self.files)
        self.zip = _make_zip(self.files)
        self.sha256 = hashlib.sha256(self.zip).hexdigest()

    def b64(self):
        """The zip as base64 text (the ``"bundle"`` field)."""
        return base64.b64encode(self.zip).decode("ascii")

    def names(self):
        """The paths in the bundle, sorted."""
        return [name for name, _ in self.files]

    def __repr__(self):
        return "<wasmfaas.Bundle %s: %d files, %d bytes>" % (",".join(sorted(self.modules)), len(self.files),
                                                             self.nbytes)


def _make_zip(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so that the mode below counts
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, data)
    return buf.getvalue()


# --- units: one top-level module (a .py file) or package (a directory)


class _Unit:
    __slots__ = ("name", "path", "is_package", "what")

    def __init__(self, name, path, is_package, what):
        self.name = name  # top-level import name, the bundle's top entry
        self.path = path  # the .py file or the package directory
        self.is_package = is_package
        self.what = what  # "module 'x'" / "package 'x'", for messages

    def key(self):
        return (self.name, os.path.realpath(self.path), self.is_package)


class _Unsafe(Exception):
    """Why a module cannot be bundled (BundleError when you asked for it,
    by value when auto-bundling)."""


def _extension(filename):
    """The compiled-extension suffix of a file name, or '' (as the server
    decides it)."""
    base = os.path.basename(filename).lower()
    for ext in _EXTENSIONS:
        if base.endswith(ext):
            return ext
    if ".so." in base:
        return ".so"
    return ""


def _is_identifier(name):
    return name.isidentifier() and name.isascii()


def _check_name(top, what):
    if top == "__main__":
        raise _Unsafe("%s cannot be bundled: it is your script, whose functions and classes already travel "
                      "by value; move the code into a module to bundle it" % what)
    if top in _ser._STDLIB:
        raise _Unsafe("%s is part of the standard library, which the sandbox already has; it cannot be "
                      "bundled" % what)
    if top in _ser._SANDBOX_PACKAGES:
        raise _Unsafe("%s is already in the sandbox (it comes with every function); it cannot be bundled" % what)
    if not _is_identifier(top):
        raise _Unsafe("%s: %r is not an importable top-level name" % (what, top))


def _in_dirs(path, dirs):
    return os.path.realpath(path).startswith(dirs)


def _stdlib_dirs():
    paths = sysconfig.get_paths()
    return tuple(os.path.realpath(paths[k]) + os.sep for k in ("stdlib", "platstdlib") if paths.get(k))


_STDLIB_DIRS = _stdlib_dirs()
_SITE_DIRS = tuple(d for d in _ser._INSTALL_DIRS if d not in _STDLIB_DIRS)


def _check_not_stdlib(unit):
    """Older Pythons have no sys.stdlib_module_names: the standard library
    is also what lives in its directory (but not in site-packages there)."""
    if _in_dirs(unit.path, _STDLIB_DIRS) and not _in_dirs(unit.path, _SITE_DIRS):
        raise _Unsafe("%s is part of the standard library (%s), which the sandbox already has; it cannot be "
                      "bundled" % (unit.what, unit.path))
    return unit


def _locate(top, what):
    """The unit of top-level module ``top``: from sys.modules if it is
    imported, else found with importlib without importing it."""
    _check_name(top, what)
    mod = sys.modules.get(top)
    if mod is not None:
        locations = getattr(mod, "__path__", None)
        origin = getattr(mod, "__file__", None)
        spec = getattr(mod, "__spec__", None)
        if origin is None and spec is not None and spec.has_location:
            origin = spec.origin
    else:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError) as e:
            raise _Unsafe("%s cannot be found: %s: %s" % (what, type(e).__name__, e)) from None
        if spec is None:
            hint = " (give the import name, e.g. 'yaml' for PyYAML)" if what.startswith("package") else ""
            raise _Unsafe("%s is not installed or importable here%s" % (what, hint))
        locations = spec.submodule_search_locations
        origin = spec.origin if spec.has_location else None
    # A package's file is its __init__ (a namespace package has none); a
    # module that sets __path__ itself (six does, for six.moves) is still
    # a single file.
    is_init = bool(origin) and os.path.basename(origin).startswith("__init__.")
    if locations is not None and (not origin or is_init):
        locs = list(locations)
        if len(locs) != 1:
            raise _Unsafe("%s is a namespace package spread over %d directories (%s); bundle its parts by "
                          "path instead" % (what, len(locs), ", ".join(locs) or "none"))
        if not os.path.isdir(locs[0]):
            raise _Unsafe("%s is not a directory on disk (%s): it cannot be bundled" % (what, locs[0]))
        return _check_not_stdlib(_Unit(top, locs[0], True, what))
    if not origin:
        raise _Unsafe("%s has no file (it is built in, frozen or made at run time): it cannot be bundled" % what)
    ext = _extension(origin)
    if ext:
        raise _Unsafe("%s is a compiled extension module (%s, %s): the sandbox runs pure-Python code only"
                      % (what, origin, ext))
    if not origin.endswith(".py") or not os.path.isfile(origin):
        raise _Unsafe("%s has no Python source file on disk (%s): it cannot be bundled" % (what, origin))
    return _check_not_stdlib(_Unit(top, origin, False, what))


def _unit_from_path(path):
    p = os.path.abspath(os.fspath(path))
    base = os.path.basename(os.path.normpath(p))
    what = "path %r" % os.fspath(path)
    if os.path.isdir(p):
        name = base
        unit = _Unit(name, p, True, "package %r (%s)" % (name, os.fspath(path)))
    elif os.path.isfile(p):
        ext = _extension(p)
        if ext:
            raise _Unsafe("%s is a compiled extension (%s): the sandbox runs pure-Python code only" % (what, ext))
        if not base.endswith(".py"):
            raise _Unsafe("%s is neither a .py file nor a package directory" % what)
        name = base[:-3]
        unit = _Unit(name, p, False, "module %r (%s)" % (name, os.fspath(path)))
    else:
        raise _Unsafe("%s does not exist" % what)
    _check_name(name, unit.what)
    return _check_not_stdlib(unit)


def _looks_like_path(text):
    seps = [os.sep] + ([os.altsep] if os.altsep else [])
    return text.endswith(".py") or text in (".", "..") or any(s in text for s in seps) or "/" in text


def _module_unit(item):
    if isinstance(item, types.ModuleType):
        return _locate(_ser._top(item.__name__), "module %r" % item.__name__)
    if isinstance(item, os.PathLike) or (isinstance(item, str) and _looks_like_path(item)):
        return _unit_from_path(item)
    if isinstance(item, str):
        if not all(_is_identifier(part) for part in item.split(".")):
            raise _Unsafe("module %r: not a dotted module name (a path must hold a path separator or end in "
                          ".py)" % item)
        _check_name(_ser._top(item), "module %r" % item)
        try:
            mod = importlib.import_module(item)
        except Exception as e:
            raise _Unsafe("module %r cannot be imported to bundle it: %s: %s" % (item, type(e).__name__, e)) from e
        return _locate(_ser._top(mod.__name__), "module %r" % item)
    raise TypeError("modules= takes module objects, dotted module names or paths, not %s" % type(item).__name__)


def _package_unit(item):
    if isinstance(item, types.ModuleType):
        item = item.__name__
    if not isinstance(item, str):
        raise TypeError("packages= takes import names (or module objects), not %s" % type(item).__name__)
    if not all(_is_identifier(part) for part in item.split(".")):
        raise _Unsafe("package %r: not an import name (packages= takes import names such as 'yaml'; for a "
                      "path use modules=)" % item)
    top = _ser._top(item)
    return _locate(top, "package %r" % top)


# --- scanning a unit's files


class _Entry:
    __slots__ = ("arcname", "path", "size", "mtime")

    def __init__(self, arcname, path, st):
        self.arcname = arcname
        self.path = path
        self.size = st.st_size
        self.mtime = st.st_mtime_ns


class _Scan:
    __slots__ = ("unit", "entries", "links")

    def __init__(self, unit, entries, links):
        self.unit = unit
        self.entries = entries
        self.links = links

    @property
    def nbytes(self):
        return sum(e.size for e in self.entries)


class _TooLarge(_Unsafe):
    pass


def _scan(unit, max_files, max_bytes):
    """The files of a unit, or _Unsafe (an extension inside, too large)."""
    if not unit.is_package:
        st = os.stat(unit.path)
        return _Scan(unit, [_Entry(unit.name + ".py", unit.path, st)], [])
    entries, links = [], []
    total = 0

    def failed(err):
        raise _Unsafe("%s: cannot read %s: %s" % (unit.what, err.filename, err.strerror or err))

    for root, dirs, files in os.walk(unit.path, onerror=failed, followlinks=False):
        rel = os.path.relpath(root, unit.path)
        prefix = unit.name if rel == "." else unit.name + "/" + rel.replace(os.sep, "/")
        keep = []
        for d in sorted(dirs):
            if d == "__pycache__":
                continue
            if os.path.islink(os.path.join(root, d)):
                links.append(prefix + "/" + d + "/")
                continue
            keep.append(d)
        dirs[:] = keep
        for f in sorted(files):
            if f.endswith(_BYTECODE):
                continue
            full = os.path.join(root, f)
            arc = prefix + "/" + f
            try:
                st = os.lstat(full)
            except OSError as e:
                raise _Unsafe("%s: cannot read %s: %s" % (unit.what, full, e.strerror or e)) from None
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
                links.append(arc)
                continue
            ext = _extension(f)
            if ext:
                raise _Unsafe("%s contains %s, a compiled extension (%s, C code): the sandbox runs pure-Python "
                              "code only, so it cannot be bundled" % (unit.what, arc, ext))
            try:
                arc.encode("utf-8")
            except UnicodeEncodeError:
                raise _Unsafe("%s: the file name %r is not UTF-8" % (unit.what, arc)) from None
            entries.append(_Entry(arc, full, st))
            total += st.st_size
            if len(entries) > max_files:
                raise _TooLarge("%s has more than %d files, over the limit on a bundle" % (unit.what, max_files))
            if total > max_bytes:
                raise _TooLarge("%s is over %d bytes, the limit on a bundle" % (unit.what, max_bytes))
    if not entries:
        raise _Unsafe("%s holds no files to bundle" % unit.what)
    return _Scan(unit, entries, links)


# --- what a unit imports (for auto-bundling)

_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def _catches_import_error(node):
    if node is None:
        return True
    if isinstance(node, ast.Tuple):
        return any(_catches_import_error(elt) for elt in node.elts)
    if isinstance(node, ast.Name):
        return node.id in _IMPORT_ERRORS
    if isinstance(node, ast.Attribute):
        return node.attr in _IMPORT_ERRORS
    return False


def _is_type_checking(test):
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _ImportFinder(ast.NodeVisitor):
    """The top-level names of the absolute imports a module must make:
    not those under ``try: ... except ImportError`` (optional) nor under
    ``if TYPE_CHECKING:``."""

    def __init__(self):
        self.required = set()

    def visit_Import(self, node):
        for alias in node.names:
            self.required.add(_ser._top(alias.name))

    def visit_ImportFrom(self, node):
        if node.level == 0 and node.module:
            self.required.add(_ser._top(node.module))

    def visit_Try(self, node):
        if any(_catches_import_error(h.type) for h in node.handlers):
            tried = []  # optional: the body, and the else that runs if it worked
        else:
            tried = node.body + node.orelse
        for child in tried + node.handlers + node.finalbody:
            self.visit(child)

    visit_TryStar = visit_Try

    def visit_If(self, node):
        if _is_type_checking(node.test):
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)


_cache_lock = threading.Lock()
_imports_cache = OrderedDict()  # (path, mtime, size) -> frozenset of names, or an _Unsafe
_bundle_cache = OrderedDict()  # signature of the files -> Bundle
_IMPORTS_CACHE_SIZE = 4096
_BUNDLE_CACHE_SIZE = 16


def _cache_get(cache, key):
    with _cache_lock:
        value = cache.get(key)
        if value is not None:
            cache.move_to_end(key)
        return value


def _cache_put(cache, key, value, size):
    with _cache_lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > size:
            cache.popitem(last=False)


def _imports_of(entry):
    key = (entry.path, entry.mtime, entry.size)
    hit = _cache_get(_imports_cache, key)
    if hit is None:
        try:
            with open(entry.path, "rb") as f:
                tree = ast.parse(f.read(), entry.path)
            finder = _ImportFinder()
            finder.visit(tree)
            hit = frozenset(finder.required)
        except (SyntaxError, ValueError, OSError) as e:
            hit = _Unsafe("%s cannot be read as Python source: %s: %s" % (entry.arcname, type(e).__name__, e))
        _cache_put(_imports_cache, key, hit, _IMPORTS_CACHE_SIZE)
    if isinstance(hit, _Unsafe):
        raise hit
    return hit


def _required_imports(scan):
    names = set()
    for entry in scan.entries:
        if entry.arcname.endswith(".py"):
            names |= _imports_of(entry)
    names.discard(scan.unit.name)
    return names


# --- auto-bundling


def _auto_unit(top):
    """The unit of a module of yours that auto-bundling may take, or
    _Unsafe."""
    what = "module %r" % top
    if top in _NEVER_AUTO:
        raise _Unsafe("%s is the client itself" % what)
    unit = _locate(top, what)
    if _in_dirs(unit.path, _ser._INSTALL_DIRS):
        raise _Unsafe("%s is installed in site-packages (bundle it with packages=[%r])" % (what, top))
    if unit.is_package and not os.path.isfile(os.path.join(unit.path, "__init__.py")):
        # Often a directory that happens to be on sys.path (a checkout's
        # root, tests/): name it yourself to bundle it.
        raise _Unsafe("%s is a namespace package (no __init__.py)" % what)
    return unit


def _auto_closure(candidates, taken, budget_files, budget_bytes, rejected):
    """Scans of the modules of yours auto-bundling adds for ``candidates``
    (top-level names), given the names ``taken`` already (explicit or
    accepted): each candidate with what it imports of yours, or nothing
    for a candidate where that is not safe (added to ``rejected``)."""
    accepted = {}
    used_files, used_bytes = 0, 0
    for cand in sorted(candidates):
        if cand in taken or cand in accepted or cand in rejected:
            continue
        group = {}
        todo = [cand]
        try:
            while todo:
                top = todo.pop()
                if top in taken or top in accepted or top in group:
                    continue
                scan = _scan(_auto_unit(top), budget_files, budget_bytes)
                if scan.links:
                    raise _Unsafe("%s holds symbolic links (%s)" % (scan.unit.what, ", ".join(scan.links[:3])))
                group[top] = scan
                for name in sorted(_required_imports(scan)):
                    if name in taken or name in accepted or name in group:
                        continue
                    if name in _SANDBOX_LEFT_OUT:
                        raise _Unsafe("%s imports %s, which the sandbox leaves out" % (scan.unit.what, name))
                    if name in _ser._STDLIB or name in _ser._SANDBOX_PACKAGES:
                        continue
                    if _ser._forced(name):
                        raise _Unsafe("%s imports %s, which you asked to send by value"
                                      % (scan.unit.what, name))
                    todo.append(name)  # yours, or _auto_unit says why not
            files = sum(len(s.entries) for s in group.values())
            nbytes = sum(s.nbytes for s in group.values())
            if used_files + files > budget_files or used_bytes + nbytes > budget_bytes:
                raise _Unsafe("%d files, %d bytes: over the auto-bundling limit of %d files, %d bytes"
                              % (used_files + files, used_bytes + nbytes, budget_files, budget_bytes))
        except (_Unsafe, OSError) as e:
            log.debug("wasmfaas: not auto-bundling module %r: %s", cand, e)
            rejected.add(cand)
            continue
        accepted.update(group)
        used_files += files
        used_bytes += nbytes
    return accepted


def _module_of(fn):
    module = getattr(fn, "__module__", None)
    if not isinstance(module, str):
        module = getattr(type(fn), "__module__", None)
    return module if isinstance(module, str) else None


# --- putting it together


def _as_list(items, what):
    if items is None:
        return []
    if isinstance(items, (str, bytes, types.ModuleType, os.PathLike)):
        return [items]
    try:
        return list(items)
    except TypeError:
        raise TypeError("%s= takes a list, not %s" % (what, type(items).__name__)) from None


def _explicit_units(modules, packages):
    units = {}
    for kind, items, make in (("modules", modules, _module_unit), ("packages", packages, _package_unit)):
        for item in _as_list(items, kind):
            try:
                unit = make(item)
            except _Unsafe as e:
                raise BundleError(str(e)) from None
            prev = units.get(unit.name)
            if prev is not None and prev.key() != unit.key():
                raise BundleError("two different things would be bundled as %r: %s (%s) and %s (%s)"
                                  % (unit.name, prev.what, prev.path, unit.what, unit.path))
            units[unit.name] = unit
    return units


def _bundle_of(scans):
    """The Bundle of these scans (cached on the files' paths, sizes and
    modification times)."""
    entries = sorted((e for s in scans for e in s.entries), key=lambda e: e.arcname)
    signature = tuple((e.arcname, e.path, e.size, e.mtime) for e in entries)
    hit = _cache_get(_bundle_cache, signature)
    if hit is not None:
        return hit
    files = []
    for e in entries:
        try:
            with open(e.path, "rb") as f:
                files.append((e.arcname, f.read()))
        except OSError as err:
            raise BundleError("cannot read %s (%s) to bundle it: %s" % (e.path, e.arcname, err)) from None
    bundle = Bundle(files, [s.unit.name for s in scans])
    _cache_put(_bundle_cache, signature, bundle, _BUNDLE_CACHE_SIZE)
    return bundle


def prepare(fn, modules=None, packages=None, auto_bundle=True):
    """Pickle ``fn`` for registration with its bundle: returns ``(pickle
    bytes, Bundle or None)``. ``modules``, ``packages`` and ``auto_bundle``
    are those of ``Client.register`` (see the module documentation).
    Raises :class:`wasmfaas.BundleError` for what cannot be bundled and
    :class:`wasmfaas.SerializationError` for what cannot be pickled."""
    units = _explicit_units(modules, packages)
    scans = {}
    for name, unit in units.items():
        try:
            scans[name] = _scan(unit, MAX_FILES, MAX_BYTES)
        except _Unsafe as e:
            raise BundleError(str(e)) from None
        except OSError as e:
            raise BundleError("%s cannot be read: %s" % (unit.what, e)) from None
        if scans[name].links:
            warnings.warn("wasmfaas: %s: symbolic links are not bundled, skipped: %s"
                          % (unit.what, ", ".join(scans[name].links)), BundleWarning, stacklevel=3)
    files = sum(len(s.entries) for s in scans.values())
    nbytes = sum(s.nbytes for s in scans.values())
    if files > MAX_FILES or nbytes > MAX_BYTES:
        raise BundleError("the bundle (%s) has %d files, %d bytes: over the server's limit of %d files, %d bytes"
                          % (", ".join(sorted(scans)), files, nbytes, MAX_FILES, MAX_BYTES))
    budget = [min(AUTO_MAX_FILES, MAX_FILES - files), min(AUTO_MAX_BYTES, MAX_BYTES - nbytes)]
    rejected = set()

    def auto(candidates):
        """Add the safe ones of candidates (and what they import of yours)
        to scans; True if any was added."""
        candidates = {c for c in candidates
                      if c not in scans and c != "__main__" and c not in _ser._STDLIB
                      and c not in _ser._SANDBOX_PACKAGES and not _ser._forced(c)}
        if not candidates:
            return False
        added = _auto_closure(candidates, set(scans), budget[0], budget[1], rejected)
        if not added:
            return False
        log.debug("wasmfaas: auto-bundling %s", ", ".join(sorted(added)))
        scans.update(added)
        budget[0] -= sum(len(s.entries) for s in added.values())
        budget[1] -= sum(s.nbytes for s in added.values())
        return True

    if auto_bundle:
        # First the function's own module and what the bundled modules
        # import (not asked of is_by_value_module, which would remember a
        # module not imported yet as yours: _auto_unit tells yours from
        # installed ones by where they are).
        first = set()
        module = _module_of(fn)
        if module and _ser.is_by_value_module(module):
            first.add(_ser._top(module))
        for scan in list(scans.values()):
            try:
                first |= _required_imports(scan)
            except _Unsafe:
                pass
        auto(first)
    data, copied = _ser._dump(fn, scans)
    # Then the modules of yours the pickle copied by value (functions,
    # classes and modules the function uses): bundled, they travel by
    # reference instead.
    if auto_bundle and auto({_ser._top(m) for m in copied if _ser.is_by_value_module(m)}):
        data, _ = _ser._dump(fn, scans)
    if not scans:
        return data, None
    return data, _bundle_of(list(scans.values()))
