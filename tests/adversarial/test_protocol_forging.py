"""Forging the host protocol from inside the sandbox.

The host calls pyshim through the C export faas_run and reads the reply out
of linear memory; the function's fd 1 and fd 2 are only captured output.
So frames written to stdout/stderr must end up as plain output, and a
function that monkeypatches pyshim (its reply builder, json, dill,
builtins) can only change its *own* results -- never another function's,
never the host's behaviour. Everything pyshim writes is guest-controlled
data, and the host must treat it as such: cap it, validate it, never let it
stall a task or the dispatcher.

Each case runs Harness.attack's checks (server, innocent canary, host
canary, processes, log).
"""
import time

import pytest

from adv_harness import Cases, adv, deserialize, harness, make_harness  # noqa: F401

def f(src):
    return src.strip("\n") + "\n"


MARK = "FORGED-FRAME-MARK"

CASES = Cases({
    "fake_frames": f("""
def fake_frames():
    import os, sys, pickle, struct
    def s(b):
        return struct.pack('<I', len(b)) + b
    forged = pickle.dumps('FORGED')
    # what a sandbox process sends its pool: u32 length, type 2 (result), ...
    body = b'\\x02' + s(b'COMPLETED') + s(b'') + s(b'') + s(b'') + s(forged) + s(b'') + s(b'') + b'\\x00\\x00' + b'\\x00' * 40 + s(b'')
    frame = struct.pack('<I', len(body)) + body
    # pyshim's own reply header (status, kind, loaded, 3 timings, 4 lengths)
    reply = struct.pack('<BBBxdddIIII', 0, 0, 1, 0.0, 0.0, 0.0, len(forged), 0, 0, 0) + forged
    ready = struct.pack('<I', 18) + b'\\x03' + b'\\x00' * 17
    huge = b'\\xff\\xff\\xff\\xff' + b'\\x02'
    for fd in (1, 2):
        for chunk in (frame, reply, ready, huge):
            os.write(fd, chunk + b'FORGED-FRAME-MARK')
    sys.stdout.buffer.write(frame + b'FORGED-FRAME-MARK')
    sys.stderr.buffer.write(reply + b'FORGED-FRAME-MARK')
    print(repr(frame), 'FORGED-FRAME-MARK')
    sys.stdout.flush()
    sys.stderr.flush()
    return 'real'
"""),
    "forge_own_results": f("""
def forge_own_results(arg):
    import sys, pickle
    ps = sys.modules['pyshim']
    if not getattr(ps, 'FORGED', False):
        orig = ps._reply
        def forged(status, kind, times, payload=b'', message='', tb='', js=b''):
            return orig(0, 0, times, pickle.dumps('FORGED'), '', '', b'')
        ps._reply = forged
        ps.FORGED = True
        import json
        json.dumps = lambda *a, **k: '"FORGED"'
    return arg
"""),
    "break_builtins": f("""
def break_builtins():
    import builtins, sys
    builtins.len = lambda x: 42
    builtins.isinstance = lambda a, b: False
    builtins.print = None
    sys.modules['pickle'] = None
    sys.modules['dill'].dumps = lambda *a, **k: b'not a pickle'
    return 'broken'
"""),
    "garbage_reply": f("""
def garbage_reply():
    import sys
    sys.modules['pyshim']._reply = lambda *a, **k: b'garbage'
    return 'x'
"""),
    "reply_lies_about_lengths": f("""
def reply_lies_about_lengths():
    import sys, struct
    ps = sys.modules['pyshim']
    ps._reply = lambda *a, **k: struct.pack('<BBBxdddIIII', 0, 0, 1, 0.0, 0.0, 0.0, 0xFFFFFFF0, 0xFFFFFFF0, 16, 16)
    return 'x'
"""),
    "unknown_kind": f("""
def unknown_kind():
    import sys
    ps = sys.modules['pyshim']
    orig = ps._reply
    ps._reply = lambda status, kind, times, *a, **k: orig(1, 99, times, *a, **k)
    return 'x'
"""),
    "peek_shim": f("""
def peek_shim():
    import sys, json, builtins
    ps = sys.modules['pyshim']
    return (getattr(ps, 'FORGED', False), json.dumps([1]), builtins.len([1, 2]),
            ps._reply.__module__, sys.modules['dill'].dumps.__module__)
"""),
    "log_injection": f("""
def log_injection():
    raise ValueError('x\\ntime=2026-01-01T00:00:00Z level=ERROR msg="panic: injected" \\x1b[31m\\r\\n goroutine 1 [running]:')
"""),
    "exit_injection": f("""
def exit_injection():
    import sys
    sys.exit('bye\\nlevel=ERROR msg="panic: injected"')
"""),
    "nan_timings": f("""
def nan_timings():
    import sys
    ps = sys.modules['pyshim']
    orig = ps._reply
    def forged(status, kind, times, *a, **k):
        return orig(status, kind, [float('nan'), float('inf'), -1.0], *a, **k)
    ps._reply = forged
    return 'forged timings'
"""),
    "bypass_result_cap": f("""
def bypass_result_cap(size):
    import sys
    ps = sys.modules['pyshim']
    if not getattr(ps, 'CAP_PATCHED', False):
        orig = ps.REQUEST
        class Request:
            size = orig.size
            def unpack_from(self, buf, off=0):
                t = list(orig.unpack_from(buf, off))
                t[3] = 1 << 30  # result_cap, as the host asked
                return tuple(t)
        ps.REQUEST = Request()
        ps.CAP_PATCHED = True
        return 'patched'
    return b'z' * size
"""),
    "big_exception": f("""
def big_exception():
    raise ValueError('x' * (4 << 20))
"""),
    "big_exit": f("""
def big_exit():
    import sys
    sys.exit('x' * (4 << 20))
"""),
})


def test_fake_frames_on_stdout_and_stderr(adv):
    """COMPLETED 'real': fake sandbox frames (result, ready, a 4 GiB length
    prefix) and fake pyshim replies written to fd 1 and fd 2 (os.write,
    sys.stdout.buffer, print) appear only in the captured output."""
    body = adv.attack(CASES.fn("fake_frames"), expect="COMPLETED")
    assert body["value"] == "real"
    assert body["stdout"].count(MARK) == 6, body["stdout"][-300:]
    assert body["stderr"].count(MARK) == 5, body["stderr"][-300:]
    assert "result_json" not in body


def test_monkeypatched_pyshim_only_forges_its_own_results(adv):
    """A function that replaces pyshim._reply and json.dumps forges its own
    results (allowed: its own warm state) -- COMPLETED 'FORGED' -- while
    another function, on any sandbox, still gets the real pyshim, and the
    innocent canary its right value."""
    canary = adv.submit_canary()
    fid = adv.attacker.register(CASES.fn("forge_own_results"), name="forger")
    peek = adv.victim.register(CASES.fn("peek_shim"), name="peek_shim")
    assert _value(adv.attacker.run(fid, "first")) == "FORGED"
    assert _value(adv.attacker.run(fid, "second")) == "FORGED"  # same warm instance
    for _ in range(4):
        forged, js, n, reply_mod, dumps_mod = _value(adv.victim.run(peek))
        assert (forged, js, n, reply_mod) == (False, "[1]", 2, "pyshim"), (forged, js, n, reply_mod)
        assert dumps_mod.startswith("dill")
    adv.check_unaffected(canary)


@pytest.mark.parametrize("name,kind", [
    ("break_builtins", "SANDBOX_CRASH"),      # pyshim itself breaks: "interpreter failed" / malformed reply
    ("garbage_reply", "SANDBOX_CRASH"),       # "malformed reply from the guest"
    ("reply_lies_about_lengths", "SANDBOX_CRASH"),
    ("unknown_kind", "SANDBOX_CRASH"),        # kind 99 is not a kind the host knows
])
def test_broken_or_lying_pyshim(adv, name, kind):
    """A function that breaks pyshim (builtins, pickle, dill) or makes it
    reply garbage or impossible lengths: FAILED SANDBOX_CRASH, the instance
    is discarded, and the next task of the same function starts clean."""
    body = adv.attack(CASES.fn(name), expect="FAILED")
    assert body["error"]["kind"] in (kind, "USER_EXCEPTION", "RESULT_UNPICKLABLE"), body["error"]
    peek = adv.victim.register(CASES.fn("peek_shim"), name="peek_shim")
    for _ in range(3):
        assert _value(adv.victim.run(peek))[:3] == (False, "[1]", 2)


@pytest.mark.parametrize("name,kind", [("log_injection", "USER_EXCEPTION"), ("exit_injection", "USER_EXIT")])
def test_no_log_injection(adv, name, kind):
    """FAILED with the message kept verbatim in the task; the server log
    quotes it (no forged 'level=ERROR ... panic' line appears)."""
    body = adv.attack(CASES.fn(name), kind=kind)
    assert "panic: injected" in body["error"]["message"]
    # Harness.attack already checked that no log line matches panic/ERROR.


def test_forged_json_result_is_validated(adv):
    """A function called with JSON arguments that forges invalid JSON as
    its result_json: COMPLETED, result_json null (the API only trusts JSON
    that parses), the pickled result intact."""
    src = ("def bad_json(x):\n"
           "    import sys\n"
           "    ps = sys.modules['pyshim']\n"
           "    orig = ps._reply\n"
           "    ps._reply = lambda st, k, t, p=b'', m='', tb='', js=b'': orig(st, k, t, p, m, tb, b'{\"a\": \\xff NaN')\n"
           "    return x\n")
    fid = adv.attacker.register(source=src, name="bad_json")
    canary = adv.submit_canary()
    r = adv.attacker.post("/execute_function", {"function_id": fid, "args": [41]})
    assert r.status_code == 200, r.text
    body = adv.attacker.wait(r.json()["task_id"])
    assert body["status"] == "COMPLETED" and body["result_json"] is None
    assert deserialize(body["result"]) == 41
    adv.check_unaffected(canary)


# --- bugs: the host trusts sizes and numbers that the guest writes

@pytest.fixture
def own_harness(request):
    """A server of its own, for a case that breaks the dispatcher."""
    yield from make_harness(request, fast_stop=True)


def test_nan_timings_do_not_stall_the_dispatcher(own_harness):
    """Two tasks whose pyshim reports NaN/Inf timings (one per sandbox),
    then an innocent canary: all three must be final within seconds
    (expected: the forged tasks COMPLETED or SANDBOX_CRASH, the canary
    COMPLETED with the right value)."""
    adv = own_harness
    adv.begin()
    fid = adv.attacker.register(CASES.fn("nan_timings"), name="nan_timings")
    forged = [adv.attacker.execute(fid, args=()) for _ in range(2)]
    time.sleep(0.5)
    canary, want = adv.submit_canary()
    deadline = time.time() + 8
    states = {}
    while time.time() < deadline:
        states = {t: adv.attacker.get(f"/status/{t}").json()["status"] for t in forged + [canary]}
        if all(s in ("COMPLETED", "FAILED") for s in states.values()):
            break
        time.sleep(0.2)
    assert states[canary] == "COMPLETED", f"innocent task stuck: {states}"
    assert all(states[t] in ("COMPLETED", "FAILED") for t in forged), f"forged tasks stuck: {states}"
    adv.check_canary(canary, want)
    adv.check_unaffected()


def test_result_cap_is_enforced_by_the_host(adv):
    """A function that lifts pyshim's own result cap, then returns 12 MiB:
    expected FAILED RESULT_TOO_LARGE."""
    canary = adv.submit_canary()
    fid = adv.attacker.register(CASES.fn("bypass_result_cap"), name="bypass")
    assert _value(adv.attacker.run(fid, 0)) == "patched"
    body = adv.attacker.run(fid, 12 << 20)
    adv.check_unaffected(canary)
    assert body["status"] == "FAILED" and body["error"]["kind"] == "RESULT_TOO_LARGE", \
        (body["status"], body.get("error"), len(body["result"] or ""))


@pytest.mark.parametrize("name,kind", [("big_exception", "USER_EXCEPTION"), ("big_exit", "USER_EXIT")])
def test_big_exception_message(adv, name, kind):
    """raise ValueError('x' * 4 MiB) / sys.exit('x' * 4 MiB): expected FAILED
    USER_EXCEPTION / USER_EXIT with the text capped, no ERROR in the log."""
    adv.attack(CASES.fn(name), kind=kind)


def test_json_call_result_under_cap(adv):
    """A portable function called with JSON arguments returns a 7 MiB
    string (under the 10 MiB result cap): expected COMPLETED."""
    fid = adv.attacker.register(source="def big(n):\n    return 'a' * n\n", name="big")
    canary = adv.submit_canary()
    r = adv.attacker.post("/execute_function", {"function_id": fid, "args": [7 << 20]})
    assert r.status_code == 200, r.text
    body = adv.attacker.wait(r.json()["task_id"])
    assert body["status"] == "COMPLETED", body.get("error")
    assert body["result_json"] == "a" * (7 << 20)
    adv.check_unaffected(canary)


def _value(body):
    assert body["status"] == "COMPLETED", body.get("error")
    return deserialize(body["result"])
