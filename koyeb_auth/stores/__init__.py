"""Where tokens are shared, and the lock that makes their renewal single-flight.

`TokenStore` (and `AsyncTokenStore`, its coroutine face) is the protocol a store implements; the
stores are `FileTokenStore` (the default: a cache file and a lock file, shared by the processes of
one user), `MemoryTokenStore` (one process) and `RedisTokenStore` (hosts sharing a Redis; needs the
`redis` extra, so it is imported when first used).
"""

from typing import TYPE_CHECKING, Any

from ._file import FileTokenStore
from ._memory import MemoryTokenStore
from ._protocol import AsyncTokenStore, TokenStore

if TYPE_CHECKING:
    from ._redis import RedisTokenStore as RedisTokenStore


def __getattr__(name: str) -> Any:
    if name != "RedisTokenStore":
        raise AttributeError(f"module 'koyeb_auth.stores' has no attribute {name!r}")
    from ._redis import RedisTokenStore  # noqa: PLC0415 - needs the redis extra

    return RedisTokenStore


__all__ = ["AsyncTokenStore", "FileTokenStore", "MemoryTokenStore", "TokenStore"]
