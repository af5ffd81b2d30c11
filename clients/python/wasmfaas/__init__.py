"""Python client of WasmFaaS: run your Python functions in the WasmFaaS
sandbox and get ``concurrent.futures`` futures back.

    import wasmfaas

    client = wasmfaas.Client("http://127.0.0.1:8000")
    square = client.register(lambda x: x * x)
    print(square(7).result())                      # 49
    print(list(client.map(square, range(5))))      # [0, 1, 4, 9, 16]

    with wasmfaas.Executor(client) as ex:
        futures = [ex.submit(pow, 2, n) for n in range(10)]

    nightly = client.schedule(square, 7, cron="0 3 * * *", timezone="Europe/Paris")
    every = client.schedule(square, 8, every=30)  # seconds, a timedelta or "30s"
    every.pause(); every.resume(); every.delete()

Functions travel by value, with the helpers and constants they use (see
:mod:`wasmfaas.pickling` for what cannot travel), or by reference to
modules and pure-Python packages sent along with them as a bundle
(``client.register(mymod.f, modules=[mymod], packages=["attr"])``; your own
modules are bundled automatically where that is safe, see
:mod:`wasmfaas.bundles`). The wire protocol is the
server's: JSON bodies with ``base64(dill.dumps(...))`` payloads.
"""
from .client import Client, FunctionHandle, ScheduleHandle, TaskFuture, verify_webhook
from .bundles import Bundle
from .errors import (BadRequest, BundleError, BundleWarning, FunctionNotFound, PayloadTooLarge, RateLimited,
                     RemoteError, ScheduleNotFound, SerializationError, ServerError, ServerUnavailable, TaskNotFound,
                     Unauthorized, WasmFaaSError)
from .executor import Executor
from .pickling import deserialize, send_by_value, serialize

__version__ = "0.1.0"

__all__ = ["Client", "Executor", "FunctionHandle", "ScheduleHandle", "TaskFuture", "WasmFaaSError", "ServerUnavailable",
           "ServerError", "BadRequest", "FunctionNotFound", "TaskNotFound", "ScheduleNotFound", "PayloadTooLarge",
           "Unauthorized", "RateLimited", "SerializationError", "BundleError", "BundleWarning", "RemoteError",
           "Bundle", "serialize", "deserialize", "send_by_value", "verify_webhook"]
