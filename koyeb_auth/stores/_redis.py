"""A token store in Redis, for fleets whose workers share no disk.

Single-flight across hosts comes from one lock key with a lease: a holder that crashed blocks the
fleet for at most the lease, and a watchdog extends the lease while a live holder works. Each lock
carries a fencing number, and every write checks in Redis, atomically, that the lock is still ours
and that no newer holder wrote first: a holder that was paused past its lease cannot overwrite a
newer token. Every call keeps to `timeout` (see `_redis_connection`); a Redis that does not answer
in time raises StoreUnavailableError. The scripts, and how they survive tampered keys, are in
`_redis_scripts`; the watchdog and the releases that outlive a cancelled caller in `_redis_lease`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import secrets
import time
from typing import Any

from .._engine import on_asyncio
from .._extras import require
from .._logs import logger
from .._secrets import Redacted
from .._token import Token, entry_from_token, token_from_entry
from ..errors import ConfigurationError, LeaseLostError, StoreUnavailableError, TokenStoreError
from ..stores import _redis_scripts as scripts
from ._redis_connection import Calls, Late, client_from_url, cut_when_stuck, where
from ._redis_lease import Hold, release_soon, watch

require("redis", "redis", "RedisTokenStore")
# After the check, so that a missing redis-py is reported with the extra that installs it.
import redis  # noqa: E402

log = logger()

# Calls are rare (the warm path makes none): a few connections serve every thread and event loop.
MAX_CONNECTIONS = 4
# The largest entry read: a token is a few hundred bytes. A larger value is not even transferred.
MAX_ENTRY_BYTES = 16 << 10

Command = tuple[str, list[str], list[Any]]  # a script, its keys, its arguments


class RedisTokenStore:
    """Tokens shared through Redis by every process on every host that uses the same `namespace`.

    ```python
    store = RedisTokenStore("rediss://koyeb-auth:secret@redis.internal:6380/0")
    auth = KoyebAuth(store=store)
    ```

    `lease` bounds how long a crashed lock holder blocks the fleet; a watchdog extends it while a
    live holder renews. `timeout` bounds every Redis call, connection included; `lease` must be at
    least twice as long. Pass `client=` (a `redis.Redis`, or a `RedisCluster`) to reuse
    connections you configured yourself; async callers then run its calls in worker threads, or on
    `async_client=` (its `redis.asyncio` twin) if you pass one. Key names hold only a keyed hash of
    the credentials; the token is the only secret stored. A store built from a URL pickles as its
    URL and settings.
    """

    lease: float
    """Seconds a lock lasts unless its holder's watchdog extends it (KoyebAuth warns when a renewal may outlast it)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        async_client: Any = None,
        namespace: str = "koyeb-auth",
        lease: float = 60.0,
        timeout: float = 2.0,
    ) -> None:
        """A store on the Redis at `url`, or on your `client`: one of the two, not both.

        - `url`: `redis://` or `rediss://` (TLS), with its password if any; never shown in a repr.
        - `client`, `async_client`: a `redis.Redis` (or `RedisCluster`) of yours, and optionally its
          `redis.asyncio` twin for async callers; this store does not close them.
        - `namespace`: stores with the same namespace share tokens and the lock; another keeps apart.
        - `lease`: seconds a lock lasts unless its live holder's watchdog extends it: how long a crashed
          holder can block the fleet.
        - `timeout`: seconds each Redis call may take, connecting included, then StoreUnavailableError.

        Raises ConfigurationError for both or neither of `url` and `client`, a URL it cannot use
        (without showing it), a `timeout` that is not positive, or a `lease` shorter than two
        `timeout`s. Connects at the first call, not here.
        """
        url = Redacted(url) if url is not None else None  # it holds Redis's password: never in a repr
        if (url is None) == (client is None):
            raise ConfigurationError("Pass RedisTokenStore either a Redis URL or client=, not both.")
        if not timeout > 0 or not lease >= 2 * timeout:
            raise ConfigurationError("RedisTokenStore's timeout must be > 0 seconds and its lease at least twice "
                                     "the timeout, so that the watchdog's calls can extend the lease in time.")
        self._url, self._namespace, self._timeout = url, namespace, timeout
        self._client = client_from_url(url, timeout, MAX_CONNECTIONS) if url is not None else client
        self._async_client = async_client
        self._calls = Calls(MAX_CONNECTIONS)
        self.lease = float(lease)  # read by KoyebAuth, which warns when a renewal may outlast it
        self._lease_ms = math.ceil(lease * 1000)
        # The braces are a Redis Cluster hash tag: every key of a namespace lands in one slot, as
        # the scripts, which touch the lock and a token together, require there.
        self._prefix = f"{{{namespace}}}:v2"
        self._where = where(url, self._client)
        self._held: Hold | None = None

    def __repr__(self) -> str:
        # Also while __init__ runs: a traceback that shows locals reprs `self` there.
        return f"RedisTokenStore({getattr(self, '_where', 'being built')!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        if self._url is None:
            raise ConfigurationError("A RedisTokenStore built from client= cannot be pickled (its client holds "
                                     "connections): build it from a URL to share it with other processes.")
        return (_from_url, (self._url, self._namespace, self.lease, self._timeout))

    # --- the TokenStore protocol ------------------------------------------------------------------

    def load(self, key: str) -> Token | None:
        """The token under `key`, or None (none, expired, or unreadable: a warning is logged).

        Raises StoreUnavailableError when Redis does not answer within `timeout`.
        """
        return self._parse(self._run(self._load(key)))

    def save(self, key: str, token: Token) -> None:
        """Write `token` under `key`, to expire with it, if the lock is still ours.

        Raises LeaseLostError, writing nothing, if the lease ran out or a newer holder wrote first.
        """
        self._saved(self._run(self._save(key, token)))

    def delete(self, key: str) -> None:
        """Remove the token under `key` while the lock is ours; LeaseLostError if its lease ran out."""
        self._deleted(self._run(self._delete(key)))

    def try_lock(self) -> bool:
        """Take the lock if it is free; never wait. A watchdog extends its lease while it is held.

        An attempt that fails, times out or is interrupted leaves no lock behind.
        """
        owner = secrets.token_hex(8)
        try:
            reply = self._run(self._lock(owner))
        except BaseException:
            self._abandon(owner)
            raise
        return self._locked(owner, reply)

    def unlock(self) -> None:
        """Release the lock and stop its watchdog."""
        if (hold := self._let_go()) is not None:
            try:
                self._run(self._release(hold.owner, tombstone_ms=0))
            except TokenStoreError:
                self._abandon(hold.owner)
                raise

    # --- the AsyncTokenStore protocol: the same commands, awaited ---------------------------------

    async def aload(self, key: str) -> Token | None:
        """`load` for coroutines (asyncio only: ConfigurationError under trio)."""
        return self._parse(await self._arun(self._load(key)))

    async def asave(self, key: str, token: Token) -> None:
        """`save` for coroutines (asyncio only)."""
        self._saved(await self._arun(self._save(key, token)))

    async def adelete(self, key: str) -> None:
        """`delete` for coroutines (asyncio only)."""
        self._deleted(await self._arun(self._delete(key)))

    async def atry_lock(self) -> bool:
        """`try_lock` for coroutines (asyncio only); a cancelled attempt leaves no lock."""
        owner = secrets.token_hex(8)
        try:
            reply = await self._arun(self._lock(owner))
        except BaseException:  # CancelledError too: the README promises a cancelled task holds nothing
            self._abandon(owner)
            raise
        return self._locked(owner, reply)

    async def aunlock(self) -> None:
        """`unlock` for coroutines (asyncio only); the release happens even if the task is cancelled."""
        if (hold := self._let_go()) is not None:
            try:
                # In a worker thread even with async_client=: a cancelled task's release still happens.
                await self._arun(self._release(hold.owner, tombstone_ms=0), on_loop=False)
            except TokenStoreError:
                self._abandon(hold.owner)
                raise

    def close(self) -> None:
        """Close the connections this store opened (not those of a client you passed)."""
        if self._url is not None:
            self._client.close()

    async def aclose(self) -> None:
        """`close`, for symmetry with the async face (its connections are the same)."""
        self.close()

    # --- commands, and their replies --------------------------------------------------------------

    @property
    def _lock_key(self) -> str:
        return f"{self._prefix}:lock"

    def _token_key(self, key: str) -> str:
        # Keyed by the namespace: a key name read from one deployment cannot be matched against a
        # table of guessed accounts computed once for every deployment.
        keyed = hmac.new(self._namespace.encode(), key.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{self._prefix}:token:{keyed}"

    def _load(self, key: str) -> Command:
        return (scripts.LOAD, [self._token_key(key)], [MAX_ENTRY_BYTES])

    def _save(self, key: str, token: Token) -> Command:
        value, fence = (self._held.value, self._held.fence) if self._held else ("", 0)
        # The script closes the entry with the fence it writes. Redacted: the entry holds the token,
        # and the command's arguments sit in the locals of every frame that runs it.
        entry = Redacted(json.dumps(entry_from_token(token))[:-1])
        # The key lives exactly as long as the token: an expired token is never handed out.
        ttl_ms = max(1, math.ceil((token.expires_at - time.time()) * 1000)) if token.expires_at else 0
        keys = [self._lock_key, self._token_key(key), f"{self._prefix}:fence"]
        return (scripts.SAVE, keys, [value, fence, entry, ttl_ms])

    def _delete(self, key: str) -> Command:
        return (scripts.DELETE, [self._lock_key, self._token_key(key)], [self._held.value if self._held else ""])

    def _lock(self, owner: str) -> Command:
        keys = [self._lock_key, f"{self._prefix}:fence", f"{self._prefix}:abandoned:{owner}"]
        return (scripts.LOCK, keys, [owner, self._lease_ms])

    def _let_go(self) -> Hold | None:
        hold, self._held = self._held, None
        if hold is not None:
            hold.released.set()  # stops the watchdog
        return hold

    def _release(self, owner: str, tombstone_ms: int) -> Command:
        return (scripts.RELEASE, [self._lock_key, f"{self._prefix}:abandoned:{owner}"], [owner, tombstone_ms])

    def _abandon(self, owner: str) -> None:
        # An attempt that failed, timed out or was cancelled may have taken the lock, or may still be
        # on its way to Redis: release it, and leave a tombstone that makes a late attempt take
        # nothing (for two leases: longer than any lock it could leave). Released in the
        # background, so the caller keeps to its timeout, and retried until Redis answers.
        release = self._release(owner, tombstone_ms=2 * self._lease_ms)
        release_soon(lambda: self._run(release), until=time.monotonic() + self.lease, grace=self._timeout)

    def _locked(self, owner: str, reply: list[Any]) -> bool:
        fence, note = int(reply[0]), _text(reply[1])
        if note:
            log.warning("Replaced %s in %r: a tampered or damaged key", note, self)
        if not fence:
            return False
        self._held = hold = Hold(owner, fence, self._lease_ms)
        # A renewal makes up to two API calls: the watchdog extends the lease while it runs, every
        # third of it, for at most four leases in all (a holder alive but stuck must not block the
        # fleet for ever; a paused one pauses its watchdog too, and fencing keeps its write out).
        watch(hold, self._extend, every=self.lease / 3, times=9)
        return True

    def _extend(self, value: str) -> bool:
        return bool(self._run((scripts.EXTEND, [self._lock_key], [value, self._lease_ms])))

    def _saved(self, outcome: int) -> None:
        if outcome == 2:
            log.warning("The fencing counter in %r was lost (deleted or evicted); restored above the stored token's",
                        self)
        elif outcome != 1:
            why = "a newer holder already wrote" if outcome == -1 else "its lease ran out"
            raise LeaseLostError(f"Did not write the token to {self!r}: {why} (lease {self.lease:g} s).")

    def _deleted(self, outcome: int) -> None:
        if outcome != 1:
            raise LeaseLostError(f"Did not delete the token from {self!r}: the lock's lease ran out.")

    def _parse(self, raw: bytes | str | int | None) -> Token | None:
        if raw is None:
            return None
        try:
            entry = json.loads(raw) if isinstance(raw, (bytes, str)) else None
        except ValueError:
            entry = None
        # The checks an API reply gets: anyone who can write the key chooses what we would send.
        token = token_from_entry(entry)
        if token is None:
            log.warning("Ignoring an unreadable token in %r; it will be replaced", self)
        return token

    # --- calls ----------------------------------------------------------------------------------

    def _eval(self, command: Command) -> Any:
        script, keys, args = command
        return lambda: self._client.eval(script, len(keys), *keys, *args)

    def _run(self, command: Command) -> Any:
        deadline = time.monotonic() + self._timeout
        try:
            return self._calls.wait(self._calls.start(self._eval(command), deadline), deadline)
        except Exception as exc:  # all of redis-py's failures (an AttributeError too: a connection cut under it)
            failure = self._failure(exc)
        # Raised outside the handler: a redis error's traceback holds the command, a token entry.
        raise failure

    async def _arun(self, command: Command, on_loop: bool = True) -> Any:
        if not on_asyncio():
            raise ConfigurationError(
                f"{self!r} was used from a coroutine that asyncio does not run (trio?): its async calls need "
                "asyncio. Under trio, use the file store (leave store= out), or call the blocking KoyebAuth "
                "methods in a thread (trio.to_thread.run_sync)."
            )
        deadline = time.monotonic() + self._timeout
        try:
            if on_loop and self._async_client is not None:
                script, keys, args = command
                reply = self._async_client.eval(script, len(keys), *keys, *args)
                return await asyncio.wait_for(reply, self._timeout)
            return await self._calls.await_(self._calls.start(self._eval(command), deadline), deadline)
        except Exception as exc:  # as in _run
            failure = self._failure(exc)
        raise failure

    def _failure(self, exc: Exception) -> TokenStoreError:
        if isinstance(exc, Late) and not exc.busy and self._url is not None:
            cut_when_stuck(self._client, exc.call, self._timeout)
        if isinstance(exc, Late) and exc.busy:
            return StoreUnavailableError(
                f"All {MAX_CONNECTIONS} connections of {self!r} stayed busy for {self._timeout:g} s: too many "
                "callers at once, or a Redis too slow for them. Check Redis's latency, or raise timeout."
            )
        # Not a RedisError: a reply redis-py cannot parse (ValueError), or a connection cut under a
        # call (redis-py then finds its read buffer gone: AttributeError). Its text is not shown.
        unanswered = isinstance(exc, (Late, asyncio.TimeoutError, redis.ConnectionError, redis.TimeoutError)) or \
            not isinstance(exc, redis.RedisError)
        detail = "no reply" if isinstance(exc, (Late, asyncio.TimeoutError)) else (
            f"{type(exc).__name__}: {exc}" if isinstance(exc, redis.RedisError) else type(exc).__name__)
        if unanswered and not isinstance(exc, redis.AuthenticationError):
            return StoreUnavailableError(f"Redis at {self._where} did not answer within {self._timeout:g} s "
                                         f"({detail}). Check that it runs and is reachable.")
        return TokenStoreError(f"Redis at {self._where} refused a token-store command ({detail}).")


def _text(reply: bytes | str) -> str:
    # A client of your own may decode replies (decode_responses=True).
    return reply.decode() if isinstance(reply, bytes) else reply


def _from_url(url: str, namespace: str, lease: float, timeout: float) -> RedisTokenStore:
    """A store rebuilt from its pickled settings."""
    return RedisTokenStore(url, namespace=namespace, lease=lease, timeout=timeout)
