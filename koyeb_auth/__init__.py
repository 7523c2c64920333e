"""koyeb-auth: one `auth=` object for the Koyeb API.

`KoyebAuth` is an httpx.Auth (sync and async) and a requests auth; adapters take it to niquests,
httpx2, aiohttp and Koyeb's own SDK, and `KoyebAuth.authorize()` to any other client.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .auth import KoyebAuth
from .authorization import Authorization
from .errors import (
    AccessDeniedError,
    AccountLockedError,
    APIError,
    APIUnreachableError,
    CacheFileError,
    ConfigurationError,
    EndpointWithdrawnError,
    InvalidCredentialsError,
    KoyebAuthError,
    LeaseLostError,
    LockTimeoutError,
    MissingExtraError,
    OrganizationDeactivatedError,
    RateLimitedError,
    StoreUnavailableError,
    TokenStoreError,
)
from .events import TokenEvent
from .file_store import FileTokenStore
from .niquests_auth import NiquestsAsyncKoyebAuth
from .store import AsyncTokenStore, MemoryTokenStore, TokenStore
from .token import Token, TokenState

if TYPE_CHECKING:
    from .aiohttp_middleware import KoyebAuthMiddleware
    from .httpx2_auth import Httpx2KoyebAuth
    from .redis_store import RedisTokenStore
    from .sdk import async_sdk_client, sdk_client, sdk_configuration


# Integrations load on first use, so `import koyeb_auth` needs none of their packages.
_LAZY = {
    "RedisTokenStore": "redis_store",
    "Httpx2KoyebAuth": "httpx2_auth",
    "KoyebAuthMiddleware": "aiohttp_middleware",
    "sdk_client": "sdk",
    "async_sdk_client": "sdk",
    "sdk_configuration": "sdk",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'koyeb_auth' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


__all__ = [
    "APIError",
    "APIUnreachableError",
    "AccessDeniedError",
    "AccountLockedError",
    "AsyncTokenStore",
    "Authorization",
    "CacheFileError",
    "ConfigurationError",
    "EndpointWithdrawnError",
    "FileTokenStore",
    "Httpx2KoyebAuth",
    "InvalidCredentialsError",
    "KoyebAuth",
    "KoyebAuthError",
    "KoyebAuthMiddleware",
    "LeaseLostError",
    "LockTimeoutError",
    "MemoryTokenStore",
    "MissingExtraError",
    "NiquestsAsyncKoyebAuth",
    "OrganizationDeactivatedError",
    "RateLimitedError",
    "RedisTokenStore",
    "StoreUnavailableError",
    "Token",
    "TokenEvent",
    "TokenState",
    "TokenStore",
    "TokenStoreError",
    "__version__",
    "async_sdk_client",
    "sdk_client",
    "sdk_configuration",
]
