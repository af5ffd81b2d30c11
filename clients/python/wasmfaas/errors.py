"""Exceptions of the WasmFaaS client.

Everything the client itself raises is a :class:`WasmFaaSError`. Exceptions
raised *by your function* in the sandbox are re-raised as themselves
(``ValueError`` stays ``ValueError``); only when such an exception cannot be
rebuilt in the client do you get a :class:`RemoteError`. A task that runs
past the server's time limit raises the built-in ``TimeoutError`` from
``future.result()``, as does ``future.result(timeout)`` when *you* stop
waiting (the message tells them apart).
"""

__all__ = ["WasmFaaSError", "ServerUnavailable", "ServerError", "BadRequest", "FunctionNotFound",
           "TaskNotFound", "PayloadTooLarge", "Unauthorized", "RateLimited", "SerializationError",
           "BundleError", "BundleWarning", "RemoteError"]


class WasmFaaSError(Exception):
    """Base class of the client's errors."""


class ServerUnavailable(WasmFaaSError, ConnectionError):
    """The server could not be reached (refused, reset, no answer), after the
    retries allowed for the request. ``url`` is the server's address."""

    def __init__(self, message, url=None):
        super().__init__(message)
        self.url = url


class ServerError(WasmFaaSError):
    """The server answered with an error status this client has no better
    name for (500, 503 after retries, ...). ``status`` and ``detail`` are
    the HTTP status and the server's ``detail`` text."""

    def __init__(self, message, status=None, detail=None):
        super().__init__(message)
        self.status = status
        self.detail = detail


class BadRequest(ServerError, ValueError):
    """400 or 422: the server refused the request; ``detail`` says why (for
    example a function that needs a module the sandbox does not have)."""


class FunctionNotFound(ServerError, LookupError):
    """404 on execute: the server does not know ``function_id``."""

    def __init__(self, message, status=None, detail=None, function_id=None):
        super().__init__(message, status, detail)
        self.function_id = function_id


class ScheduleNotFound(ServerError, LookupError):
    """404 on a schedule: the server does not know ``schedule_id`` (it was
    deleted, or is another tenant's)."""

    def __init__(self, message, status=None, detail=None, schedule_id=None):
        super().__init__(message, status, detail)
        self.schedule_id = schedule_id


class TaskNotFound(ServerError, LookupError):
    """404 on status or result: the server does not know ``task_id``
    (it expired, or the server lost its in-memory store)."""

    def __init__(self, message, status=None, detail=None, task_id=None):
        super().__init__(message, status, detail)
        self.task_id = task_id


class PayloadTooLarge(ServerError):
    """413: the request body (the pickled function or arguments, base64
    encoded) is over the server's limit (32 MiB by default)."""


class Unauthorized(ServerError, PermissionError):
    """401: the server wants a valid API token (``Client(token=...)`` or the
    ``WASMFAAS_TOKEN`` environment variable)."""


class RateLimited(ServerError):
    """429 after the retries: the tenant's request rate or queued-task quota
    is used up. ``retry_after`` is the server's hint in seconds."""

    def __init__(self, message, status=None, detail=None, retry_after=None):
        super().__init__(message, status, detail)
        self.retry_after = retry_after


class SerializationError(WasmFaaSError):
    """A function, its arguments or a result could not be (un)pickled in
    the client."""


class BundleError(WasmFaaSError, ValueError):
    """A module or package given to ``register(modules=..., packages=...)``
    cannot be bundled, found before anything is sent: it contains (or is) a
    compiled extension (the sandbox runs pure-Python code only), it is part
    of the standard library or dill (the sandbox has those already), it has
    no source file, or the bundle is over the server's caps. The message
    names the module or package and, when there is one, the offending
    file."""


class BundleWarning(UserWarning):
    """Something was left out of a bundle: symbolic links inside a package
    directory are skipped (never followed), and the warning names them."""


class RemoteError(WasmFaaSError):
    """A task failed and its exception could not be rebuilt in the client.

    ``kind`` is the server's error kind (``USER_EXCEPTION``, ``TIMEOUT``,
    ``MEMORY_LIMIT``, ``WORKER_LOST``, ...), ``message`` its one-line
    description, ``traceback`` the sandbox's traceback text (also attached
    as a note), ``task_id`` the task."""

    def __init__(self, kind, message, traceback="", task_id=None):
        super().__init__("%s: %s" % (kind or "FAILED", message or "the task failed"))
        self.kind = kind
        self.message = message
        self.traceback = traceback or ""
        self.task_id = task_id
        if self.traceback and hasattr(self, "add_note"):
            self.add_note("Traceback in the sandbox:\n" + self.traceback.rstrip("\n"))
