"""The WasmFaaS client: register functions, call them, get futures."""
import base64
import concurrent.futures
import datetime
import hashlib
import heapq
import itertools
import json
import os
import re
import threading
import time
import urllib.parse
from collections import deque

from . import bundles as _bundles
from . import pickling as _ser
from .errors import (BadRequest, FunctionNotFound, PayloadTooLarge, RateLimited, RemoteError, ScheduleNotFound,
                     SerializationError, ServerError, TaskNotFound, Unauthorized, WasmFaaSError)
from .transport import Transport

__all__ = ["Client", "FunctionHandle", "ScheduleHandle", "TaskFuture"]

FINAL = ("COMPLETED", "FAILED")


class TaskFuture(concurrent.futures.Future):
    """A :class:`concurrent.futures.Future` for one remote task.

    ``result(timeout)`` returns the function's return value or raises its
    exception (the sandbox's traceback is attached as a note), and raises
    ``TimeoutError`` when ``timeout`` passes first. ``task_id`` and
    ``function_id`` name the task and function on the server. Once the task
    is final, ``info`` holds the server's full answer (``status``,
    ``error``, ``stdout``, ``stderr``, ``timings``, ``attempts``).

    The future stays *pending* while the task is queued or running on the
    server (``running()`` is false), so that ``cancel()`` works until the
    result arrives. ``cancel()`` also cancels the task on the server
    (``DELETE /task/{id}``: a queued task never runs, a running one is
    stopped).
    """

    def __init__(self, task_id, function_id=None, client=None):
        super().__init__()
        self.task_id = task_id
        self.function_id = function_id
        self._client = client
        self.info = None
        self._settle_lock = threading.RLock()
        self._cancel_notified = False

    def cancel(self):
        """Stop waiting for the task and cancel it on the server (a queued
        task never runs, a running one is stopped). Returns False, and does
        nothing, if the result has already arrived. The server is asked
        after the future is cancelled here, so a result racing the cancel
        cannot complete it; if the server cannot be reached the task may
        still run there."""
        if not self._stop_waiting():
            return False
        client = self._client
        if client is not None and not client._closed:
            try:
                client.cancel_task(self.task_id)
            except WasmFaaSError:
                pass
        return True

    def _stop_waiting(self):
        with self._settle_lock:
            if not super().cancel():
                return False
            if not self._cancel_notified:
                # Nothing else will run this future: tell wait() and
                # as_completed() now, as an executor's worker would.
                self._cancel_notified = True
                self.set_running_or_notify_cancel()
            return True

    def _settle(self, value, exc, info):
        """Complete the future unless it was cancelled."""
        with self._settle_lock:
            if self.cancelled():
                return False
            self.info = info
            self.set_running_or_notify_cancel()
            if exc is not None:
                self.set_exception(exc)
            else:
                self.set_result(value)
            return True

    @property
    def stdout(self):
        """What the function printed (capped by the server), once final."""
        return (self.info or {}).get("stdout")

    @property
    def stderr(self):
        """What the function wrote to stderr, once final."""
        return (self.info or {}).get("stderr")

    @property
    def error(self):
        """The server's ``{"kind", "message", "traceback"}`` for a failed
        task, else None."""
        return (self.info or {}).get("error")

    @property
    def attempts(self):
        """How many times the task ran, once final."""
        return (self.info or {}).get("attempts")

    @property
    def callback(self):
        """The task's completion webhook as it stood when the future got
        its result (``{"url", "state", "attempts", ...}``; usually still
        ``"pending"``), or None for a task without one. See
        :meth:`callback_status` for where it is now."""
        return (self.info or {}).get("callback")

    def callback_status(self):
        """Where the task's completion webhook is now, read from the server:
        ``{"url", "state": "waiting" | "pending" | "delivered" |
        "undeliverable", "attempts", "last_error", "last_attempt_at",
        "next_attempt_at"}`` (absent fields unset), or None for a task
        without one."""
        if self._client is None:
            raise RuntimeError("this future has no client")
        return self._client.result_info(self.task_id).get("callback")

    @property
    def errors(self):
        """The error of every failed attempt, oldest first, once final: a
        list of ``{"attempt", "at", "error": {"kind", "message",
        "traceback"}}`` (those a retry policy ran again, then a FAILED
        task's last)."""
        return (self.info or {}).get("errors", [])

    def __repr__(self):
        return "<TaskFuture %s %s>" % (self.task_id, self._state.lower())


class FunctionHandle:
    """A registered function. Call it like the function: ``handle(*args,
    **kwargs)`` runs it on the server and returns a :class:`TaskFuture`.

    ``function_id`` is the server's id, ``name`` the registered name.
    ``bundled`` is the set of top-level modules and packages registered
    with the function (its bundle, see :mod:`wasmfaas.bundles`): objects of
    those modules in the arguments travel by reference, so that they are
    instances of the classes the function's code uses. ``bundle`` is the
    :class:`wasmfaas.bundles.Bundle` sent, or None."""

    def __init__(self, client, function_id, name=None, isolation=None, bundled=(), bundle=None):
        self.client = client
        self.function_id = function_id
        self.name = name
        self.isolation = isolation
        if bundle is not None and not bundled:
            bundled = bundle.modules
        self.bundled = frozenset(bundled)
        self.bundle = bundle

    def __call__(self, *args, **kwargs):
        return self.client._execute(self, args, kwargs)

    def submit(self, *args, delay=None, run_at=None, retries=None, callback_url=None, **kwargs):
        """Like calling the handle, with the call options of
        :meth:`Client.submit` (``delay``, ``run_at``, ``retries``,
        ``callback_url``)."""
        return self.client._execute(self, args, kwargs, _call_options(delay, run_at, retries, callback_url))

    def map(self, *iterables, timeout=None):
        """``client.map(self, *iterables, timeout=timeout)``."""
        return self.client.map(self, *iterables, timeout=timeout)

    def __repr__(self):
        return "<FunctionHandle %s %s>" % (self.name, self.function_id)


class ScheduleHandle:
    """A schedule on the server: the function runs with fixed arguments at
    every tick of a cron expression or an interval (:meth:`Client.schedule`).

    ``schedule_id`` names it; ``info`` is the server's latest answer about
    it (``GET /schedules/{id}``), which :meth:`refresh` reads again and the
    properties read: ``next_tick`` and ``last_tick`` (aware datetimes, or
    None), ``tasks_created``, ``paused``, ``last_task_id``. :meth:`pause`,
    :meth:`resume` and :meth:`delete` act on the server."""

    def __init__(self, client, info):
        self.client = client
        self.schedule_id = info["schedule_id"]
        self.info = info

    def refresh(self):
        """Read the schedule again; returns self."""
        self.info = self.client._schedule_request("GET", self.schedule_id)
        return self

    def pause(self):
        """Stop it from ticking until :meth:`resume`; returns self."""
        self.info = self.client._schedule_request("POST", self.schedule_id, "/pause")
        return self

    def resume(self):
        """Make a paused schedule tick again from its next tick after now
        (the ticks of the pause are not run); returns self."""
        self.info = self.client._schedule_request("POST", self.schedule_id, "/resume")
        return self

    def delete(self):
        """Remove the schedule from the server (the tasks it made stay)."""
        self.client._schedule_request("DELETE", self.schedule_id)

    def last_task(self):
        """A :class:`TaskFuture` for the task of the latest tick (as of
        ``info``), or None before the first."""
        tid = self.info.get("last_task_id")
        return self.client.future(tid) if tid else None

    @property
    def name(self):
        return self.info.get("name")

    @property
    def next_tick(self):
        """When the next tick is due (an aware datetime), None while paused."""
        return _parse_time(self.info.get("next_tick"))

    @property
    def last_tick(self):
        return _parse_time(self.info.get("last_tick"))

    @property
    def tasks_created(self):
        return self.info.get("tasks_created", 0)

    @property
    def paused(self):
        return bool(self.info.get("paused"))

    @property
    def last_task_id(self):
        return self.info.get("last_task_id")

    def __repr__(self):
        when = self.info.get("cron") or "every %s" % self.info.get("every")
        return "<ScheduleHandle %s %s%s>" % (self.schedule_id, when, " paused" if self.paused else "")


class Client:
    """A connection to a WasmFaaS server.

    >>> client = Client("http://127.0.0.1:8000")
    >>> double = client.register(lambda x: 2 * x)
    >>> double(21).result()
    42

    Parameters:

    ``url``
        The server, ``http://host:port``.
    ``timeout``
        Socket timeout in seconds of each HTTP request (a long-poll for a
        result adds its wait to it).
    ``retries``, ``backoff``
        GET requests are retried ``retries`` times on connection errors and
        503, pausing ``backoff`` seconds, doubled each time. POST requests
        (register, execute) are retried only when the connection could not
        be made at all, so a task never runs twice because of a retry.
    ``poll_threads``
        At most this many background threads wait for results. Each waits
        for one task at a time with a long-poll (``GET
        /result/{id}?wait=``), which the server answers as soon as the task
        is final; nothing spins.
    ``poll_wait``
        The longest a long-poll waits, in seconds. When more tasks are
        pending than threads, shorter waits (``rotate_wait``) let every
        pending task be looked at in turn.

    A client is thread-safe. Close it (or use ``with Client(...) as c:``)
    to stop its threads; that stops waiting for pending futures (they are
    cancelled).

    Results and remote exceptions are unpickled with dill, which runs code:
    use a server you trust.
    """

    def __init__(self, url="http://127.0.0.1:8000", timeout=30.0, *, token=None, retries=4, backoff=0.1,
                 poll_threads=4, poll_wait=20.0, rotate_wait=1.0):
        if token is None:
            token = os.environ.get("WASMFAAS_TOKEN") or None
        self.transport = Transport(url, timeout=timeout, retries=retries, backoff=backoff, token=token)
        self.url = self.transport.url
        self._poller = _Poller(self, max(1, int(poll_threads)), float(poll_wait), float(rotate_wait))
        self._registered = {}  # (sha256 of the pickle, isolation) -> FunctionHandle
        self._register_lock = threading.Lock()
        self._closed = False

    # --- context manager

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        """Stop the background threads and cancel the futures still pending
        (they stop waiting; the tasks still run on the server)."""
        self._closed = True
        for fut in self._poller.close():
            fut._stop_waiting()
        self.transport.close()

    # --- functions

    def register(self, fn, name=None, isolation=None, *, modules=None, packages=None, auto_bundle=True, retries=None,
                 timeout=None, memory_mb=None, env=None, secrets=None, callback_url=None):
        """Register ``fn`` and return a :class:`FunctionHandle`.

        ``fn`` is sent by value with what it needs from your code (see
        :mod:`wasmfaas.pickling`), or by reference to its module when that
        is bundled (below); ``name`` defaults to its qualified
        name; ``isolation`` is ``"warm"`` (reuse a sandbox for the same
        function, the server's default) or ``"fresh"`` (a pristine
        interpreter for every task). Every call registers anew; the
        :class:`Executor` and :meth:`map` register each distinct function
        once.

        A *bundle* sends modules and pure-Python packages with the
        function: in the sandbox they are importable (first on
        ``sys.path``, for this function only), and their functions and
        classes travel by reference, in the function and in the arguments
        and results of its calls (a ``mymod.Point`` result is your
        ``mymod.Point``). See :mod:`wasmfaas.bundles` for the rules.

        ``modules``
            Module objects, dotted module names or paths of a ``.py`` file
            or a package directory: ``client.register(mymod.f,
            modules=[mymod])``. A module inside a package brings the whole
            top-level package (subpackages and data files too).
        ``packages``
            Installed pure-Python packages by import name:
            ``client.register(fn, packages=["attr"])``.
        ``auto_bundle``
            True (the default): the modules of yours (not the standard
            library, not site-packages) that ``fn`` refers to are bundled
            when that is safe (source files on disk, no compiled extensions,
            nothing imported that the sandbox lacks, at most 8 MiB), and
            travel by value otherwise. False: only what ``modules`` and
            ``packages`` name is bundled; everything else of yours travels
            by value.

        ``retries``
            The retry policy of the function's tasks, for failures in its
            code: a number of retries (exponential back-off from 1 s, capped
            at 1 min, with jitter), or a dict such as ``{"max": 3,
            "backoff": "exponential", "base": "1s", "max_delay": "1m",
            "jitter": True, "on": ["ValueError", "TIMEOUT"]}``. Every failed
            attempt's error is kept (:attr:`TaskFuture.errors`). A call can
            give its own (``submit(..., retries=)``).
        ``timeout``, ``memory_mb``
            The function's own time limit (seconds, or a duration text such
            as ``"10s"``) and memory cap in MiB, below the nodes' (see
            ``GET /runtime``'s ``function_limits``).
        ``env``, ``secrets``
            Dicts of environment variables: in the sandbox ``os.environ``
            holds exactly these. :meth:`function_info` shows ``env`` and
            only the names of ``secrets``.

        ``callback_url``
            The default completion webhook of the function's tasks: when a
            task is final, the server POSTs its result (the body of GET
            /result) there, signed with your tenant's key
            (:meth:`Client.webhook_secret`), retrying with back-off. An
            ``http(s)`` URL the server may reach (a private or loopback
            address is refused with :class:`BadRequest`). A call can give
            its own, or ``""`` for none (``submit(..., callback_url=)``).

        Raises :class:`wasmfaas.BundleError` (a ``ValueError``), before
        sending anything, for a module or package that cannot be bundled:
        one with compiled extensions (the sandbox runs pure-Python code
        only), the standard library or dill (the sandbox has them), a
        module without a source file."""
        if isinstance(fn, FunctionHandle):
            return fn
        if not callable(fn):
            raise TypeError("register() needs a callable, not %s" % type(fn).__name__)
        data, bundle = _bundles.prepare(fn, modules, packages, auto_bundle)
        settings = {k: v for k, v in (("retries", retries), ("timeout", timeout), ("memory_mb", memory_mb),
                                       ("env", env), ("secrets", secrets)) if v is not None}
        if callback_url is not None:
            settings["callback_url"] = _callback_url(callback_url)
        return self._register_pickle(data, _name_of(fn, name), isolation, bundle, settings)

    def _check_open(self):
        if self._closed:
            raise RuntimeError("the client is closed")

    def _register_pickle(self, data, name, isolation, bundle=None, settings=None):
        self._check_open()
        body = {"name": name, "payload": _b64(data)}
        if isolation is not None:
            body["isolation"] = isolation
        body.update(settings or {})
        size = len(data)
        if bundle is not None:
            body["bundle"] = bundle.b64()
            size += len(bundle.zip)
        resp = self.transport.request("POST", "/register_function", body)
        if resp.status != 200:
            raise _error_for(resp, "register_function", size, bundle=bundle)
        fid = _field(resp, "function_id")
        return FunctionHandle(self, fid, name, isolation, bundle=bundle)

    def _resolve(self, fn, isolation=None, modules=None, packages=None, auto_bundle=True):
        """A handle for ``fn``: itself if it is one, else a registration
        shared by every identical pickle of ``fn`` with the same bundle."""
        if isinstance(fn, FunctionHandle):
            return fn
        if not callable(fn):
            raise TypeError("expected a function or a FunctionHandle, not %s" % type(fn).__name__)
        data, bundle = _bundles.prepare(fn, modules, packages, auto_bundle)
        key = (hashlib.sha256(data).hexdigest(), bundle.sha256 if bundle is not None else None, isolation)
        handle = self._registered.get(key)
        if handle is not None:
            return handle
        with self._register_lock:
            handle = self._registered.get(key)
            if handle is None:
                handle = self._register_pickle(data, _name_of(fn, None), isolation, bundle)
                self._registered[key] = handle
        return handle

    # --- tasks

    def submit(self, fn, *args, delay=None, run_at=None, retries=None, callback_url=None, **kwargs):
        """Run ``fn(*args, **kwargs)`` remotely and return a
        :class:`TaskFuture`. ``fn`` is a :class:`FunctionHandle` or a plain
        function (registered once per distinct function).

        Call options (keyword-only, so not passed to ``fn``; call a
        handle directly, ``handle(delay=5)``, to pass such a keyword to the
        function):

        ``delay``
            Start no sooner than this many seconds from now (a number or a
            ``datetime.timedelta``); the task waits QUEUED.
        ``run_at``
            Start no sooner than this time (an aware ``datetime`` or unix
            seconds); not with ``delay``.
        ``retries``
            This call's retry policy instead of the function's (see
            :meth:`register`); ``0``: no retries.
        ``callback_url``
            This call's completion webhook instead of the function's (see
            :meth:`register`); ``""``: none. The future's
            :meth:`TaskFuture.callback_status` says whether it was
            delivered."""
        return self._execute(self._resolve(fn), args, kwargs, _call_options(delay, run_at, retries, callback_url))

    def map(self, fn, *iterables, timeout=None):
        """Like ``Executor.map``: submit ``fn(*args)`` for every item of
        ``zip(*iterables)`` now, and return an iterator of the results in
        order. The iterator raises the first failure when it reaches it
        (and stops waiting for the rest), and ``TimeoutError`` if
        ``timeout`` seconds (counted from this call) pass first. ``fn`` is
        a :class:`FunctionHandle` or a plain function (registered once)."""
        end = None if timeout is None else time.monotonic() + timeout
        handle = self._resolve(fn)
        futures = []
        try:
            for args in zip(*iterables):
                futures.append(self._execute(handle, args, {}))
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        return _results_in_order(futures, end)

    def _execute(self, handle, args, kwargs, options=None):
        self._check_open()
        data = _ser.dumps((tuple(args), dict(kwargs)), getattr(handle, "bundled", ()))
        body = {"function_id": handle.function_id, "payload": _b64(data)}
        body.update(options or {})
        resp = self.transport.request("POST", "/execute_function", body)
        if resp.status != 200:
            raise _error_for(resp, "execute_function", len(data), function_id=handle.function_id)
        fut = TaskFuture(_field(resp, "task_id"), handle.function_id, self)
        self._poller.add(fut)
        return fut

    def function_info(self, function_id):
        """``GET /function/{id}``: the function's name, kind, isolation,
        retry policy, timeout, memory cap, ``env`` and the names of its
        ``secrets``."""
        fid = getattr(function_id, "function_id", function_id)
        resp = self.transport.request("GET", "/function/%s" % _quote(fid))
        if resp.status != 200:
            raise _error_for(resp, "function", function_id=fid)
        return resp.data

    def future(self, task_id):
        """A :class:`TaskFuture` for a task submitted earlier (by anyone)."""
        self._check_open()
        fut = TaskFuture(task_id, client=self)
        self._poller.add(fut)
        return fut

    def cancel_task(self, task_id):
        """Cancel a task on the server: a queued task never runs, a running
        one is stopped; it ends FAILED with kind CANCELLED. Returns True if
        this call cancelled it, False if it was already final."""
        resp = self.transport.request("DELETE", "/task/%s" % _quote(task_id))
        if resp.status == 409:
            return False
        if resp.status != 200:
            raise _error_for(resp, "cancel", task_id=task_id)
        return True

    def status(self, task_id):
        """The task's status: ``QUEUED``, ``RUNNING``, ``COMPLETED`` or
        ``FAILED``."""
        resp = self.transport.request("GET", "/status/%s" % _quote(task_id))
        if resp.status != 200:
            raise _error_for(resp, "status", task_id=task_id)
        return _field(resp, "status")

    def result_info(self, task_id, wait=0.0):
        """The server's raw answer for the task (a dict), waiting up to
        ``wait`` seconds for it to be final."""
        path = "/result/%s" % _quote(task_id)
        if wait and wait > 0:
            path += "?wait=%s" % _seconds(wait)
        resp = self.transport.request("GET", path, timeout=self.transport.timeout + (wait or 0))
        if resp.status != 200:
            raise _error_for(resp, "result", task_id=task_id)
        if not isinstance(resp.data, dict) or "status" not in resp.data:
            raise ServerError("result: the server's answer is not a task: %r" % resp, status=resp.status)
        return resp.data

    # --- schedules

    def schedule(self, fn, *args, cron=None, every=None, timezone=None, name=None, missed=None, retries=None, **kwargs):
        """Run ``fn(*args, **kwargs)`` on the server at every tick of a
        schedule, and return a :class:`ScheduleHandle`. ``fn`` is a
        :class:`FunctionHandle` or a plain function (registered once).

        Give one of (keyword-only, so not passed to ``fn``):

        ``cron``
            A 5-field cron expression, ``"*/5 * * * *"`` (minute hour
            day-of-month month day-of-week; ranges, steps, lists, names,
            ``@daily`` and the like), in ``timezone`` (an IANA name such as
            ``"Europe/Paris"``; default UTC).
        ``every``
            An interval: seconds (at least 1), a ``datetime.timedelta`` or
            a duration text such as ``"30s"``. The ticks are the creation
            time plus 1, 2, 3... intervals.

        ``missed``
            What ticks missed during an outage (no dispatcher ran) do:
            ``"run_once"`` (the server's default) runs one catch-up task
            for them all, ``"skip"`` none; both go on at the next tick.
        ``retries``
            The tasks' retry policy, instead of the function's (see
            :meth:`register`).
        ``name``
            A name to tell the schedule by.

        Each tick makes one task (however many dispatchers run); follow
        them with :meth:`ScheduleHandle.last_task` or the task list."""
        self._check_open()
        if (cron is None) == (every is None):
            raise ValueError("give either cron= or every=")
        handle = self._resolve(fn)
        data = _ser.dumps((tuple(args), dict(kwargs)), getattr(handle, "bundled", ()))
        body = {"function_id": handle.function_id, "payload": _b64(data)}
        if cron is not None:
            body["cron"] = str(cron)
            if timezone is not None:
                body["timezone"] = str(timezone)
        else:
            if timezone is not None:
                raise ValueError("timezone= is for a cron schedule")
            if isinstance(every, datetime.timedelta):
                every = every.total_seconds()
            if isinstance(every, bool) or not isinstance(every, (int, float, str)):
                raise ValueError("every must be seconds, a timedelta or a duration such as '30s', not %r" % (every,))
            body["every"] = every
        if name is not None:
            body["name"] = str(name)
        if missed is not None:
            body["missed"] = missed
        if retries is not None:
            body["retries"] = retries
        resp = self.transport.request("POST", "/schedules", body)
        if resp.status != 200:
            raise _error_for(resp, "schedule", len(data), function_id=handle.function_id)
        return ScheduleHandle(self, resp.data)

    def schedules(self):
        """The caller's schedules on the server (:class:`ScheduleHandle`),
        oldest first."""
        resp = self.transport.request("GET", "/schedules")
        if resp.status != 200:
            raise _error_for(resp, "schedules")
        return [ScheduleHandle(self, info) for info in resp.data.get("schedules", [])]

    def get_schedule(self, schedule_id):
        """A :class:`ScheduleHandle` for a schedule made earlier."""
        return ScheduleHandle(self, self._schedule_request("GET", schedule_id))

    def _schedule_request(self, method, schedule_id, suffix=""):
        resp = self.transport.request(method, "/schedules/%s%s" % (_quote(schedule_id), suffix), {} if method == "POST" else None)
        if resp.status != 200:
            raise _error_for(resp, "schedule " + (suffix.strip("/") or method.lower()), schedule_id=schedule_id)
        return resp.data
    def webhook_secret(self):
        """The key your tenant's completion webhooks are signed with (GET
        /webhook_secret): a receiver checks ``X-WasmFaaS-Signature:
        t=<unix>,v1=<hex>`` with :func:`wasmfaas.verify_webhook`. Raises
        :class:`wasmfaas.ServerError` (404) if the server has webhooks off."""
        resp = self.transport.request("GET", "/webhook_secret")
        if resp.status != 200:
            raise _error_for(resp, "webhook_secret")
        return _field(resp, "secret")

    def health(self):
        """True if the server answers ``GET /healthz`` with 200."""
        try:
            return self.transport.request("GET", "/healthz").status == 200
        except WasmFaaSError:
            return False

    def __repr__(self):
        return "<wasmfaas.Client %s>" % self.url


def verify_webhook(headers, body, key, tolerance=300, now=None):
    """Check a completion webhook as a receiver should: ``headers`` (a
    mapping; names compared without case), ``body`` the exact bytes
    received, ``key`` your tenant's key (:meth:`Client.webhook_secret`).
    Raises ``ValueError`` for a missing or malformed signature, one that
    does not match, or a timestamp more than ``tolerance`` seconds from
    ``now`` (a replay); returns the parsed body."""
    import hmac as _hmac
    sig = None
    for k, v in headers.items():
        if k.lower() == "x-wasmfaas-signature":
            sig = v
    if not sig:
        raise ValueError("no X-WasmFaaS-Signature header")
    parts = {}
    for p in sig.split(","):
        k, _, v = p.strip().partition("=")
        parts.setdefault(k, []).append(v)
    try:
        ts = int(parts["t"][0])
    except (KeyError, ValueError):
        raise ValueError("malformed X-WasmFaaS-Signature: want t=<unix>,v1=<hex>") from None
    if abs((time.time() if now is None else now) - ts) > tolerance:
        raise ValueError("the webhook's timestamp is more than %ss away: a replay?" % tolerance)
    if isinstance(body, str):
        body = body.encode()
    want = _hmac.new(key.encode(), str(ts).encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(_hmac.compare_digest(v, want) for v in parts.get("v1", [])):
        raise ValueError("the webhook's signature does not match")
    return json.loads(body)


def outcome(info, task_id=None):
    """Turn a final ``/result`` answer into ``(value, None)`` or ``(None,
    exception)``."""
    status = info.get("status")
    raw = info.get("result")
    if status == "COMPLETED":
        try:
            return _ser.deserialize(raw), None
        except Exception as e:
            err = SerializationError("task %s: cannot unpickle its result here: %s: %s" % (task_id, type(e).__name__, e))
            err.__cause__ = e
            return None, err
    error = info.get("error") or {}
    exc = None
    if raw:
        try:
            exc = _ser.deserialize(raw)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(error.get("kind"), error.get("message") or "task %s failed" % task_id,
                          error.get("traceback") or "", task_id)
    return None, exc


class _Entry:
    __slots__ = ("future", "early")

    def __init__(self, future):
        self.future = future
        self.early = 0


class _Poller:
    """Background threads that long-poll pending tasks, oldest first.

    Each thread takes the next pending task and asks ``GET
    /result/{id}?wait=W``. The server answers as soon as the task is final
    (the future completes) or when W ends (the task goes to the back of
    the line). W is ``long_wait`` when no other task is waiting for a
    thread, ``short_wait`` otherwise, so that one slow task does not hide
    the others. A server that answers before W without a final status
    (one without long-polling) gets a growing pause before that task is
    asked again. Threads start on demand and end when idle.
    """

    IDLE_EXIT = 30.0

    def __init__(self, client, threads, long_wait, short_wait):
        self._client = client
        self._max = threads
        self._long = long_wait
        self._short = min(short_wait, long_wait)
        self._cv = threading.Condition()
        self._ready = deque()
        self._later = []  # heap of (due, seq, entry)
        self._seq = itertools.count()
        self._pending = set()
        self._threads = 0
        self._idle = 0
        self._closed = False

    def add(self, fut):
        with self._cv:
            if self._closed:
                raise RuntimeError("the client is closed")
            self._pending.add(fut)
            self._ready.append(_Entry(fut))
            self._wake()

    def close(self):
        with self._cv:
            self._closed = True
            pending, self._pending = list(self._pending), set()
            self._ready.clear()
            self._later.clear()
            self._cv.notify_all()
        return pending

    def _wake(self):
        if self._idle > 0:
            self._cv.notify()
        elif self._threads < self._max:
            self._threads += 1
            t = threading.Thread(target=self._run, name="wasmfaas-poller", daemon=True)
            t.start()

    def _next(self):
        """The next entry to poll, or None when this thread should end."""
        while True:
            if self._closed:
                self._threads -= 1
                return None
            now = time.monotonic()
            while self._later and self._later[0][0] <= now:
                self._ready.append(heapq.heappop(self._later)[2])
            while self._ready:
                entry = self._ready.popleft()
                if entry.future.done():  # cancelled by its owner
                    self._pending.discard(entry.future)
                    continue
                return entry
            timeout = self._later[0][0] - now if self._later else self.IDLE_EXIT
            self._idle += 1
            try:
                woken = self._cv.wait(timeout)
            finally:
                self._idle -= 1
            if not woken and not self._later and not self._ready:
                self._threads -= 1
                return None

    def _run(self):
        while True:
            with self._cv:
                entry = self._next()
                if entry is None:
                    return
                wait = self._short if (self._ready or self._later) else self._long
            fut = entry.future
            started = time.monotonic()
            try:
                info = self._client.result_info(fut.task_id, wait)
            except BaseException as e:  # noqa: B036 - the future carries it
                if self._closed:
                    return
                self._pending_done(fut)
                fut._settle(None, e, None)
                continue
            if info.get("status") in FINAL:
                value, exc = outcome(info, fut.task_id)
                self._pending_done(fut)
                fut._settle(value, exc, info)
                continue
            with self._cv:
                if self._closed:
                    return
                if fut.done():
                    self._pending.discard(fut)
                    continue
                if time.monotonic() - started < wait / 2:
                    entry.early += 1
                    delay = min(1.0, 0.05 * 2 ** min(entry.early, 5))
                    heapq.heappush(self._later, (time.monotonic() + delay, next(self._seq), entry))
                else:
                    entry.early = 0
                    self._ready.append(entry)
                self._wake()

    def _pending_done(self, fut):
        with self._cv:
            self._pending.discard(fut)


def _results_in_order(futures, end):
    """Yield the futures' results in order (as Executor.map does)."""
    futures = list(futures)
    futures.reverse()
    try:
        while futures:
            fut = futures.pop()
            try:
                if end is None:
                    yield fut.result()
                else:
                    yield fut.result(end - time.monotonic())
            finally:
                fut.cancel()  # a no-op once done; stops waiting on early exit
    finally:
        for fut in futures:
            fut.cancel()


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _quote(task_id):
    return urllib.parse.quote(str(task_id), safe="")


def _seconds(s):
    return ("%.3f" % s).rstrip("0").rstrip(".")


def _name_of(fn, name):
    if name:
        return str(name)
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


def _field(resp, key):
    if not isinstance(resp.data, dict) or not isinstance(resp.data.get(key), str):
        raise ServerError("the server's answer has no %r: %r" % (key, resp), status=resp.status)
    return resp.data[key]


def _error_for(resp, action, size=None, function_id=None, task_id=None, bundle=None, schedule_id=None):
    status, detail = resp.status, resp.detail
    msg = "%s: %d %s" % (action, status, detail)
    if status in (400, 422):
        return BadRequest(msg, status, detail)
    if status == 404:
        if schedule_id is not None:
            return ScheduleNotFound("schedule %s is not known to the server (%s)" % (schedule_id, detail),
                                    status, detail, schedule_id=schedule_id)
        if action in ("execute_function", "schedule", "function"):
            return FunctionNotFound("function %s is not registered on the server (%s)" % (function_id, detail),
                                    status, detail, function_id=function_id)
        return TaskNotFound("task %s is not known to the server (%s)" % (task_id, detail),
                            status, detail, task_id=task_id)
    if status == 401:
        return Unauthorized("%s: the server needs a valid API token (Client(token=...) or WASMFAAS_TOKEN): %s"
                            % (action, detail), status, detail)
    if status == 429:
        return RateLimited("%s: over the tenant's quota: %s" % (action, detail), status, detail,
                           retry_after=resp.retry_after)
    if status == 413:
        if action != "register_function":
            what = "the pickled arguments are"
        elif bundle is not None:
            what = "the pickled function with its bundle (%d files, %.1f MB uncompressed) is" % (
                len(bundle.files), bundle.nbytes / 1e6)
        else:
            what = "the pickled function is"
        size_text = " (%.1f MB, %.1f MB as base64)" % (size / 1e6, size * 4 / 3 / 1e6) if size else ""
        return PayloadTooLarge("%s: %s too large for the server%s: %s" % (action, what, size_text, detail),
                               status, detail)
    return ServerError(msg, status, detail)


def _parse_time(text):
    """An RFC 3339 time from the server as an aware datetime (None: None)."""
    if not text:
        return None
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not m:
        raise ServerError("the server's time %r is not RFC 3339" % (text,))
    frac = (m.group(2) or "")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat("%s.%s%s" % (m.group(1), frac, zone))


def _callback_url(url):
    """A callback_url as sent: a string ("" none)."""
    if url is False:
        return ""
    if not isinstance(url, str):
        raise ValueError("callback_url must be an http(s) URL as a string, or \"\" for none, not %r" % (url,))
    return url


def _call_options(delay, run_at, retries, callback_url=None):
    """The JSON fields of submit()'s call options."""
    out = {}
    if callback_url is not None:
        out["callback_url"] = _callback_url(callback_url)
    if delay is not None and run_at is not None:
        raise ValueError("give either delay or run_at, not both")
    if delay is not None:
        if isinstance(delay, datetime.timedelta):
            delay = delay.total_seconds()
        if not isinstance(delay, (int, float)) or isinstance(delay, bool) or delay < 0:
            raise ValueError("delay must be a number of seconds >= 0 or a timedelta, not %r" % (delay,))
        out["delay"] = float(delay)
    if run_at is not None:
        if isinstance(run_at, datetime.datetime):
            if run_at.tzinfo is None:
                raise ValueError("run_at must be an aware datetime (with a tzinfo), or unix seconds")
            run_at = run_at.timestamp()
        if not isinstance(run_at, (int, float)) or isinstance(run_at, bool):
            raise ValueError("run_at must be a datetime or unix seconds, not %r" % (run_at,))
        out["run_at"] = float(run_at)
    if retries is not None:
        out["retries"] = retries
    return out
