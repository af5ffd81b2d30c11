"""Hostile pickles aimed at the HOST, and malformed pickles.

The API checks payloads structurally (pickle/pickle.go) and never unpickles;
only a sandbox does. So a payload whose __reduce__ would run os.system,
subprocess or eval "in whatever unpickles it" either gets a 400 or becomes
a task that fails inside the sandbox -- and the marker file its command
would create on the host never appears (Harness checks the marker after
every case; it lives in the host canary directory, whose path the sandbox
cannot reach). Results are never unpickled by the server either: a
function may return a pickle that runs code in the *client* that loads it
(documented, not a host effect; these tests never load such results).
"""
import base64
import pickle
import pickletools

import pytest

from adv_harness import Cases, adv, b64, deserialize, harness, serialize  # noqa: F401


def f(src):
    return src.strip("\n") + "\n"


def binunicode(s):
    b = s.encode()
    return b"X" + len(b).to_bytes(4, "little") + b


def reduce_pickle(module, name, *args):
    """Protocol 2: module.name(*args) by REDUCE, hand-made (no unpickler ran)."""
    body = b"".join(binunicode(a) for a in args)
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n(" + body + b"tR."


def global_pickle(module, name):
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n."


def args_of(*items):
    """serialize(((items...), {})) with raw pickle items spliced in."""
    inner = b"".join(i[2:-1] if i.startswith(b"\x80\x02") else i for i in items)
    return b"\x80\x02(" + inner + b"t}\x86."


CASES = Cases({
    "identity": f("""
def identity(*args, **kwargs):
    return 'ran'
"""),
    "evil_result": f("""
def evil_result(cmd):
    import os
    # The sandbox's os has no system(); make one that pickles as os.system,
    # so the result is a pickle that would run `cmd` wherever it is loaded.
    def system(c):
        return 0
    system.__module__, system.__qualname__ = 'os', 'system'
    os.system = system
    class Evil:
        def __reduce__(self):
            return (os.system, (cmd,))
    return Evil()
"""),
    "evil_exception": f("""
def evil_exception(cmd):
    import builtins
    class Evil(Exception):
        def __reduce__(self):
            return (builtins.eval, ("__import__('os').system(" + repr(cmd) + ")",))
    raise Evil('boom')
"""),
})


def marker_cmd(adv):
    return f"touch {adv.host.marker}"


# --- as the function

@pytest.mark.parametrize("module,name,kind", [
    ("os", "system", "BAD_PAYLOAD"),              # AttributeError: WASI os has no system
    ("posix", "system", "BAD_PAYLOAD"),
    ("subprocess", "getoutput", "BAD_PAYLOAD"),   # OSError: wasi does not support processes
    ("subprocess", "Popen", "BAD_PAYLOAD"),
    ("builtins", "eval", "BAD_PAYLOAD"),          # eval("__import__('os').system(...)") fails inside
    ("builtins", "exec", "BAD_PAYLOAD"),          # exec("open(<host marker>, 'w')") fails inside
])
def test_reduce_payload_as_function(adv, module, name, kind):
    """Registration: 200 (the structural check cannot tell a REDUCE from a
    legitimate callable object; document). Execution: FAILED BAD_PAYLOAD,
    the command failed inside the sandbox; no marker on the host."""
    cmd = marker_cmd(adv)
    if name == "eval":
        arg = f"__import__('os').system({cmd!r})"
    elif name == "exec":
        arg = f"open({adv.host.marker!r}, 'w').write('pwned')"
    else:
        arg = cmd
    payload = b64(reduce_pickle(module, name, arg))
    body = adv.attack(payload, kind=kind, load=False)
    assert "could not load the function" in body["error"]["message"]


@pytest.mark.parametrize("module,name,status,run_kind", [
    ("os", "system", 200, "BAD_PAYLOAD"),           # no os.system in WASI: fails on load
    ("subprocess", "Popen", 200, "USER_EXCEPTION"),  # loads; calling it: OSError
    ("builtins", "eval", 200, "COMPLETED"),          # eval runs -- inside the sandbox
    ("nt", "system", 400, None),                     # left-out stdlib: refused at once
    ("ctypes", "CDLL", 400, None),
    ("_posixsubprocess", "fork_exec", 400, None),
    ("not_a_module", "run", 400, None),
])
def test_global_reference_as_function(adv, module, name, status, run_kind):
    """A bare GLOBAL to a dangerous callable as the function. Documented
    behaviour: registration answers 200 for a sandbox stdlib module (a
    reference to a module attribute may be a callable) and 400 with a JSON
    detail for a module the sandbox lacks. Running it happens inside the
    sandbox only: os.system does not exist there, Popen cannot start a
    process, eval evaluates in the sandbox. No host effect either way."""
    payload = b64(global_pickle(module, name))
    r = adv.attacker.post("/register_function", {"name": name, "payload": payload})
    assert r.status_code == status, r.text
    if status != 200:
        assert "detail" in r.json()
        adv.check_unaffected()
        return
    cmd = marker_cmd(adv)
    arg = f"__import__('os').listdir('/tmp')" if name == "eval" else ["/bin/sh", "-c", cmd] if name == "Popen" else cmd
    body = adv.attack(payload, args=(arg,), load=False)
    if run_kind == "COMPLETED":
        assert body["status"] == "COMPLETED" and deserialize(body["result"]) == []
    else:
        assert body["status"] == "FAILED" and body["error"]["kind"] == run_kind, body["error"]


# --- as the arguments

@pytest.mark.parametrize("module,name", [("os", "system"), ("subprocess", "getoutput"), ("builtins", "exec")])
def test_reduce_payload_in_arguments(adv, module, name):
    """((evil,), {}) where evil's REDUCE would run the marker command:
    accepted (200; it is an (args, kwargs) pair), then FAILED BAD_PAYLOAD
    "could not load the arguments"; no marker on the host."""
    arg = f"open({adv.host.marker!r}, 'w').write('pwned')" if name == "exec" else marker_cmd(adv)
    evil = reduce_pickle(module, name, arg)
    args = args_of(evil)
    assert list(pickletools.genops(args))[-1][0].name == "STOP"  # well-formed
    body = adv.attack(CASES.fn("identity"), args_payload=b64(args), kind="BAD_PAYLOAD", load=False)
    assert "could not load the arguments" in body["error"]["message"]


def test_top_level_reduce_as_arguments(adv):
    """A bare os.system(...) REDUCE as the arguments: 400 (not an
    (args, kwargs) pair), JSON detail; nothing runs."""
    fid = adv.attacker.register(CASES.fn("identity"), name="identity")
    payload = b64(reduce_pickle("os", "system", marker_cmd(adv)))
    r = adv.attacker.post("/execute_function", {"function_id": fid, "payload": payload})
    assert r.status_code == 400 and "args_tuple" in r.json()["detail"], r.text
    adv.check_unaffected()


# --- as the result

def test_hostile_result_is_never_unpickled_by_the_server(adv):
    """COMPLETED: the function returns an object whose pickle is
    os.system('touch <marker>'). The server stores and serves it as
    opaque base64 (fetched repeatedly through /status and /result); the
    marker never appears on the host. Loading such a result in a client
    WOULD run it: a client must trust the functions whose results it loads."""
    body = adv.attack(CASES.fn("evil_result"), args=(marker_cmd(adv),), expect="COMPLETED", load=False)
    raw = base64.b64decode(body["result"])
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(raw)]
    strings = [a for _, a in ops if isinstance(a, str)]
    assert "os" in strings and "system" in strings and marker_cmd(adv) in strings, ops
    for _ in range(3):
        assert adv.attacker.get(f"/result/{body['task_id']}").status_code == 200
        assert adv.attacker.get(f"/status/{body['task_id']}").status_code == 200
    adv.check_unaffected()


def test_hostile_exception_result(adv):
    """A raised exception whose __reduce__ is eval("os.system(...)"): pyshim
    round-trips it inside the sandbox (where it fails harmlessly) and sends
    FAILED USER_EXCEPTION; the server never loads it; no marker."""
    body = adv.attack(CASES.fn("evil_exception"), args=(marker_cmd(adv),), kind="USER_EXCEPTION", load=False)
    assert "boom" in body["error"]["message"]


# --- malformed pickles: structural check, 400 with JSON, never 500

def _good_function_pickle():
    return base64.b64decode(CASES.fn("identity"))


def _good_args_pickle():
    return base64.b64decode(serialize(((1, "two", [3.0]), {"k": None})))


@pytest.mark.parametrize("route", ["register", "execute"])
def test_truncated_at_every_few_bytes(adv, route):
    """Every strict prefix of a valid pickle (every 7th byte, and the last
    10): 400 'payload is not a valid pickle', JSON detail, never 500."""
    fid = adv.attacker.register(CASES.fn("identity"), name="identity")
    full = _good_function_pickle() if route == "register" else _good_args_pickle()
    cuts = sorted(set(range(0, len(full), 7)) | set(range(max(0, len(full) - 10), len(full))))
    for n in cuts:
        p = b64(full[:n])
        if route == "register":
            r = adv.attacker.post("/register_function", {"name": "t", "payload": p})
        else:
            r = adv.attacker.post("/execute_function", {"function_id": fid, "payload": p})
        assert r.status_code == 400, (n, r.status_code, r.text)
        assert "detail" in r.json(), (n, r.text)
    adv.check_unaffected()


HUGE = [
    ("binunicode_4gib", b"\x80\x04X\xff\xff\xff\xff" + b"a" * 100 + b"."),
    ("binbytes8_2e62", b"\x80\x04\x8e" + (1 << 62).to_bytes(8, "little") + b"a" * 10 + b"."),
    ("binunicode8_2e63", b"\x80\x04\x8d" + ((1 << 64) - 1).to_bytes(8, "little") + b"a."),
    ("bytearray8_huge", b"\x80\x05\x96" + (1 << 40).to_bytes(8, "little") + b"."),
    ("frame_2e62", b"\x80\x04\x95" + (1 << 62).to_bytes(8, "little") + b"N."),
    ("long4_negative", b"\x80\x04\x8b" + (1 << 31).to_bytes(4, "little") + b"."),
    ("long4_2gib", b"\x80\x04\x8b" + ((1 << 31) - 1).to_bytes(4, "little") + b"\x01" * 16 + b"."),
    ("long_binget_2e31", b"\x80\x04Nj\xff\xff\xff\x7f."),
    ("get_huge_text", b"\x80\x02Ng99999999999999999999999\n."),
    ("mark_flood", b"\x80\x04" + b"(" * 200000 + b"N."),
    ("nested_tuples", b"\x80\x04N" + b"\x85" * 20000 + b"."),
    ("proto_99", b"\x80\x63N."),
    ("empty", b""),
    ("stop_only", b"."),
    ("garbage", b"\xde\xad\xbe\xef" * 8),
    ("unknown_opcode", b"\x80\x04\xff."),
    ("persistent_id", b"\x80\x02Pfoo\n."),
    ("ext_code", b"\x80\x02\x82\x01."),
    ("trailing_bytes", b"\x80\x04N.garbage"),
]


@pytest.mark.parametrize("name,data", HUGE, ids=[h[0] for h in HUGE])
def test_malformed_pickle_as_function(adv, name, data):
    """Registration with a malformed or hostile-length pickle: 400 with a
    JSON detail (invalid pickle, or plain data that is not a function),
    answered at once, with no huge allocation (the server stays healthy)."""
    r = adv.attacker.post("/register_function", {"name": name, "payload": b64(data)})
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert r.json()["detail"]
    adv.check_unaffected()


@pytest.mark.parametrize("name,data", HUGE, ids=[h[0] for h in HUGE])
def test_malformed_pickle_as_arguments(adv, name, data):
    """The same pickles as arguments: 400 with a JSON detail, never 500."""
    fid = adv.attacker.register(CASES.fn("identity"), name="identity")
    r = adv.attacker.post("/execute_function", {"function_id": fid, "payload": b64(data)})
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert r.json()["detail"]
    adv.check_unaffected()


MEMO = [
    # LONG_BINPUT / LONG_BINGET near 2**32: valid pickles whose loading makes
    # CPython's C unpickler size its memo to the index (MemoryError).
    ("long_binput_2e32", b"\x80\x04(]r\xff\xff\xff\xfft}\x86."),
    ("memo_put_get_2e31", b"\x80\x04(]r\xfe\xff\xff\x7fj\xfe\xff\xff\x7ft}\x86."),
    ("nested_tuples_5000", b"\x80\x04(N" + b"\x85" * 5000 + b"t}\x86."),
    ("open_marks_5000", b"\x80\x04(" + b"(" * 5000 + b"t}\x86."),
]


@pytest.mark.parametrize("name,data", MEMO, ids=[m[0] for m in MEMO])
def test_memo_and_nesting_in_arguments(adv, name, data):
    """Memo indexes near 2**32 and deep nesting in otherwise well-shaped
    arguments: either 400 with a JSON detail at once, or accepted and then
    a COMPLETED task or a FAILED one of a payload or memory kind inside the
    sandbox (the C unpickler there asks for gigabytes for the memo:
    MEMORY_LIMIT) -- never a 500, a hang, or a host allocation."""
    fid = adv.attacker.register(CASES.fn("identity"), name="identity")
    r = adv.attacker.post("/execute_function", {"function_id": fid, "payload": b64(data)})
    assert r.status_code in (200, 400), (r.status_code, r.text[:300])
    if r.status_code == 400:
        assert r.json()["detail"]
        adv.check_unaffected()
        return
    canary = adv.submit_canary()
    body = adv.attacker.wait(r.json()["task_id"])
    assert body["status"] in ("COMPLETED", "FAILED")
    if body["status"] == "FAILED":
        assert body["error"]["kind"] in ("BAD_PAYLOAD", "MEMORY_LIMIT", "USER_EXCEPTION"), body["error"]
    adv.check_unaffected(canary)


def test_oversized_function_payload(adv):
    """A valid 20 MiB function pickle (a 20 MB default argument): under the
    32 MiB body limit, so registration answers 200; running it is FAILED
    PAYLOAD_TOO_LARGE (the 16 MiB args/function cap), not a sandbox load."""
    big = Cases({"big": "def big(x=b'a' * (20 << 20)):\n    return len(x)\n"})
    # The default is computed when the client defines the function, so the
    # pickle carries the 20 MB bytes object.
    body = adv.attack(big.fn("big"), kind="PAYLOAD_TOO_LARGE")
    assert "exceed" in body["error"]["message"]


def test_oversized_arguments(adv):
    """17 MiB of arguments (base64 under the 32 MiB body cap): 200, then
    FAILED PAYLOAD_TOO_LARGE."""
    args = b64(pickle.dumps(((b"x" * (17 << 20),), {}), protocol=4))
    body = adv.attack(CASES.fn("identity"), args_payload=args, kind="PAYLOAD_TOO_LARGE")
    assert "exceed" in body["error"]["message"]
