"""The in-memory store: tokens shared by the KoyebAuth objects of one process only."""

from __future__ import annotations

import threading
from typing import Any, NoReturn

from .._token import Token
from ..errors import ConfigurationError

__all__ = ["MemoryTokenStore"]


class MemoryTokenStore:
    """Tokens shared between the KoyebAuth objects of one process only.

    It does not pickle: it cannot share anything with another process, and a copy that started
    empty would make each worker of a pool log in by itself, silently, where the file store (the
    default) or RedisTokenStore gives the pool one login. A copy within the process (`copy.copy`,
    `copy.deepcopy`, which a copied KoyebAuth does not even ask for) is the store itself: a store
    is a place to share tokens, and a second one would share nothing.
    """

    def __init__(self) -> None:
        """An empty store, with a lock of its own."""
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
        """The token kept under `key`, or None."""
        return self._tokens.get(key)

    def save(self, key: str, token: Token) -> None:
        """Keep `token` under `key`."""
        self._tokens[key] = token

    def delete(self, key: str) -> None:
        """Forget the token under `key`, if any."""
        self._tokens.pop(key, None)

    def try_lock(self) -> bool:
        """Take the lock if it is free; never wait."""
        return self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        """Release the lock `try_lock` took."""
        self._lock.release()
