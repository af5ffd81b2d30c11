"""pyshim: the guest side of a WasmFaaS sandbox.

The host (runtime/, in Go) boots CPython once, imports this module and takes a
memory snapshot; every sandbox instance is a copy of that snapshot. The host
calls _host_run(request) through the C entry point faas_run and reads the
returned bytes straight out of linear memory: results never travel over the
guest's stdout or stderr, so whatever the function prints (or writes to fd 1
with os.write) cannot corrupt or spoof the channel. Both streams are plain
captured output, capped by the host.

Request (little endian): op u8, flags u8, env_len u16, result_cap u32,
memory_mib u32, fn_len u32, args_len u32, then fn_len bytes of function
pickle (present when flags & NEW_FUNCTION), args_len bytes of the
(args, kwargs) pickle and env_len bytes of a JSON object (with a new
function only): the function's environment, which replaces os.environ
before the function loads. flags & WANT_JSON asks for the result as JSON too.
flags & HAS_BUNDLE says the host mounted the function's bundle (its own
modules and pure-Python packages) read-only at /bundle: it goes first on
sys.path before the function loads.

flags & RESEED (the host starts a task from a function image: an instance
that loaded the function for an earlier task, see runtime/funcimage.go)
draws randomness again, as a fresh instance does at its first request.

op OP_LOAD loads the function (the same request, without arguments) and
answers without running it: the host may keep the instance as it is then
(the function's image) and send the arguments with OP_RUN.

Reply: status u8 (0 completed, 1 failed), kind u8 (KIND_*), loaded u8 (1 when
a function stays loaded for the next request), keep u8 (OP_LOAD: 1 when
the load may be kept as an image: it neither drew from random nor seeded a
generator; the payload is then the address of random's generator),
deserialize/run/serialize seconds as f64, payload_len u32, message_len u32,
traceback_len u32, json_len u32, then the payload (pickled value, or pickled
exception instance for a failure), message and traceback as UTF-8, and the
result as JSON (empty unless asked for and representable).

Portable functions: the host registers source text as a pickle of
_from_source(source, entrypoint, name) and JSON arguments as a pickle of
_json_args(text), so they travel the same path as dill payloads.
"""

import builtins
import dis
import importlib
import io
import json
import opcode as _opcode
import pickle
import struct
import sys
import time
import traceback
import types

import dill
import random  # in the snapshot, so that a load that uses it shows (see _host_load)

REQUEST = struct.Struct("<BBHIIII")
REPLY = struct.Struct("<BBBBdddIIII")

OP_RUN = 1
OP_LOAD = 2
NEW_FUNCTION = 1
WANT_JSON = 2
HAS_BUNDLE = 4
RESEED = 8
BUNDLE_DIR = "/bundle"

KIND_NONE = 0
KIND_USER_EXCEPTION = 1
KIND_USER_EXIT = 2
KIND_BAD_PAYLOAD = 3
KIND_RESULT_TOO_LARGE = 4
KIND_RESULT_UNPICKLABLE = 5
KIND_MEMORY_LIMIT = 6

# Types whose values plain pickle writes exactly as dill would. dill's
# pickler is written in Python, pickle's in C: in the sandbox a list of 100
# ints takes ~870 us through dill and ~50 us checked and pickled here.
_SCALARS = frozenset((type(None), bool, int, float, complex, str, bytes))
_CONTAINERS = frozenset((list, tuple, dict, set, frozenset))


def _is_plain(value):
    """True when value is built only of _SCALARS in _CONTAINERS (exact
    types, not subclasses), so that pickle and dill write the same thing."""
    t = type(value)
    if t in _SCALARS:
        return True
    if t not in _CONTAINERS:
        return False
    stack, seen = [value], set()
    while stack:
        v = stack.pop()
        t = type(v)
        if t in _SCALARS:
            continue
        if t not in _CONTAINERS:
            return False
        if id(v) in seen:  # shared or cyclic: pickle's memo handles it
            continue
        seen.add(id(v))
        if t is dict:
            stack.extend(v.keys())
            stack.extend(v.values())
        else:
            stack.extend(v)
    return True


_fn = None
_restored = True  # True in the snapshot, so every instance sees it once


class _Failure(Exception):
    """A failure pyshim reports itself (not the user's exception)."""

    def __init__(self, kind, exc, message):
        super().__init__(message)
        self.kind = kind
        self.exc = exc
        self.message = message


# Error text travels in the reply and is stored with the task: keep it short.
TEXT_CAP = 64 << 10


def _clip(text):
    if len(text) <= TEXT_CAP:
        return text
    return text[:TEXT_CAP] + f"... [{len(text) - TEXT_CAP} more characters cut]"


def _describe(exc):
    try:
        text = str(exc)
    except BaseException:
        text = "<str() failed>"
    name = type(exc).__qualname__
    return _clip(f"{name}: {text}" if text else name)


def _traceback_text(exc):
    try:
        tb = exc.__traceback__
        # Drop pyshim's own frame so the trace starts at the user's code.
        while tb is not None and tb.tb_frame.f_globals.get("__name__") == __name__:
            tb = tb.tb_next
        return _clip("".join(traceback.format_exception(type(exc), exc, tb)))
    except BaseException:
        return _describe(exc) + "\n"


def _pickle_exception(exc, tb_text, cap=TEXT_CAP * 4):
    """Pickle exc so a client can `raise deserialize(result)`; fall back to a
    RuntimeError carrying the same (clipped) text when exc does not survive a
    round trip or pickles larger than cap."""
    if tb_text:
        try:
            exc.add_note("Traceback in the sandbox:\n" + tb_text.rstrip("\n"))
        except BaseException:
            pass
    try:
        data = dill.dumps(exc)
        if len(data) <= cap:
            dill.loads(data)
            return data
    except BaseException:
        pass
    fallback = RuntimeError(_describe(exc))
    if tb_text:
        fallback.add_note("Traceback in the sandbox:\n" + tb_text.rstrip("\n"))
    try:
        return dill.dumps(fallback)
    except BaseException:
        return pickle.dumps(RuntimeError("the exception could not be pickled"))


def _mount_bundle():
    """Put the function's bundle first on sys.path. An instance only ever
    runs one function (warm reuse is per function), so it never sees two
    bundles. Bytecode is never written: /bundle is read-only."""
    if BUNDLE_DIR not in sys.path:
        sys.path.insert(0, BUNDLE_DIR)
        sys.path_importer_cache.pop(BUNDLE_DIR, None)
    sys.dont_write_bytecode = True


def _fresh_main():
    """Give each function its own __main__, as the client's script had.
    dill resolves a pickled reference to __main__ through the module it saw
    at import time, so point it at the new one too."""
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    dill._dill._main_module = main
    _STAND_INS.clear()
    return main


# Namespaces standing for modules the sandbox does not have, by id: dill
# pickles a function nested in an importable module (a test function's
# helper, a lambda) by value, with "that module's __dict__" as its globals.
_STAND_INS = {}


def _stand_in(module):
    """The namespace standing for module in this function's load."""
    for mod, ns in _STAND_INS.values():
        if mod == module:
            return ns
    ns = {"__name__": module, "__builtins__": builtins, "__doc__": None,
          "__package__": module.rpartition(".")[0], "__loader__": None, "__spec__": None}
    _STAND_INS[id(ns)] = (module, ns)
    return ns


def _stand_in_module(namespace):
    """The module a stand-in namespace stands for, or None."""
    entry = _STAND_INS.get(id(namespace))
    return entry[0] if entry is not None and entry[1] is namespace else None


class _Unpickler(dill.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except ImportError:
            if name != "__dict__":
                raise
        return _stand_in(module)


def _loads(data):
    return _Unpickler(io.BytesIO(data)).load()


_STDLIB = frozenset(sys.stdlib_module_names) | {"dill"}


def _global_names(code, seen=None):
    """Names a code object (and the code nested in it) reads as globals."""
    seen = set() if seen is None else seen
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
            seen.add(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _global_names(const, seen)
    return seen


def _bind_stdlib_globals(fn, namespace):
    """dill (by default) pickles a __main__ function without the globals of
    the client's script, so `import json` at the top of the script is lost.
    A global the function reads that is missing everywhere but names a
    standard library module can only have meant that module: import it."""
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        return
    for name in _global_names(code):
        if name in _STDLIB and name not in namespace and not hasattr(builtins, name):
            try:
                namespace[name] = importlib.import_module(name)
            except Exception:
                pass


def _load_function(data):
    main = _fresh_main()
    try:
        fn = _loads(data)
    except MemoryError:
        raise
    except (SourceError, BytecodeMismatch) as e:
        # Reported as a ValueError: the client has no pyshim to unpickle ours.
        raise _Failure(KIND_BAD_PAYLOAD, ValueError(str(e)), str(e)) from None
    except ModuleNotFoundError as e:
        raise _Failure(KIND_BAD_PAYLOAD, e,
                       f"could not load the function: {_describe(e)}; it was pickled by "
                       "reference to a module the sandbox does not have (send the module along "
                       "as a bundle, define the function in __main__, or register it as "
                       "source text)") from None
    except BaseException as e:
        raise _Failure(KIND_BAD_PAYLOAD, e, f"could not load the function: {_describe(e)}") from None
    if not callable(fn):
        msg = f"the function payload is a pickled {type(fn).__name__}, not a callable"
        raise _Failure(KIND_BAD_PAYLOAD, TypeError(msg), msg)
    # dill binds a __main__ function's globals to the loading interpreter's
    # __main__; bind the function's own name there so recursion works.
    # A function nested in a module the sandbox lacks gets the same in the
    # namespace standing for that module.
    name = getattr(fn, "__name__", None)
    g = getattr(fn, "__globals__", None)
    if isinstance(name, str) and (g is main.__dict__ or _stand_in_module(g) is not None):
        g.setdefault(name, fn)
        _bind_stdlib_globals(fn, g)
    return fn


def _explain_missing_global(e):
    """A NameError raised by code whose globals stand for a module that was
    not sent says so in its message. Reports whether it did."""
    tb = e.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = _stand_in_module(tb.tb_frame.f_globals)
    if module is None or not isinstance(getattr(e, "name", None), str):
        return False
    e.args = (f"name {e.name!r} is not defined: it was a global of module {module!r}, which was not sent "
              "(dill sends a function nested in an importable module without that module). Define it "
              "inside the function, use the wasmfaas Python client (which sends a function with the "
              "globals it reads), send the module along as a bundle (\"modules\" or \"bundle\" at "
              "registration; the client's register(fn, modules=[...])), or register source text "
              "that defines it too",)
    return True


def _load_args(data):
    try:
        obj = _loads(data)
    except MemoryError:
        raise
    except BaseException as e:
        raise _Failure(KIND_BAD_PAYLOAD, e, f"could not load the arguments: {_describe(e)}") from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2
            and isinstance(obj[0], (tuple, list)) and isinstance(obj[1], dict)):
        msg = f"the arguments must be a pickled (args_tuple, kwargs_dict), not a {type(obj).__name__}"
        raise _Failure(KIND_BAD_PAYLOAD, TypeError(msg), msg)
    args, kwargs = obj
    if not all(isinstance(k, str) for k in kwargs):
        msg = "keyword argument names must be strings"
        raise _Failure(KIND_BAD_PAYLOAD, TypeError(msg), msg)
    return args, kwargs


def _to_json(value):
    """The result as JSON text, or b"" when JSON cannot say it exactly
    (the pickle stays the result then). Tuples become arrays."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False,
                          separators=(",", ":")).encode()
    except (TypeError, ValueError, RecursionError):
        return b""


class SourceError(Exception):
    """The source text of a portable function cannot give its entrypoint."""


def _from_source(source, entrypoint, name):
    """Loads a function registered as source text: runs the source as the
    function's __main__ module and returns its entrypoint. The host pickles
    a call to this function, so source and dill functions load alike."""
    main = sys.modules["__main__"]
    try:
        code = compile(source, f"<{name}>", "exec")
    except SyntaxError as e:
        raise SourceError(f"the source does not compile: {e.msg} (line {e.lineno})") from None
    exec(code, main.__dict__)
    fn = main.__dict__.get(entrypoint)
    if fn is None:
        raise SourceError(f"the source defines no {entrypoint!r} (the entrypoint)")
    if not callable(fn):
        raise SourceError(f"the entrypoint {entrypoint!r} is a {type(fn).__name__}, not a callable")
    return fn


def _json_args(text):
    """Arguments sent as JSON: {"args": [...], "kwargs": {...}}."""
    obj = json.loads(text)
    return tuple(obj.get("args") or ()), dict(obj.get("kwargs") or {})


# dill turns a pickled code object back into one with _create_code, and
# happily converts the fields of another Python version's code object: the
# bytecode inside would then run wrongly. Refuse anything but 3.11 bytecode.
_dill_create_code = dill._dill._create_code
_SHAPES = {15: "Python 3.7", 16: "Python 3.8 or 3.9", 17: "Python 3.10", 21: "a Python 3.11 alpha"}


class BytecodeMismatch(Exception):
    """A function pickled by a Python whose bytecode differs from the sandbox's."""

    def __init__(self, who):
        v = sys.version.split()[0]
        super().__init__(
            f"the function was pickled by {who}, whose bytecode differs from the sandbox's "
            f"Python {v}; pickle it with Python 3.11, or register it as source text "
            f'({{"name", "source", "entrypoint"}}) to run it from any Python')


def _valid_311_bytecode(code):
    ops, caches = _opcode.opname, _opcode._inline_cache_entries
    cache_op = _opcode.opmap["CACHE"]
    i, n = 0, len(code)
    if n % 2:
        return False
    while i < n:
        op = code[i]
        if ops[op].startswith("<"):
            return False
        i += 2
        for _ in range(caches[op]):
            if i >= n or code[i] != cache_op:
                return False
            i += 2
    return True


def _checked_create_code(*args):
    count = len(args)
    if count != 19:  # what dill 0.3.6 writes for a 3.11 code object
        raise BytecodeMismatch(_SHAPES.get(count, f"another Python ({count} code fields)"))
    raw = args[7]  # co_code, as the pickling Python had it (after co_lnotab)
    if isinstance(raw, str):
        raw = raw.encode()
    # Check the bytes as sent: CPython rewrites co_code when it builds the
    # code object, which would hide foreign opcodes.
    if not isinstance(raw, bytes) or not _valid_311_bytecode(raw):
        raise BytecodeMismatch("another Python (probably 3.12 or later)")
    return _dill_create_code(*args)


# Installed under dill's own name, so code objects the sandbox pickles (in
# results) still refer to dill._dill._create_code, which clients have.
_checked_create_code.__module__ = "dill._dill"
_checked_create_code.__name__ = _checked_create_code.__qualname__ = "_create_code"
dill._dill._create_code = _checked_create_code


def _reseed():
    """Instances are copies of one snapshot: give each its own randomness."""
    rnd = sys.modules.get("random")
    if rnd is not None:
        rnd.seed()
    tmp = sys.modules.get("tempfile")
    if tmp is not None:
        tmp._name_sequence = None


_seeded = 0  # random.Random.seed calls so far (see _counted_seed)
_random_seed = random.Random.seed


def _counted_seed(self, a=None, version=2):
    """random.Random.seed, counted: a load that seeds a generator (the
    module's, or a random.Random() it makes, which seeds itself) is not
    kept as an image: every task would draw that generator's numbers
    again."""
    global _seeded
    _seeded += 1
    return _random_seed(self, a, version)


_counted_seed.__module__, _counted_seed.__qualname__, _counted_seed.__name__ = "random", "Random.seed", "seed"
_counted_seed.__doc__ = _random_seed.__doc__
random.Random.seed = _counted_seed


def _set_environ(text):
    """Makes os.environ exactly the function's variables (none: empty)."""
    import os
    env = json.loads(text) if text else {}
    os.environ.clear()
    os.environ.update(env)


def _reply(status, kind, times, payload=b"", message="", tb="", js=b"", keep=0):
    m = message.encode("utf-8", "backslashreplace")
    t = tb.encode("utf-8", "backslashreplace")
    loaded = 1 if _fn is not None else 0
    return b"".join((REPLY.pack(status, kind, loaded, keep, times[0], times[1], times[2],
                                len(payload), len(m), len(t), len(js)), payload, m, t, js))


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def _load(body, flags, fn_len, args_len, env_len):
    global _fn
    _fn = None
    _set_environ(bytes(body[fn_len + args_len:fn_len + args_len + env_len]))
    if flags & HAS_BUNDLE:
        _mount_bundle()
    _fn = _load_function(bytes(body[:fn_len]))


def _host_load(request, flags, env_len, memory_mib, fn_len):
    """OP_LOAD: loads the function only. keep says the host may start
    later tasks of it from this state: the load neither drew from random
    nor seeded a generator (a fresh interpreter reseeds before its load, so
    a function that seeds or draws at load is loaded for every task)."""
    global _fn
    times = [0.0, 0.0, 0.0]
    body = memoryview(request)[REQUEST.size:]
    t0 = time.perf_counter()
    try:
        state, seeded = random.getstate(), _seeded
        try:
            _load(body, flags | NEW_FUNCTION, fn_len, 0, env_len)
        finally:
            del body, request
        times[0] = time.perf_counter() - t0
        keep = 1 if random.getstate() == state and _seeded == seeded else 0
        # Where random's generator lies in linear memory (the object
        # random._inst: the C struct's index, then its 624 state words), so
        # that the host can draw a new state for each task from the image
        # itself, without a RESEED request.
        return _reply(0, KIND_NONE, times, struct.pack("<I", id(random._inst)), keep=keep)
    except _Failure as f:
        return _reply(1, f.kind, times, _pickle_exception(f.exc, ""), f.message)
    except MemoryError as e:
        _fn = None
        msg = f"the task ran out of memory (sandbox limit {memory_mib} MiB)"
        return _reply(1, KIND_MEMORY_LIMIT, times, pickle.dumps(MemoryError(msg)), msg, _traceback_text(e))


def _host_run(request):
    global _fn, _restored
    op, flags, env_len, result_cap, memory_mib, fn_len, args_len = REQUEST.unpack_from(request, 0)
    if _restored or flags & RESEED:
        _restored = False
        _reseed()
    if op == OP_LOAD:
        return _host_load(request, flags, env_len, memory_mib, fn_len)
    times = [0.0, 0.0, 0.0]
    if op != OP_RUN:
        return _reply(1, KIND_BAD_PAYLOAD, times, message=f"unknown request op {op}")
    body = memoryview(request)[REQUEST.size:]
    t0 = time.perf_counter()
    try:
        try:
            if flags & NEW_FUNCTION:
                _load(body, flags, fn_len, args_len, env_len)
            if _fn is None:
                raise _Failure(KIND_BAD_PAYLOAD, RuntimeError("no function loaded"),
                               "no function loaded in this sandbox")
            args, kwargs = _load_args(bytes(body[fn_len:fn_len + args_len]))
        finally:
            del body, request
        t1 = time.perf_counter()
        times[0] = t1 - t0
        try:
            value = _fn(*args, **kwargs)
        except SystemExit as e:
            times[1] = time.perf_counter() - t1
            msg = _clip(f"the function called sys.exit({e.code!r})")
            return _reply(1, KIND_USER_EXIT, times,
                          _pickle_exception(RuntimeError(msg), _traceback_text(e)), msg, _traceback_text(e))
        except MemoryError as e:
            raise e
        except BaseException as e:
            times[1] = time.perf_counter() - t1
            if isinstance(e, NameError) and _explain_missing_global(e):
                pass
            elif isinstance(e, NameError) and getattr(_fn, "__module__", None) == "__main__":
                e.add_note("dill sends a function from your script's __main__ without the script's "
                           "other globals (functions, classes, variables): define them inside the "
                           "function, or pickle with dill.settings['recurse'] = True.")
            tb = _traceback_text(e)
            desc = _describe(e)
            return _reply(1, KIND_USER_EXCEPTION, times, _pickle_exception(e, tb), desc, tb)
        finally:
            args = kwargs = None
            _flush()
        t2 = time.perf_counter()
        times[1] = t2 - t1
        js = b""
        try:
            if _is_plain(value):
                data = pickle.dumps(value, protocol=dill.settings["protocol"])
            else:
                data = dill.dumps(value)
            if flags & WANT_JSON:
                js = _to_json(value)
        except MemoryError:
            raise
        except BaseException as e:
            msg = f"the function returned a {type(value).__qualname__} that cannot be pickled: {_describe(e)}"
            raise _Failure(KIND_RESULT_UNPICKLABLE, TypeError(msg), msg) from None
        finally:
            value = None
        times[2] = time.perf_counter() - t2
        if len(data) > result_cap:
            msg = f"the result is {len(data)} bytes pickled, over the limit of {result_cap} bytes"
            raise _Failure(KIND_RESULT_TOO_LARGE, ValueError(msg), msg)
        if len(js) > result_cap:
            js = b""
        return _reply(0, KIND_NONE, times, data, js=js)
    except _Failure as f:
        return _reply(1, f.kind, times, _pickle_exception(f.exc, ""), f.message)
    except MemoryError as e:
        _fn = None
        msg = f"the task ran out of memory (sandbox limit {memory_mib} MiB)"
        tb = _traceback_text(e)
        return _reply(1, KIND_MEMORY_LIMIT, times, pickle.dumps(MemoryError(msg)), msg, tb)


def _warm_up(rounds=12):
    """Runs the request path a few times before the host takes its snapshot,
    then puts pyshim back as it was: every instance starts from the
    snapshot, so what the first request of each would pay (lazy imports in
    dill and pickle, caches filled on first use, CPython's specialisation
    of the bytecode that runs) is paid once here instead of in every fresh
    task. A source function and a dill function both load, with and
    without JSON."""
    global _fn, _restored
    import os
    main_before, dill_main = sys.modules.get("__main__"), dill._dill._main_module
    environ = dict(os.environ)
    ns = _fresh_main().__dict__
    exec("def _warm(a, b=1):\n    return [a, b, None]\n", ns)
    fns = [dill.dumps(ns["_warm"]),
           dill.dumps(_from_source_call("def f(a, b=1):\n    return {'a': a}\n", "f"))]
    args = dill.dumps(((1,), {"b": 2}))
    for i in range(rounds):
        for fn in fns:
            for flags in (NEW_FUNCTION, 0, WANT_JSON):
                request = REQUEST.pack(OP_RUN, flags, 0, 1 << 20, 256,
                                       len(fn) if flags & NEW_FUNCTION else 0, len(args))
                request += (fn if flags & NEW_FUNCTION else b"") + args
                _host_run(request)
            # A fresh task's first load, then a task from its image.
            _host_run(REQUEST.pack(OP_LOAD, 0, 0, 1 << 20, 256, len(fn), 0) + fn)
            _host_run(REQUEST.pack(OP_RUN, RESEED, 0, 1 << 20, 256, 0, len(args)) + args)
    _fn = None
    _restored = True
    _STAND_INS.clear()
    if main_before is not None:
        sys.modules["__main__"] = main_before
    dill._dill._main_module = dill_main
    os.environ.clear()
    os.environ.update(environ)


class _from_source_call:
    """Pickles as the host's source-function payload: a call of
    _from_source (see runtime's pickle of a portable function)."""

    def __init__(self, source, entrypoint):
        self.source, self.entrypoint = source, entrypoint

    def __reduce__(self):
        return (_from_source, (self.source, self.entrypoint, self.entrypoint))


_warm_up()
