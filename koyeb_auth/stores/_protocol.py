"""The protocols a token store implements, and what KoyebAuth asks of any store."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .._logs import logger
from .._token import Token

__all__ = ["AsyncTokenStore", "TokenStore", "async_face", "check_lease"]

log = logger()


class TokenStore(Protocol):
    """A place to share tokens between processes, with one exclusive lock.

    Write your own by implementing these five methods. `save` and `delete` are only called while
    the lock is held; `load` may be called without it, so a store must never expose a
    half-written token. Raise a `TokenStoreError` subclass for a store that cannot be used.
    A store that talks to the network should also implement `AsyncTokenStore`, so that async
    callers never block their event loop on it.

    A store whose lock ends on its own after a while (a lease, as in Redis) may say how long with
    a `lease` attribute, in seconds: KoyebAuth then warns when a renewal, which makes up to two API
    calls of its `timeout`, could outlast it (see `check_lease`).
    """

    def load(self, key: str) -> Token | None:
        """The token saved under `key` (a hash of API URL, account, organization), or None if there is none.

        May be called without the lock: never return a half-written token. An entry that cannot be read
        is a miss (None), which the next saved token replaces.
        """

    def save(self, key: str, token: Token) -> None:
        """Keep `token` under `key`, replacing the one there; called only while the lock is held."""

    def delete(self, key: str) -> None:
        """Forget the token under `key` (a logout); called only while the lock is held."""

    def try_lock(self) -> bool:
        """Take the lock if it is free; never wait."""
        ...

    def unlock(self) -> None:
        """Release the lock `try_lock` took."""


@runtime_checkable
class AsyncTokenStore(Protocol):
    """The coroutine face of a store, used by async callers when a store has one."""

    async def aload(self, key: str) -> Token | None:
        """`TokenStore.load` for coroutines: never blocks the event loop."""

    async def asave(self, key: str, token: Token) -> None:
        """`TokenStore.save` for coroutines."""

    async def adelete(self, key: str) -> None:
        """`TokenStore.delete` for coroutines."""

    async def atry_lock(self) -> bool:
        """`TokenStore.try_lock` for coroutines: never waits for the lock."""

    async def aunlock(self) -> None:
        """`TokenStore.unlock` for coroutines."""


class _LocalStoreAsync:
    """The async face of a store whose every call is local and short (memory, a local file)."""

    def __init__(self, store: TokenStore) -> None:
        self._store = store

    async def aload(self, key: str) -> Token | None:
        return self._store.load(key)

    async def asave(self, key: str, token: Token) -> None:
        self._store.save(key, token)

    async def adelete(self, key: str) -> None:
        self._store.delete(key)

    async def atry_lock(self) -> bool:
        return self._store.try_lock()

    async def aunlock(self) -> None:
        self._store.unlock()


def check_lease(store: TokenStore, timeout: float) -> None:
    """Warn if the store's lock lease (its optional `lease` attribute) is shorter than a renewal may take."""
    lease = getattr(store, "lease", None)
    if isinstance(lease, (int, float)) and lease < 2 * timeout:
        # Not an error: a store may extend a lease while its holder works (RedisTokenStore does).
        # But a holder paused for longer than the lease loses the lock, and its token is not shared.
        log.warning("The token lock of %r has a %g s lease, shorter than a renewal may take (two API calls of "
                    "timeout=%g s): raise the store's lease above %g s, or lower timeout", store, lease, timeout,
                    2 * timeout)


def async_face(store: TokenStore) -> AsyncTokenStore:
    return store if isinstance(store, AsyncTokenStore) else _LocalStoreAsync(store)
