"""How the Redis store reaches Redis: a client from a checked URL, and calls with a deadline that holds.

Each call runs in a short-lived thread while its caller waits until the deadline: a thread blocks,
a coroutine awaits (the event loop never blocks). The deadline covers everything, which socket
timeouts alone cannot: waiting for a free connection, DNS, connecting, TLS, the command and
redis-py's retry. A call its caller gave up on that still runs a timeout later has its
connection cut (`cut_when_stuck`): a reply that trickles in a byte at a time, each within the
socket timeout, would otherwise keep the thread and its slot for as long as the server likes.

Why threads rather than a redis.asyncio client per event loop: such a client holds its loop, so a
cache of them keyed by loop kept every loop of every `asyncio.run` alive with its connection (60
runs, 60 connections). Here, one bounded pool serves every thread and loop of the process: at most
`limit` calls run at once, so at most `limit` connections are open.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .._extras import require
from ..errors import ConfigurationError

require("redis", "redis", "RedisTokenStore")
import redis  # noqa: E402
import redis.backoff  # noqa: E402
import redis.retry  # noqa: E402


class Call(concurrent.futures.Future[Any]):
    """The future of a call, which knows the thread that runs it (to cut that call's connection alone)."""

    worker: int | None = None


class Late(Exception):
    """The deadline passed; `busy` if the call never got a connection (all were in use), else
    `call` is the future of the call, which may still run."""

    def __init__(self, busy: bool, call: concurrent.futures.Future[Any]) -> None:
        super().__init__("busy" if busy else "late")
        self.busy = busy
        self.call = call


class Calls:
    """Runs blocking calls in threads, at most `limit` at a time, each waited for until a deadline."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pid = -1
        self._slots = threading.BoundedSemaphore(limit)

    def start(self, call: Callable[[], Any], deadline: float) -> Call:
        """Start `call` now (it waits for a free slot until `deadline`); its outcome is the future's."""
        if self._pid != os.getpid():
            # After fork(), a slot held by a thread of the parent would never come back.
            self._pid, self._slots = os.getpid(), threading.BoundedSemaphore(self.limit)
        future = Call()
        thread = threading.Thread(target=_run, args=(call, future, self._slots, deadline), daemon=True,
                                  name="koyeb-auth-redis")
        thread.start()
        future.worker = thread.ident
        return future

    def wait(self, future: concurrent.futures.Future[Any], deadline: float) -> Any:
        """The call's result (or its exception), or Late at the deadline."""
        try:
            return future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except concurrent.futures.TimeoutError:
            pass
        raise _late(future)

    async def await_(self, future: concurrent.futures.Future[Any], deadline: float) -> Any:
        """`wait` for coroutines."""
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), max(deadline - time.monotonic(), 0.0))
        except asyncio.TimeoutError:
            pass
        raise _late(future)


def _late(future: concurrent.futures.Future[Any]) -> Late:
    # A future that can still be cancelled never got a slot (and now never runs).
    return Late(future.cancel(), future)


def cut_when_stuck(client: Any, call: concurrent.futures.Future[Any], after: float) -> None:
    """If the call its caller gave up on still runs `after` seconds later, cut its connection: a
    reply that trickles in a byte at a time, each within the socket timeout, would otherwise hold
    its thread and its slot for as long as the server likes."""
    def cut() -> None:
        pool = client.connection_pool
        if not call.done() and isinstance(pool, _Pool) and isinstance(call, Call) and call.worker is not None:
            pool.cut(call.worker)
            cut_when_stuck(client, call, after)  # redis-py's retry reconnects: it may be stuck again

    timer = threading.Timer(after, cut)
    timer.daemon = True
    timer.start()


class _Pool(redis.ConnectionPool):
    """A pool that knows which thread holds which connection, so that a stuck call's connection can
    be cut alone: disconnecting the whole pool also cut the connections of calls still running in
    other threads, whose parser redis-py then finds gone (AttributeError on its read buffer)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._holders: dict[int, Any] = {}
        self._holders_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        connection = super().get_connection(*args, **kwargs)
        with self._holders_lock:
            self._holders[threading.get_ident()] = connection
        return connection

    def release(self, connection: Any) -> None:
        with self._holders_lock:
            if self._holders.get(threading.get_ident()) is connection:
                del self._holders[threading.get_ident()]
        super().release(connection)

    def cut(self, thread: int) -> None:
        """Disconnect the connection `thread` holds, if it still holds one."""
        # Under the lock: the holder cannot release the connection, and another call take it, meanwhile.
        with self._holders_lock, contextlib.suppress(Exception):  # a last resort, whatever its state
            if (connection := self._holders.get(thread)) is not None:
                connection.disconnect()


def _run(call: Callable[[], Any], future: concurrent.futures.Future[Any], slots: threading.BoundedSemaphore,
         deadline: float) -> None:
    if not slots.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
        return  # the caller, at the same deadline, cancels the future and reports every slot busy
    try:
        if future.set_running_or_notify_cancel():
            try:
                result = call()
            except BaseException as exc:  # handed to the caller, who decides
                future.set_exception(exc)
            else:
                future.set_result(result)
    finally:
        slots.release()


def client_from_url(url: str, timeout: float, max_connections: int) -> Any:
    """A redis-py client for `url`, with at most `max_connections` connections; ConfigurationError
    for a URL it cannot use, which never shows the URL (it holds the password)."""
    problem = _url_problem(url)
    if problem is None and (unusable := _option_problem(url)) is not None:
        raise ConfigurationError(f"The Redis URL given to RedisTokenStore cannot be used: {unusable}.")
    if problem is None:
        try:
            # One immediate retry heals a pooled connection that Redis closed; the caller's deadline
            # covers it.
            pool = _Pool.from_url(url, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 1),
                                  max_connections=max_connections, socket_timeout=timeout,
                                  socket_connect_timeout=timeout)
            # redis-py checks a connection's options only when it opens one, at the first call, with
            # an error whose frames hold the password: build one now (it connects only when used).
            pool.connection_class(**pool.connection_kwargs)
            client = redis.Redis(connection_pool=pool)
            client.auto_close_connection_pool = True  # close() closes the pool, as from_url's would
            return client
        except (ValueError, TypeError, redis.RedisError):
            problem = "redis-py cannot read it"
    # Raised outside the handler, and without the URL: its text holds the password.
    raise ConfigurationError(f"The Redis URL given to RedisTokenStore cannot be used ({problem}). A password "
                             "containing '/', '?', '#' or '@' must be percent-encoded (%2F, %3F, %23, %40).")


# The options of a URL's query that redis-py passes on and the store works with. Any other would
# either reach redis-py's connection only at the first call (`?ssl=true`, `?timeout=1`: a
# TypeError whose frames hold the password), or override the timeout, retry or connection bound
# that the store keeps (`?socket_timeout=`, `?max_connections=`, `?retry_on_error=`).
_OPTIONS = frozenset({"db", "client_name", "lib_name", "lib_version", "protocol", "health_check_interval",
                      "socket_keepalive"})
_TLS_OPTIONS = frozenset({"ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_path", "ssl_ca_data", "ssl_certfile",
                          "ssl_keyfile", "ssl_password", "ssl_check_hostname", "ssl_min_version", "ssl_ciphers"})


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return "its host or port cannot be read"
    if "@" in parts.path + parts.query + parts.fragment:
        return "its user part seems to end early"
    return None


def _option_problem(url: str) -> str | None:
    parts = urlsplit(url)
    allowed = _OPTIONS | _TLS_OPTIONS if parts.scheme.lower() == "rediss" else _OPTIONS
    for name in parse_qs(parts.query, keep_blank_values=True):
        if name not in allowed:
            # The name, never its value (ssl_password=); a name that is no identifier may be text
            # of the password's.
            shown = repr(name) if name.isidentifier() and len(name) <= 40 else "an option"
            if allowed is _OPTIONS and (name in _TLS_OPTIONS or name == "ssl"):
                return f"its option {shown} needs a rediss:// URL (TLS is asked for with rediss://)"
            return (f"RedisTokenStore does not support its option {shown}. Options it takes: "
                    f"{', '.join(sorted(allowed))}; timeouts come from RedisTokenStore(timeout=)")
    return None


def where(url: str | None, client: Any) -> str:
    """Where the store lives, for messages: scheme, host, port and database, never credentials."""
    if url is not None:
        parts = urlsplit(url)
        host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname or parts.path)
        return f"{parts.scheme}://{host}{parts.path if parts.hostname else ''}"
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return f"a {type(client).__name__} client"
    return f"redis://{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}/{kwargs.get('db', 0)}"
