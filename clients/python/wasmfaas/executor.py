"""A :class:`concurrent.futures.Executor` that runs calls on WasmFaaS."""
import concurrent.futures
import threading
import time
from collections import deque

from .client import Client, _results_in_order

__all__ = ["Executor"]


class Executor(concurrent.futures.Executor):
    """Run calls on a WasmFaaS server the way you would on a thread pool.

    >>> with Executor("http://127.0.0.1:8000") as ex:
    ...     squares = list(ex.map(lambda x: x * x, range(10)))

    ``client`` is a :class:`Client` or a server URL (the executor then
    makes its own client, with ``client_kwargs``, and closes it at
    shutdown). ``max_pending``, if set, bounds the tasks in flight:
    ``submit`` blocks until one finishes. ``isolation`` is passed to the
    registrations (``"warm"`` or ``"fresh"``). ``modules``, ``packages``
    and ``auto_bundle`` are passed to them too: every function submitted is
    registered with that bundle (see :meth:`wasmfaas.Client.register`).

    Each distinct function is registered once (identified by the hash of
    its pickle, so a function whose captured globals changed counts as a
    new one). ``Future.cancel()`` cancels the task on the server too (see
    :class:`wasmfaas.TaskFuture`), as ``shutdown(cancel_futures=True)`` and
    an abandoned ``map`` do for the tasks still pending.
    """

    def __init__(self, client="http://127.0.0.1:8000", max_pending=None, isolation=None, *, modules=None,
                 packages=None, auto_bundle=True, **client_kwargs):
        if isinstance(client, Client):
            if client_kwargs:
                raise TypeError("client options are for a URL, not an existing Client")
            self._client, self._owns_client = client, False
        else:
            self._client, self._owns_client = Client(client, **client_kwargs), True
        if max_pending is not None and max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self._max_pending = max_pending
        self._slots = threading.Semaphore(max_pending) if max_pending else None
        self._isolation = isolation
        self._bundling = {"modules": modules, "packages": packages, "auto_bundle": auto_bundle}
        self._lock = threading.Lock()
        self._futures = set()
        self._shutdown = False

    @property
    def client(self):
        """The :class:`Client` this executor submits through."""
        return self._client

    def submit(self, fn, /, *args, **kwargs):
        """Run ``fn(*args, **kwargs)`` remotely; return a
        :class:`wasmfaas.TaskFuture`. ``fn`` is a function or a
        :class:`wasmfaas.FunctionHandle`. Errors of the submission itself
        (server down, payload too large, unknown function) are raised
        here; errors of the call come from the future."""
        self._check_open()
        handle = self._client._resolve(fn, self._isolation, **self._bundling)
        return self._submit_handle(handle, args, kwargs)

    def _submit_handle(self, handle, args, kwargs):
        if self._slots is not None:
            self._slots.acquire()
        try:
            self._check_open()
            fut = self._client._execute(handle, args, kwargs)
        except BaseException:
            if self._slots is not None:
                self._slots.release()
            raise
        with self._lock:
            self._futures.add(fut)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut):
        with self._lock:
            self._futures.discard(fut)
        if self._slots is not None:
            self._slots.release()

    def _check_open(self):
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """Like ``concurrent.futures.Executor.map``: the results of
        ``fn(*args)`` for ``args`` in ``zip(*iterables)``, in order. The
        function is registered once. Without ``max_pending`` every call is
        submitted now; with it, the first ``max_pending`` are, and the rest
        as results are taken. The iterator raises the first failure when it
        reaches it, and ``TimeoutError`` when ``timeout`` seconds from this
        call have passed. ``chunksize`` is accepted and ignored."""
        end = None if timeout is None else time.monotonic() + timeout
        self._check_open()
        handle = self._client._resolve(fn, self._isolation, **self._bundling)
        calls = deque(zip(*iterables))
        if self._max_pending is None:
            futures = []
            try:
                while calls:
                    futures.append(self._submit_handle(handle, calls.popleft(), {}))
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
            return _results_in_order(futures, end)
        window = deque()
        try:
            while calls and len(window) < self._max_pending:
                window.append(self._submit_handle(handle, calls.popleft(), {}))
        except BaseException:
            for f in window:
                f.cancel()
            raise
        return self._windowed(handle, calls, window, end)

    def _windowed(self, handle, calls, window, end):
        try:
            while window:
                fut = window.popleft()
                try:
                    value = fut.result() if end is None else fut.result(end - time.monotonic())
                finally:
                    fut.cancel()
                if calls:
                    window.append(self._submit_handle(handle, calls.popleft(), {}))
                yield value
        finally:
            for f in window:
                f.cancel()

    def shutdown(self, wait=True, *, cancel_futures=False):
        """No new submissions after this. ``cancel_futures`` cancels every
        pending task (on the server too); ``wait`` blocks until every future is done.
        An executor made from a URL closes its client when ``wait`` is
        true (with ``wait=False`` the client's threads end once its
        futures are done)."""
        with self._lock:
            self._shutdown = True
            futures = list(self._futures)
        if cancel_futures:
            for f in futures:
                f.cancel()
        if wait:
            concurrent.futures.wait(futures)
            if self._owns_client:
                self._client.close()

    def __repr__(self):
        return "<wasmfaas.Executor %s>" % self._client.url
