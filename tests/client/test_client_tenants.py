"""The client against a server with API tokens and quotas."""
import time

import pytest

from client_fixtures import running_server  # noqa: F401  (also puts the client on sys.path)

import wasmfaas

TOKEN_A = "alpha-token-0123456789abcdef"


@pytest.fixture(scope="module")
def secured(request):
    # A small burst and rate so that a short run hits the limit.
    yield from running_server(request, env={"FAAS_TOKENS": "alpha:" + TOKEN_A},
                              extra=["--rate", "5", "--burst", "5"])


def test_token_required(secured):
    with wasmfaas.Client(secured.url, token=None) as c:
        with pytest.raises(wasmfaas.Unauthorized, match="token"):
            c.register(lambda x: x)
    with wasmfaas.Client(secured.url, token="not-the-token-at-all-xxxx") as c:
        with pytest.raises(wasmfaas.Unauthorized):
            c.submit(lambda: 1)


def test_token_from_the_environment(secured, monkeypatch):
    monkeypatch.setenv("WASMFAAS_TOKEN", TOKEN_A)
    with wasmfaas.Client(secured.url) as c:
        assert c.register(lambda x: x + 1)(1).result(timeout=30) == 2


def test_rate_limit_is_waited_out(secured):
    # 5 requests a second: 20 calls (register + executes + result polls) need
    # several seconds; the client waits out each 429 instead of failing.
    with wasmfaas.Client(secured.url, token=TOKEN_A, retries=20) as c:
        started = time.monotonic()
        assert list(c.map(lambda x: x * 2, range(12))) == [x * 2 for x in range(12)]
        assert time.monotonic() - started > 1.0  # it was limited


def test_rate_limit_error_when_retries_run_out(secured):
    with wasmfaas.Client(secured.url, token=TOKEN_A, retries=0) as c:
        with pytest.raises(wasmfaas.RateLimited) as info:
            for _ in range(50):
                try:
                    c.status("00000000-0000-4000-8000-000000000000")
                except wasmfaas.TaskNotFound:
                    pass  # answered: still within the rate
        assert info.value.retry_after and info.value.retry_after > 0
