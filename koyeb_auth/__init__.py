"""koyeb-auth: one `auth=` object for the Koyeb API, for httpx (sync and async) and requests."""

from .auth import KoyebAuth
from .errors import (
    AccessDeniedError,
    AccountLockedError,
    APIError,
    APIUnreachableError,
    CacheFileError,
    ConfigurationError,
    InvalidCredentialsError,
    KoyebAuthError,
    LockTimeoutError,
    OrganizationDeactivatedError,
    RateLimitedError,
)
from .store import FileTokenStore, MemoryTokenStore, TokenStore
from .token import Token

__version__ = "0.1.0"

__all__ = [
    "APIError",
    "APIUnreachableError",
    "AccessDeniedError",
    "AccountLockedError",
    "CacheFileError",
    "ConfigurationError",
    "FileTokenStore",
    "InvalidCredentialsError",
    "KoyebAuth",
    "KoyebAuthError",
    "LockTimeoutError",
    "MemoryTokenStore",
    "OrganizationDeactivatedError",
    "RateLimitedError",
    "Token",
    "TokenStore",
    "__version__",
]
