"""A token store in Redis, for fleets whose workers share no disk.

Single-flight across hosts comes from one lock key with a lease: `SET NX PX`, so a holder that
crashed blocks the fleet for at most the lease. Each lock carries a fencing number (an `INCR`),
and every write checks in Redis, atomically, that the lock is still ours and that no newer holder
wrote first: a holder that was paused past its lease cannot overwrite a newer token. Every call
has a timeout; a Redis that does not answer raises StoreUnavailableError.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
import weakref
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, LeaseLostError, StoreUnavailableError, TokenStoreError
from .extras import require
from .token import Token, entry_from_token, token_from_entry

require("redis", "redis", "RedisTokenStore")
# After the check, so that a missing redis-py is reported with the extra that installs it.
import redis  # noqa: E402
import redis.asyncio  # noqa: E402
import redis.backoff  # noqa: E402

log = logging.getLogger("koyeb_auth")

# KEYS: lock, fence counter. ARGV: owner, lease in ms. Returns the fencing number, or 0 if taken.
_LOCK = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
return fence
"""
# KEYS: lock, token. ARGV: lock value, fence, entry, time to live in ms (0: none).
# 1 written; 0 our lease ran out; -1 a holder with a newer fence already wrote.
_SAVE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local old = redis.call('GET', KEYS[2])
if old then
  local ok, entry = pcall(cjson.decode, old)
  if ok and type(entry) == 'table' and tonumber(entry['fence']) and tonumber(entry['fence']) > tonumber(ARGV[2]) then
    return -1
  end
end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[2], ARGV[3])
end
return 1
"""
# KEYS: lock, token. ARGV: lock value. 1 deleted; 0 our lease ran out.
_DELETE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
return 1
"""
# KEYS: lock. ARGV: lock value. Deletes the lock only if it is still ours.
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

Client = Any  # redis.Redis or redis.asyncio.Redis: their command methods share one signature


class RedisTokenStore:
    """Tokens shared through Redis by every process on every host that uses the same `namespace`.

    ```python
    store = RedisTokenStore("rediss://koyeb-auth:secret@redis.internal:6380/0")
    auth = KoyebAuth(store=store)
    ```

    `lease` bounds how long a crashed lock holder blocks the fleet; keep it above twice
    KoyebAuth's `timeout` (a renewal makes at most two API calls). `timeout` bounds every Redis
    call. Pass `client=` (a `redis.Redis`, or a `RedisCluster`) and `async_client=` (its
    `redis.asyncio` twin) to reuse connections you configured yourself; with `client=` alone, async
    callers run its calls in a worker thread. Key names hold only a hash of the credentials; the
    token is the only secret stored.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        async_client: Any = None,
        namespace: str = "koyeb-auth",
        lease: float = 30.0,
        timeout: float = 2.0,
    ) -> None:
        if (url is None) == (client is None):
            raise ConfigurationError("Pass RedisTokenStore either a Redis URL or client=, not both.")
        if lease <= 0 or timeout <= 0:
            raise ConfigurationError("RedisTokenStore's lease and timeout must be > 0 seconds.")
        self._url = url
        self._options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        if client is None:
            assert url is not None
            # One immediate retry heals a pooled connection that Redis closed; more would only
            # stretch the time a caller waits on a Redis that is down.
            client = redis.Redis.from_url(url, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 1), **self._options)
        self._client = client
        self._async_client = async_client
        self._loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        # The braces are a Redis Cluster hash tag: every key of a namespace lands in one slot, as
        # the scripts, which touch the lock and a token together, require there.
        self._prefix = f"{{{namespace}}}:v1"
        self._lease_ms = math.ceil(lease * 1000)
        self._timeout = timeout
        self._where = _where(url, self._client)
        self._held: tuple[str, int] | None = None  # our lock value and fencing number

    def __repr__(self) -> str:
        return f"RedisTokenStore({self._where!r})"

    # --- the TokenStore protocol ------------------------------------------------------------------

    def load(self, key: str) -> Token | None:
        return self._parse(self._sync(lambda c: c.get(self._token_key(key))))

    def save(self, key: str, token: Token) -> None:
        self._saved(self._sync(lambda c: c.eval(_SAVE, 2, *self._save_args(key, token))))

    def delete(self, key: str) -> None:
        self._deleted(self._sync(lambda c: c.eval(_DELETE, 2, self._lock_key, self._token_key(key), self._lock_value)))

    def try_lock(self) -> bool:
        owner = secrets.token_hex(8)
        return self._locked(owner, self._sync(lambda c: c.eval(_LOCK, 2, *self._lock_args(owner))))

    def unlock(self) -> None:
        value, self._held = self._lock_value, None
        self._sync(lambda c: c.eval(_UNLOCK, 1, self._lock_key, value))

    # --- the AsyncTokenStore protocol: the same commands through redis.asyncio ----------------------

    async def aload(self, key: str) -> Token | None:
        return self._parse(await self._async(lambda c: c.get(self._token_key(key))))

    async def asave(self, key: str, token: Token) -> None:
        self._saved(await self._async(lambda c: c.eval(_SAVE, 2, *self._save_args(key, token))))

    async def adelete(self, key: str) -> None:
        self._deleted(
            await self._async(lambda c: c.eval(_DELETE, 2, self._lock_key, self._token_key(key), self._lock_value))
        )

    async def atry_lock(self) -> bool:
        owner = secrets.token_hex(8)
        return self._locked(owner, await self._async(lambda c: c.eval(_LOCK, 2, *self._lock_args(owner))))

    async def aunlock(self) -> None:
        value, self._held = self._lock_value, None
        await self._async(lambda c: c.eval(_UNLOCK, 1, self._lock_key, value))

    def close(self) -> None:
        """Close the connections this store opened (not those of a client you passed)."""
        if self._url is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close this event loop's connections, then the blocking ones."""
        loop_client = self._loop_clients.pop(asyncio.get_running_loop(), None)
        if loop_client is not None:
            await loop_client.aclose()
        self.close()

    # --- commands and their replies, shared by both faces ---------------------------------------

    @property
    def _lock_key(self) -> str:
        return f"{self._prefix}:lock"

    def _token_key(self, key: str) -> str:
        return f"{self._prefix}:token:{key}"

    @property
    def _lock_value(self) -> str:
        return self._held[0] if self._held else ""

    def _lock_args(self, owner: str) -> tuple[str, str, str, int]:
        return (self._lock_key, f"{self._prefix}:fence", owner, self._lease_ms)

    def _locked(self, owner: str, fence: int) -> bool:
        if fence:
            self._held = (f"{owner}:{fence}", int(fence))
        return bool(fence)

    def _save_args(self, key: str, token: Token) -> tuple[str, str, str, int, str, int]:
        fence = self._held[1] if self._held else 0
        entry = json.dumps({**entry_from_token(token), "fence": fence})
        # The key lives exactly as long as the token: an expired token is never handed out.
        ttl_ms = max(1, math.ceil((token.expires_at - time.time()) * 1000)) if token.expires_at else 0
        return (self._lock_key, self._token_key(key), self._lock_value, fence, entry, ttl_ms)

    def _saved(self, outcome: int) -> None:
        if outcome != 1:
            why = "a newer holder already wrote" if outcome == -1 else "its lease ran out"
            raise LeaseLostError(f"Did not write the token to {self!r}: {why} (lease {self._lease_ms} ms).")

    def _deleted(self, outcome: int) -> None:
        if outcome != 1:
            raise LeaseLostError(f"Did not delete the token from {self!r}: the lock's lease ran out.")

    def _parse(self, raw: bytes | None) -> Token | None:
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
        except ValueError:
            entry = None
        token = token_from_entry(entry) if isinstance(entry, dict) else None
        if token is None:
            log.warning("Ignoring an unreadable token in %r; it will be replaced", self)
        return token

    # --- calls ----------------------------------------------------------------------------------

    def _sync(self, command: Callable[[Client], Any]) -> Any:
        try:
            return command(self._client)
        except redis.RedisError as exc:
            raise self._failure(exc) from None

    async def _async(self, command: Callable[[Client], Any]) -> Any:
        try:
            client = self._client_for_loop()
            if client is None:
                # Only a blocking client was given: keep its round trips off the event loop.
                return await asyncio.to_thread(command, self._client)
            return await command(client)
        except redis.RedisError as exc:
            raise self._failure(exc) from None

    def _client_for_loop(self) -> Any:
        if self._async_client is not None or self._url is None:
            return self._async_client
        # A redis.asyncio client's connections belong to the loop that opened them.
        loop = asyncio.get_running_loop()
        client = self._loop_clients.get(loop)
        if client is None:
            client = redis.asyncio.Redis.from_url(
                self._url, retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 1), **self._options
            )
            self._loop_clients[loop] = client
        return client

    def _failure(self, exc: Exception) -> TokenStoreError:
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)) and not isinstance(
            exc, redis.AuthenticationError
        ):
            return StoreUnavailableError(
                f"Redis at {self._where} did not answer within {self._timeout:g} s ({type(exc).__name__}: {exc}). "
                "Check that it runs and is reachable."
            )
        return TokenStoreError(f"Redis at {self._where} refused a token-store command ({type(exc).__name__}: {exc}).")


def _where(url: str | None, client: Any) -> str:
    """Where the store lives, for messages: scheme, host, port and database, never credentials."""
    if url is not None:
        parts = urlsplit(url)
        host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname or parts.path)
        return f"{parts.scheme}://{host}{parts.path if parts.hostname else ''}"
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        return f"a {type(client).__name__} client"
    return f"redis://{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}/{kwargs.get('db', 0)}"
