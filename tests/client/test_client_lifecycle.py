"""The Python client's lifecycle options against the real server:
register(..., retries=), submit(..., delay=, run_at=, retries=) and what a
future then tells (attempts, errors). Remote functions use no `assert`
(pytest rewrites it into helpers the sandbox lacks)."""
import datetime
import time

import pytest

from client_fixtures import client, server  # noqa: F401  (fixtures; also puts clients/python on sys.path)

import wasmfaas  # noqa: E402


def always_fails(msg):
    raise ValueError(msg)


def stamp():
    import time as _t
    return _t.time()


def test_register_with_retries_keeps_every_error(client):
    fn = client.register(always_fails, retries={"max": 2, "backoff": "fixed", "base": 0.05, "jitter": False})
    fut = fn("nope")
    with pytest.raises(ValueError, match="nope"):
        fut.result(timeout=60)
    assert fut.attempts == 3
    assert [e["attempt"] for e in fut.errors] == [1, 2, 3]
    assert all(e["error"]["kind"] == "USER_EXCEPTION" for e in fut.errors)


def test_a_call_overrides_the_policy(client):
    fn = client.register(always_fails, retries=3)
    fut = client.submit(fn, "once", retries=0)
    with pytest.raises(ValueError):
        fut.result(timeout=60)
    assert fut.attempts == 1 and len(fut.errors) == 1


def test_delay_and_run_at(client):
    fn = client.register(stamp)
    t0 = time.time()
    by_delay = fn.submit(delay=1.0)
    by_time = client.submit(fn, run_at=datetime.datetime.fromtimestamp(t0 + 1.5, datetime.timezone.utc))
    assert client.status(by_delay.task_id) == "QUEUED"
    assert by_delay.result(timeout=60) >= t0 + 1.0 - 0.01
    assert by_time.result(timeout=60) >= t0 + 1.5 - 0.01


def test_bad_options_fail_before_sending(client):
    fn = client.register(stamp)
    with pytest.raises(ValueError, match="either delay or run_at"):
        fn.submit(delay=1, run_at=5)
    with pytest.raises(ValueError, match="aware datetime"):
        fn.submit(run_at=datetime.datetime.now())
    with pytest.raises(ValueError, match="delay must be"):
        fn.submit(delay=-1)
    # What only the server can tell comes back as its 422.
    with pytest.raises(wasmfaas.WasmFaaSError, match="backoff must be"):
        client.submit(fn, retries={"max": 1, "backoff": "sometimes"})


def read_env():
    import os
    return dict(os.environ)


def test_register_with_settings(client):
    fn = client.register(read_env, env={"MODE": "test"}, secrets={"TOKEN": "t0k"}, timeout=2, memory_mb=96)
    assert fn().result(timeout=60) == {"MODE": "test", "TOKEN": "t0k"}
    info = client.function_info(fn)
    assert info["env"] == {"MODE": "test"} and info["secrets"] == ["TOKEN"]
    assert info["timeout_seconds"] == 2 and info["memory_bytes"] == 96 << 20
    with pytest.raises(wasmfaas.FunctionNotFound):
        client.function_info("00000000-0000-0000-0000-000000000000")
    with pytest.raises(wasmfaas.BadRequest, match="memory_mb"):
        client.register(read_env, memory_mb=1)
