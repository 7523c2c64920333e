"""Token stores: where a token is shared, and the lock that makes its renewal single-flight.

This module holds the protocols a store implements and the in-memory store. The default store,
a file shared by the processes of one user, is in `file_store`; the Redis store in `redis_store`.
"""

from __future__ import annotations

import threading
from typing import Any, NoReturn, Protocol, runtime_checkable

from .errors import ConfigurationError
from .logs import logger
from .token import Token

__all__ = ["AsyncTokenStore", "MemoryTokenStore", "TokenStore"]

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

    def load(self, key: str) -> Token | None: ...

    def save(self, key: str, token: Token) -> None: ...

    def delete(self, key: str) -> None: ...

    def try_lock(self) -> bool:
        """Take the lock if it is free; never wait."""
        ...

    def unlock(self) -> None: ...


@runtime_checkable
class AsyncTokenStore(Protocol):
    """The coroutine face of a store, used by async callers when a store has one."""

    async def aload(self, key: str) -> Token | None: ...

    async def asave(self, key: str, token: Token) -> None: ...

    async def adelete(self, key: str) -> None: ...

    async def atry_lock(self) -> bool: ...

    async def aunlock(self) -> None: ...


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


class MemoryTokenStore:
    """Tokens shared between the KoyebAuth objects of one process only.

    It does not pickle: it cannot share anything with another process, and a copy that started
    empty would make each worker of a pool log in by itself, silently, where the file store (the
    default) or RedisTokenStore gives the pool one login. A copy within the process (`copy.copy`,
    `copy.deepcopy`, which a copied KoyebAuth does not even ask for) is the store itself: a store
    is a place to share tokens, and a second one would share nothing.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "MemoryTokenStore()"

    def __reduce__(self) -> NoReturn:
        raise ConfigurationError(
            "A MemoryTokenStore cannot be pickled: it keeps tokens in one process, and a copy in another "
            "would share nothing (each worker would log in by itself). Use the file store (the default: "
            "leave store= out) or a RedisTokenStore to share tokens between processes."
        )

    def __copy__(self) -> MemoryTokenStore:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> MemoryTokenStore:
        return self

    def load(self, key: str) -> Token | None:
        return self._tokens.get(key)

    def save(self, key: str, token: Token) -> None:
        self._tokens[key] = token

    def delete(self, key: str) -> None:
        self._tokens.pop(key, None)

    def try_lock(self) -> bool:
        return self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        self._lock.release()
