"""Every error koyeb-auth raises: one class per failure a user must tell apart.

Messages say what happened and what to do, carry the server's own message where there is one,
and never contain a token or a password. When what to do is to change a setting, the error carries
it as a `Hint`: the message names the setting as Python spells it (`lock_timeout=`), and the
`koyeb-auth` command names its own flag or environment variable instead (see `cli.CLI_HINTS`).
"""

from __future__ import annotations

import enum


class Hint(enum.Enum):
    """A setting that fixes an error, and the sentence that names it to a Python caller."""

    PASSWORD = "Pass password= or set KOYEB_PASSWORD."
    CREDENTIALS = ("Pass email= and password= or token=, set KOYEB_EMAIL and KOYEB_PASSWORD or KOYEB_TOKEN, "
                   "or run `koyeb login` to write ~/.koyeb.yaml.")
    CACHE_PATH = "Or pass another cache_path."
    LOCK_TIMEOUT = "To wait longer, raise lock_timeout."
    TIMEOUT = "To wait longer, raise timeout."
    CA_CERTIFICATE = "Behind a TLS-inspecting proxy, give its CA certificate (verify=, or SSL_CERT_FILE)."


class KoyebAuthError(Exception):
    """Base class of every error raised by koyeb-auth.

    `problem` is what happened and `hint` the setting that fixes it, if one does; the message is
    both, the hint in Python's terms.
    """

    def __init__(self, problem: str, hint: Hint | None = None) -> None:
        super().__init__(f"{problem} {hint.value}" if hint is not None else problem)
        self.problem = problem
        self.hint = hint


class ConfigurationError(KoyebAuthError):
    """No usable credentials, or a configuration value that cannot be used."""


class InvalidCredentialsError(KoyebAuthError):
    """The API refused the email and password, or the personal access token."""


class AccessDeniedError(KoyebAuthError):
    """The credentials are right but the API will not open a session (HTTP 403)."""


class AccountLockedError(AccessDeniedError):
    """The Koyeb account is locked."""


class OrganizationDeactivatedError(AccessDeniedError):
    """The API answered 401 `Token rejected`: the organization is deactivated."""


class RateLimitedError(KoyebAuthError):
    """The API answered 429. `retry_after` is how many seconds to wait before trying again."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class APIUnreachableError(KoyebAuthError):
    """The API could not be reached: DNS, connection or timeout."""


class APIError(KoyebAuthError):
    """The API failed (5xx) or answered something that is not a Koyeb reply."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class LockTimeoutError(KoyebAuthError):
    """Another thread or process held the token lock for longer than the lock timeout."""


class TokenStoreError(KoyebAuthError):
    """The shared token store cannot be used."""


class CacheFileError(TokenStoreError):
    """The cache file is unsafe to use (a symlink, or owned by another user)."""


class StoreUnavailableError(TokenStoreError):
    """The shared token store (Redis) did not answer within its timeout."""


class LeaseLostError(TokenStoreError):
    """The token lock's lease ran out before the holder wrote: a newer holder's token was kept."""


class MissingExtraError(KoyebAuthError, ImportError):
    """An optional integration was used without its extra installed."""
