"""The logins of `koyeb-auth login`, one per profile, for the commands and the library after it.

`token`, `status`, `exec`, `logout` and a `KoyebAuth()` use one when neither arguments nor the
environment name an account (see `_config` for the whole chain). Each profile's login is a small
JSON file beside the token cache (`tokens.json.login` for the default profile,
`tokens.json.profile-NAME.login` for the others), with the cache's hygiene (0600, replaced
atomically, no symlink followed, owner checked). A password login holds what finds its session
without the password: the API URL, the email, the organization and the session's store key (a
hash of those three; the session beside it in the cache holds a slow hash of the password). A token login holds the
personal access token itself: it is the credential, kept as privately as the cached sessions.
"""

# No `from __future__ import annotations`: with it, NamedTuple compiles each field's annotation
# into a ForwardRef, a millisecond of every warm `koyeb-auth token`.
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .._logs import logger, warn_once
from .._secrets import Redacted
from .._token import json_value, usable_bearer
from ..errors import CacheFileError, ConfigurationError, Hint
from ..stores import _private_file as private_file

if TYPE_CHECKING:
    from collections.abc import Set

    from .. import _session_api as api
    from .._token import Token

__all__ = ["DEFAULT_PROFILE", "LastLogin", "chosen", "forget", "found_in", "load", "path_for", "profile_name",
           "profiles", "save"]

FORMAT_VERSION = 1
MAX_STATE_BYTES = 4096
DEFAULT_PROFILE = "default"
PROFILE_VARIABLE = "KOYEB_AUTH_PROFILE"
_WHAT = "The login state file"
# No dot: the name goes into a file name, whose temporary files are found by prefix (see
# `private_file.replace`), so one profile's name must not be a prefix of another's file.
PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
# An organization id goes into the path of the switch and access token URLs: an edited one such as
# `../../account/logout?` would send the token to another endpoint (`_config.organization_id` checks
# the arguments' and the environment's alike; not imported: a warm `koyeb-auth token` loads no `_config`).
_ORGANIZATION_ID = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9._~-]+")


class LastLogin(NamedTuple):
    """A login that `koyeb-auth login` made: a password session, or a personal access token.

    For a password login it is the token source of its session, without the password: the session
    can be refreshed (the token is the credential for that) but not opened again.
    """

    api_url: str
    email: "str | None"
    organization_id: "str | None"
    key: str  # the session's store key; "" for a token login
    token: "str | None" = None  # the personal access token of a token login (Redacted)
    profile: str = DEFAULT_PROFILE

    def __repr__(self) -> str:
        return f"LastLogin({self.profile!r}, {self.kind}, email={self.email!r}, api_url={self.api_url!r})"

    @property
    def kind(self) -> str:
        return "personal access token" if self.token else "password login"

    def matches(self, api_url: "str | None", organization_id: "str | None") -> bool:
        """False if the API URL or the organization asked for (normalized) is not this login's.

        A personal access token can be exchanged for a token of any of its organizations."""
        same_organization = self.token is not None or organization_id in (None, self.organization_id)
        return api_url in (None, self.api_url) and same_organization

    def prepare(self, *, wait: bool = False) -> bool:
        return True  # no password, no hash

    def owns(self, token: "Token") -> bool:
        # The user's own login: the session found under its key is its session, whichever password
        # of the account opened it (a wrong one opens none).
        return True

    def opened(self, token: "Token") -> "Token":
        return token  # never: `obtain` refuses

    def obtain(self, withdrawn: "Set[str]") -> "tuple[api.Call, ...]":
        raise ConfigurationError(
            f"The session that `koyeb-auth login{_flag(self.profile)}` opened for {self.email} has ended (expired, "
            f"refused or logged out): run `koyeb-auth login{_flag(self.profile)}` again."
        )

    def renew(self, token: "Token", withdrawn: "Set[str]") -> "api.Call | None":
        from .. import _session_api as api  # noqa: PLC0415 - a warm `koyeb-auth token` reads this record, and sends nothing

        return None if "refresh" in withdrawn else api.refresh(self.api_url, token.value)


def _flag(profile: str) -> str:
    return "" if profile == DEFAULT_PROFILE else f" --profile {profile}"


def found_in(cache: Path, login: LastLogin) -> str:
    """Where a login is, in the words of `status` (its `credentials_from`)."""
    path = path_for(cache, login.profile)
    if login.profile == DEFAULT_PROFILE:
        return f"the last `koyeb-auth login` ({path})"
    return f"the `koyeb-auth login` of the profile {login.profile!r} ({path})"


def profile_name(value: str, given_in: str) -> str:
    """`value` if it can name a profile; ConfigurationError naming `given_in` if not."""
    if PROFILE_NAME.fullmatch(value):
        return str(value)  # a plain str: one read from the environment is Redacted, and would show as such
    raise ConfigurationError(f"The profile name in {given_in} is not one: use 1 to 64 ASCII letters, digits, "
                             "'-' or '_'.")


def path_for(cache: Path, profile: str = DEFAULT_PROFILE) -> Path:
    """Where the login of `profile` is kept, beside the token cache `cache`."""
    return cache.with_name(cache.name + (".login" if profile == DEFAULT_PROFILE else f".profile-{profile}.login"))


def profiles(cache: Path) -> "list[LastLogin]":
    """The logins kept beside the token cache `cache`, the default profile first."""
    prefix, suffix = f"{cache.name}.profile-", ".login"
    try:
        # Not glob(): the cache's name is the user's, and may hold a glob's special characters.
        names = [name[len(prefix):-len(suffix)] for name in os.listdir(cache.parent)
                 if name.startswith(prefix) and name.endswith(suffix)]
    except OSError:  # no directory yet, or one we may not list: no profile to show
        names = []
    found = [_listed(cache, name) for name in [DEFAULT_PROFILE, *sorted(names)] if PROFILE_NAME.fullmatch(name)]
    return [login for login in found if login is not None]


def _listed(cache: Path, profile: str) -> "LastLogin | None":
    """The login of `profile`, for a listing; None, after a warning, for a file that is refused (a
    symlink, another user's): one planted in a shared directory must not fail `status` for the
    account in use. Using that profile still fails, and says why."""
    try:
        return load(path_for(cache, profile), profile)
    except CacheFileError as exc:
        logger().warning("Leaving the profile %r out of the list: %s", profile, exc.problem)
        return None


def chosen(cache: Path, profile: "str | None", api_url: "str | None", organization_id: "str | None",
           given_in: str) -> "LastLogin | None":
    """The login of `profile` (the default one if None) if it fits the API URL and organization
    asked for (None: any). A profile that was named (`given_in` says where) must exist and fit:
    ConfigurationError if not. The default one is skipped if it does not (the next step decides)."""
    login = load(path_for(cache, profile or DEFAULT_PROFILE), profile or DEFAULT_PROFILE)
    if login is not None and login.matches(api_url, organization_id):
        return login
    if profile is None:
        return None
    if login is None:
        raise ConfigurationError(f"No login for the profile {profile!r} ({given_in}): run "
                                 f"`koyeb-auth login --profile {profile}`.")
    raise ConfigurationError(f"The profile {profile!r} ({given_in}) logged in to {login.api_url}"
                             f"{' for ' + login.organization_id if login.organization_id else ''}, not to the API "
                             "URL or organization asked for: unset them, or log in to the profile again.")


def load(path: Path, profile: str = DEFAULT_PROFILE) -> "LastLogin | None":
    """The login recorded at `path`; None if there is none (or none that can be used)."""
    try:
        raw = private_file.read(path, _WHAT, MAX_STATE_BYTES)
    except OSError as exc:
        # Once per file and reason: the chain and the command's advice may read it several times.
        reason = exc.strerror or str(exc)
        warn_once(f"state {path}: {reason}", "Ignoring the login state file %s: %s", path, reason)
        return None
    if raw is None:
        return None
    login = _parse(raw, profile)
    if login is None:
        warn_once(f"state {path}: format", "Ignoring the login state file %s: unknown format; `koyeb-auth login` "
                  "replaces it", path)
    return login


def _parse(raw: bytes, profile: str) -> "LastLogin | None":
    try:
        document = json_value(raw)
    except ValueError:  # includes UnicodeDecodeError, and JSON nested too deeply
        return None
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        return None
    api_url, email, organization_id, key, token = (
        document.get(name) for name in ("api_url", "email", "organization_id", "key", "token"))
    if not _well_formed(api_url, email, organization_id, key, token):
        return None
    # Checked as a URL given by the user is: an edited file must not send a token in clear.
    from .._origin import normalize_api_url  # noqa: PLC0415 - a warm `koyeb-auth token` sends nothing

    try:
        api_url = normalize_api_url(str(api_url))
    except ConfigurationError:
        return None
    return LastLogin(api_url, email, organization_id, str(key), Redacted(token) if token else None, profile)


def _well_formed(api_url: object, email: object, organization_id: object, key: object, token: object) -> bool:
    if not (isinstance(api_url, str) and api_url and isinstance(key, str)):
        return False
    if not all(value is None or isinstance(value, str) for value in (email, organization_id)):
        return False
    if organization_id is not None and not _ORGANIZATION_ID.fullmatch(str(organization_id)):
        return False
    # A token login, or a password login: nothing in between. The token is checked as one typed at
    # `login` is: an edited one with a CR or a space would make httpx refuse the header with an error
    # that quotes it.
    return bool(isinstance(token, str) and usable_bearer(token) and not key) or bool(token is None and key and email)


def save(path: Path, login: LastLogin) -> None:
    """Record `login` at `path`. Callers hold the token cache's lock, which every writer takes."""
    # The profile is the file's name; a password login has no token (see the module's docstring).
    fields = {name: value for name, value in login._asdict().items() if name != "profile"}
    record = {"version": FORMAT_VERSION, **{name: value for name, value in fields.items()
                                           if name != "token" or value is not None}}
    private_file.replace(path, record, _WHAT)


def forget(path: Path) -> None:
    """Remove the record of a login, if there is one."""
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise CacheFileError(f"{_WHAT} {path} cannot be removed: {exc.strerror or exc}.", Hint.CACHE_PATH) from None
