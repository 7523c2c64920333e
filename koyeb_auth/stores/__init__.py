"""Where tokens are shared, and the lock that makes their renewal single-flight.

`TokenStore` (and `AsyncTokenStore`, its coroutine face) is the protocol a store implements; the
stores are `FileTokenStore` (the default: a cache file and a lock file, shared by the processes of
one user), `MemoryTokenStore` (one process) and `RedisTokenStore` (hosts sharing a Redis; needs the
`redis` extra).

Each name loads its module on first use (PEP 562): a warm `koyeb-auth token` imports the file
store alone, and with it this package, which must then load nothing else (not logging).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._file import FileTokenStore
    from ._memory import MemoryTokenStore
    from ._protocol import AsyncTokenStore, TokenStore
    from ._redis import RedisTokenStore as RedisTokenStore

_LAZY = {
    "AsyncTokenStore": "_protocol",
    "TokenStore": "_protocol",
    "FileTokenStore": "_file",
    "MemoryTokenStore": "_memory",
    "RedisTokenStore": "_redis",  # needs the redis extra, so it is left out of __all__
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'koyeb_auth.stores' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only when a name is first used

    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["AsyncTokenStore", "FileTokenStore", "MemoryTokenStore", "TokenStore"]
