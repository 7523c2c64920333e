"""The account of the last `koyeb-auth login`, for the commands that run after it.

`token`, `status`, `exec` and `logout` use it when neither flags nor the environment name an account.
It is a small JSON file beside the token cache (`tokens.json.login`), with the cache's hygiene
(0600, replaced atomically, no symlink followed, owner checked). It holds what finds the session
without the password: the API URL, the email, the organization and the session's store key. The
key holds nothing but a slow hash of the password, as the cache file does; the file holds no
password and no token.
"""

# No `from __future__ import annotations`: with it, NamedTuple compiles each field's annotation
# into a ForwardRef, a millisecond of every warm `koyeb-auth token`.
import json
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .._logs import logger
from .._token import json_value
from ..errors import CacheFileError, ConfigurationError, Hint
from ..stores import _private_file as private_file

if TYPE_CHECKING:
    from collections.abc import Set

    from .. import _session_api as api
    from .._token import Token

__all__ = ["LastLogin", "forget", "load", "path_for", "save"]

FORMAT_VERSION = 1
MAX_STATE_BYTES = 4096
_WHAT = "The login state file"


class LastLogin(NamedTuple):
    """The session that `koyeb-auth login` opened, and a token source for it without the password.

    Its session can be refreshed (the token is the credential for that) but not opened again.
    """

    api_url: str
    email: str
    organization_id: str | None
    key: str

    def matches(self, api_url: str | None, organization_id: str | None) -> bool:
        """False if the API URL or the organization asked for (normalized) is not this login's."""
        return api_url in (None, self.api_url) and organization_id in (None, self.organization_id)

    def obtain(self, withdrawn: "Set[str]") -> "tuple[api.Call, ...]":
        raise ConfigurationError(
            f"The session that `koyeb-auth login` opened for {self.email} has ended (expired, refused or "
            "logged out): run `koyeb-auth login` again."
        )

    def renew(self, token: "Token", withdrawn: "Set[str]") -> "api.Call | None":
        from .. import _session_api as api  # noqa: PLC0415 - a warm `koyeb-auth token` reads this record, and sends nothing

        return None if "refresh" in withdrawn else api.refresh(self.api_url, token.value)


def path_for(cache: Path) -> Path:
    """Where the state file of the token cache `cache` is."""
    return cache.with_name(cache.name + ".login")


def load(path: Path) -> LastLogin | None:
    """The last login recorded at `path`; None if there is none (or none that can be used)."""
    try:
        raw = private_file.read(path, _WHAT, MAX_STATE_BYTES)
    except OSError as exc:
        logger().warning("Ignoring the login state file %s: %s", path, exc.strerror or exc)
        return None
    if raw is None:
        return None
    login = _parse(raw)
    if login is None:
        logger().warning("Ignoring the login state file %s: unknown format; `koyeb-auth login` replaces it", path)
    return login


def _parse(raw: bytes) -> LastLogin | None:
    try:
        document = json_value(raw)
    except ValueError:  # includes UnicodeDecodeError, and JSON nested too deeply
        return None
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        return None
    api_url, email, organization_id, key = (document.get(name) for name in ("api_url", "email", "organization_id",
                                                                            "key"))
    if not (isinstance(api_url, str) and isinstance(email, str) and isinstance(key, str) and api_url and email and key):
        return None
    if organization_id is not None and not isinstance(organization_id, str):
        return None
    # Checked as a URL given by the user is: an edited file must not send a token in clear.
    from .._origin import normalize_api_url  # noqa: PLC0415 - a warm `koyeb-auth token` sends nothing

    try:
        api_url = normalize_api_url(api_url)
    except ConfigurationError:
        return None
    return LastLogin(api_url, email, organization_id, key)


def save(path: Path, login: LastLogin) -> None:
    """Record `login` at `path`. Callers hold the token cache's lock, which every writer takes."""
    try:
        record = {"version": FORMAT_VERSION, **login._asdict()}  # no secret: see the module's docstring
        private_file.replace(path, lambda: json.dumps(record, indent=1).encode())
    except OSError as exc:
        raise CacheFileError(f"{_WHAT} {path} cannot be written: {exc.strerror or exc}.", Hint.CACHE_PATH) from None


def forget(path: Path) -> None:
    """Remove the record of the last login, if there is one."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CacheFileError(f"{_WHAT} {path} cannot be removed: {exc.strerror or exc}.", Hint.CACHE_PATH) from None
