"""koyeb-auth: one `auth=` object for the Koyeb API.

`KoyebAuth` is an httpx.Auth (sync and async) and a requests auth; adapters take it to niquests,
httpx2, aiohttp and Koyeb's own SDK, and `KoyebAuth.authorize()` to any other client.

Importing the package loads only its errors: each other name loads its module on first use
(PEP 562), so `koyeb-auth token` can print a cached token without importing httpx or requests.
"""

from typing import TYPE_CHECKING, Any

from ._moved import install as _install_moved
from ._version import __version__
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

if TYPE_CHECKING:
    from ._authorization import Authorization
    from ._token import Token, TokenState
    from .auth import KoyebAuth
    from .events import TokenEvent
    from .integrations.aiohttp import KoyebAuthMiddleware as KoyebAuthMiddleware
    from .integrations.httpx2 import Httpx2KoyebAuth as Httpx2KoyebAuth
    from .integrations.niquests import NiquestsAsyncKoyebAuth
    from .integrations.sdk import async_sdk_client as async_sdk_client
    from .integrations.sdk import sdk_client as sdk_client
    from .integrations.sdk import sdk_configuration as sdk_configuration
    from .stores import AsyncTokenStore, FileTokenStore, MemoryTokenStore, TokenStore
    from .stores import RedisTokenStore as RedisTokenStore

_install_moved()

_CORE = {
    "KoyebAuth": "auth",
    "Authorization": "_authorization",
    "TokenEvent": "events",
    "FileTokenStore": "stores",
    "NiquestsAsyncKoyebAuth": "integrations.niquests",
    "AsyncTokenStore": "stores",
    "MemoryTokenStore": "stores",
    "TokenStore": "stores",
    "Token": "_token",
    "TokenState": "_token",
}
# The integrations need an extra each. They are left out of __all__, so that `from koyeb_auth import *`
# works whichever extras are installed; using one without its extra raises MissingExtraError.
_INTEGRATIONS = {
    "RedisTokenStore": "stores",
    "Httpx2KoyebAuth": "integrations.httpx2",
    "KoyebAuthMiddleware": "integrations.aiohttp",
    "sdk_client": "integrations.sdk",
    "async_sdk_client": "integrations.sdk",
    "sdk_configuration": "integrations.sdk",
}
_LAZY = {**_CORE, **_INTEGRATIONS}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'koyeb_auth' has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only when a lazy name is first used

    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
    "InvalidCredentialsError",
    "KoyebAuth",
    "KoyebAuthError",
    "LeaseLostError",
    "LockTimeoutError",
    "MemoryTokenStore",
    "MissingExtraError",
    "NiquestsAsyncKoyebAuth",
    "OrganizationDeactivatedError",
    "RateLimitedError",
    "StoreUnavailableError",
    "Token",
    "TokenEvent",
    "TokenState",
    "TokenStore",
    "TokenStoreError",
    "__version__",
]
