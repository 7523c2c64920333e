"""Every error koyeb-auth raises: one class per failure a user must tell apart.

Messages say what happened and what to do, carry the server's own message where there is one,
and never contain a token or a password.

Every error pickles with its attributes (worker pools send them back to the parent): those whose
constructor takes more than the message say how to rebuild them in `__reduce__`, as filelock's
`Timeout` does.

When what to do is to change a setting, the error carries it as a `Hint`: the message names the
setting as Python spells it (`lock_timeout=`), and the `koyeb-auth` command names its own flag or
environment variable instead (see `cli._command.CLI_HINTS`).
"""

from __future__ import annotations

import enum
from typing import Any


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
        """An error saying `problem` (what happened), then `hint` (the setting that fixes it), if any."""
        super().__init__(f"{problem} {hint.value}" if hint is not None else problem)
        self.problem = problem
        self.hint = hint

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from what it was built from: the message alone would carry the hint in its text.
        return type(self), (self.problem, self.hint), self.__dict__


class ConfigurationError(KoyebAuthError):
    """No usable credentials, or a configuration value that cannot be used."""


class InvalidCredentialsError(KoyebAuthError):
    """The API refused the email and password, or the personal access token."""


class AccessDeniedError(KoyebAuthError):
    """The credentials may be right but the API will not open a session with them (HTTP 403, or an
    endpoint withdrawn)."""


class AccountLockedError(AccessDeniedError):
    """The Koyeb account is locked."""


class OrganizationDeactivatedError(AccessDeniedError):
    """The API answered 401 `Token rejected`: the organization is deactivated."""


class EndpointWithdrawnError(AccessDeniedError):
    """A session endpoint these credentials need answered 404, 405 or 410: Koyeb has probably
    withdrawn it (login, refresh, logout and the organization switch are deprecated).

    The message names the way out; `endpoint` is the one that answered ("login", "refresh",
    "switch", "access_token" or "logout") and `status` its HTTP status.
    """

    def __init__(self, message: str, endpoint: str, status: int) -> None:
        """An error saying `message`, about `endpoint`, which answered HTTP `status`."""
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled (a worker pool sends errors back to its parent): the default rebuilds from the
        # message alone, and the constructor needs the endpoint and the status too.
        return type(self), (*self.args, self.endpoint, self.status), self.__dict__


class RateLimitedError(KoyebAuthError):
    """The API answered 429. `retry_after` is how many seconds to wait before trying again."""

    def __init__(self, message: str, retry_after: float) -> None:
        """An error saying `message`; `retry_after` is the seconds to wait before trying again."""
        super().__init__(message)
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds from `args`, the message alone: the constructor needs retry_after too.
        return type(self), (*self.args, self.retry_after), self.__dict__


class APIUnreachableError(KoyebAuthError):
    """The API could not be reached: DNS, connection or timeout."""


class APIError(KoyebAuthError):
    """The API failed (5xx) or answered something that is not a Koyeb reply."""

    def __init__(self, message: str, status: int | None = None) -> None:
        """An error saying `message`; `status` is the reply's HTTP status, None without a reply."""
        super().__init__(message)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (*self.args, self.status), self.__dict__


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
