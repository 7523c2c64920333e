"""Where the settings come from: the one credential chain of the library and the command.

In order (docs/configuration.md has it as a table): explicit arguments (flags), a profile named
by argument (`--profile`), the environment, the login of `koyeb-auth login` (the profile named by
$KOYEB_AUTH_PROFILE, else the default one), then the Koyeb CLI's `~/.koyeb.yaml` (or
$KOYEB_CONFIG). The environment and the CLI file are read with the CLI's own names, and those of
Koyeb's Python SDK, so a machine set up for either works here unchanged.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from ._origin import DEFAULT_API_URL, URL_VARIABLES, api_url_of_environment, normalize_api_url
from ._secrets import ENVIRONMENT, Redacted, shown_fields
from ._token import usable_bearer
from .errors import ConfigurationError, Hint

if TYPE_CHECKING:
    from .cli._state import LastLogin
    from .stores._protocol import TokenStore

__all__ = ["Config", "Credentials", "Settings"]

# Where KoyebAuth shares its tokens when given neither store= nor cache_path=: a Redis URL, so that
# a fleet (and the `koyeb-auth` command) can choose the Redis store without code.
STORE_VARIABLE = "KOYEB_AUTH_STORE"
# The variables of a personal access token, in order: the Koyeb CLI's, then Koyeb's Python SDK's.
TOKEN_VARIABLES = ("KOYEB_TOKEN", "KOYEB_API_TOKEN")
# The profile of `koyeb-auth login` to use (also in cli._state, which a warm `koyeb-auth token`
# reads without this module).
PROFILE_VARIABLE = "KOYEB_AUTH_PROFILE"
# The variables the chain reads, read once for each resolution. Those taken as they are must be
# text UTF-8 can carry; the API URL's and the organization's are checked by their parsers, when used.
_TAKEN_AS_IS = ("KOYEB_EMAIL", "KOYEB_PASSWORD", *TOKEN_VARIABLES, PROFILE_VARIABLE)
_VARIABLES = (*_TAKEN_AS_IS, "KOYEB_ORGANIZATION", *URL_VARIABLES)
# An organization id goes into the path of the switch and access token URLs: characters that are
# not unreserved in a URL would change the request (`/`, `?`), or make the HTTP client refuse it
# with an error raised from frames that hold the token (a CR from a .env written on Windows).
_ORGANIZATION_ID = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9._~-]+")  # nor `..` (or `.`): a path segment httpx resolves
# The API URL and the organization asked for by the arguments or the environment (None: not asked).
_Asked = tuple[str | None, str | None]
# Where a password without an email was found, for each layer of steps 1 and 3.
_LONE_PASSWORD = {"arguments": "in the arguments (password=).",
                  "environment": "in the environment: KOYEB_PASSWORD is set, KOYEB_EMAIL is not."}


# Records are NamedTuples (Credentials a plain class), not dataclasses: `dataclasses` loads
# `inspect` and `ast`, which a warm `koyeb-auth token` has no other use for.
class Credentials:
    """What the caller passed to KoyebAuth (or the command's flags); None for what is left to the chain.

    A KoyebAuth pickles with it: not a NamedTuple, so that the pickles of the dataclass it was
    (its fields as a dict) still load.
    """

    __slots__ = ("email", "password", "token", "organization_id", "api_url", "profile", "cache_path")  # noqa: RUF023 - in the order of the arguments
    email: str | None
    password: str | None
    token: str | None
    organization_id: str | None
    api_url: str | None  # a mistyped one may hold a password: not in the repr either
    profile: str | None
    # Where the logins of `koyeb-auth login` are: beside this token cache (None: the default one).
    cache_path: str | os.PathLike[str] | None

    def __init__(self, email: str | None = None, password: str | None = None, token: str | None = None,  # noqa: PLR0917 - as the dataclass it was
                 organization_id: str | None = None, api_url: str | None = None, profile: str | None = None,
                 cache_path: str | os.PathLike[str] | None = None) -> None:
        values = (email, password, token, organization_id, api_url, profile, cache_path)
        self.__setstate__(dict(zip(self.__slots__, values, strict=True)))

    def __setstate__(self, state: dict[str, object]) -> None:
        for name in self.__slots__:
            object.__setattr__(self, name, state.get(name))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Credentials are read-only: cannot set {name!r}")

    def __reduce__(self) -> tuple[type[Credentials], tuple[object, ...]]:
        return Credentials, self._values()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return shown_fields("Credentials", zip(self.__slots__, self._values(), strict=True),
                            {"password", "token", "api_url"})

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)


class Settings(NamedTuple):
    """Resolved credentials. `found_in` says where the credentials were found, for `status`.

    `session_key` is set for the session of a password `koyeb-auth login`: it is renewed, never
    opened again (there is no password)."""

    api_url: str
    email: str | None = None
    password: str | None = None
    token: str | None = None
    organization_id: str | None = None
    found_in: str = "arguments"
    session_key: str | None = None
    profile: str | None = None

    def __repr__(self) -> str:
        return shown_fields("Settings", zip(self._fields, self, strict=True), {"password", "token"})


class Config:
    """Settings from arguments, the environment, the logins and the CLI config, which is read at most once."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.cli_path = Path(environ.get("KOYEB_CONFIG") or Path.home() / ".koyeb.yaml")

    def settings(self, given: Credentials) -> Settings:
        """Pick the credentials from the first place in the chain that has them; ConfigurationError if none does.

        Secrets are held as `Redacted` strings from the moment they are read, and the environment
        only as the dict of the chain's variables (`_variables`), each a `Redacted` string: a
        traceback's locals then show no secret (Sentry renders them).
        """
        for name in ("email", "password", "token", "organization_id", "api_url", "profile"):
            if (value := getattr(given, name)) is not None:
                _check_text(value, f"{name}=")
        env = _variables(self.environ)
        # The API URL and the organization the arguments or the environment ask for, checked.
        url = normalize_api_url(given.api_url, "api_url=, --api-url") if given.api_url else api_url_of_environment(env)
        organization = given.organization_id or env.get("KOYEB_ORGANIZATION")
        given_in = "organization_id= (--organization)" if given.organization_id else "KOYEB_ORGANIZATION"
        asked = (url, organization_id(organization, given_in) if organization else None)
        if given.profile:
            return self._named_profile(given, asked)
        password: str | None = Redacted(given.password) if given.password else None
        if given.email and not password:
            # The email is an argument, its password may be in the environment. Without one, a
            # login says what is missing.
            password = env.get("KOYEB_PASSWORD")
        return (self._layer("arguments", given.email, password, ("the arguments (token=)", given.token), asked)
                or self._layer("environment", env.get("KOYEB_EMAIL"), env.get("KOYEB_PASSWORD"),
                               next(((name, env[name]) for name in TOKEN_VARIABLES if name in env), ("", None)), asked)
                or self._last_login(given, env, asked) or self._cli_file(given, asked))

    def _layer(self, found_in: str, email: str | None, password: str | None, token: tuple[str, str | None],
               asked: _Asked) -> Settings | None:
        """Steps 1, 3 and 5: an email (and its password), else a token (where it was given, and its
        value), of the arguments, the environment or the CLI file; None if that layer has neither.

        The API URL and organization are those asked for, else the CLI file's, else the default URL
        and no organization.
        """
        given_in, value = token
        if not (email or password or value):
            return None
        if password and not email:
            raise ConfigurationError(f"A password was given without an email, {_LONE_PASSWORD[found_in]}")
        url, organization = asked
        if not url:
            from_file = self.cli.get("url")
            url = normalize_api_url(from_file, f"the `url` of {self.cli_path}") if from_file else DEFAULT_API_URL
        if not organization and (from_file := self.cli.get("organization")):
            organization = organization_id(from_file, f"the `organization` of {self.cli_path}")
        if email:
            return Settings(url, email=email.strip(), password=password, organization_id=organization,
                            found_in=found_in)
        assert value is not None
        return Settings(url, token=personal_token(value, given_in), organization_id=organization, found_in=found_in)

    def _named_profile(self, given: Credentials, asked: _Asked) -> Settings:
        if given.email or given.password or given.token:
            raise ConfigurationError("Pass either a profile (profile=, --profile) or credentials, not both.")
        from .cli import _state as state  # noqa: PLC0415 - read only by those who logged in

        name = state.profile_name(given.profile or "", "profile=, --profile")
        login = state.chosen(self._cache(given), name, *asked, "profile=, --profile")
        assert login is not None  # a named profile that is not there is an error
        return self._from_login(login, given, asked)

    def _last_login(self, given: Credentials, env: Mapping[str, str], asked: _Asked) -> Settings | None:
        from .cli import _state as state  # noqa: PLC0415 - read only by those who logged in

        named = env.get(PROFILE_VARIABLE)
        profile = state.profile_name(named, PROFILE_VARIABLE) if named else None
        login = state.chosen(self._cache(given), profile, *asked, PROFILE_VARIABLE)
        return None if login is None else self._from_login(login, given, asked)

    def _from_login(self, login: LastLogin, given: Credentials, asked: _Asked) -> Settings:
        from .cli import _state as state  # noqa: PLC0415

        found_in = state.found_in(self._cache(given), login)
        if login.token:
            # A personal access token may be used for another of its organizations than its login's.
            return Settings(login.api_url, token=Redacted(login.token), found_in=found_in, profile=login.profile,
                            organization_id=asked[1] or login.organization_id)
        return Settings(login.api_url, email=login.email, organization_id=login.organization_id, found_in=found_in,
                        session_key=login.key, profile=login.profile)

    def _cli_file(self, given: Credentials, asked: _Asked) -> Settings:
        found_in = str(self.cli_path)
        token = (f"the `token` of {found_in}", Redacted(self.cli.get("token") or ""))
        if settings := self._layer(found_in, None, None, token, asked):
            return settings
        raise ConfigurationError(f"No Koyeb credentials found.{self._login_elsewhere(given)}", Hint.CREDENTIALS)

    def _login_elsewhere(self, given: Credentials) -> str:
        """What the default login is for, when it was passed over for another API URL or organization."""
        from .cli import _state as state  # noqa: PLC0415

        login = state.load(state.path_for(self._cache(given)))
        if login is None:
            return ""
        organization = f", organization {login.organization_id}" if login.organization_id else ""
        return (f" (The last `koyeb-auth login` is for {login.api_url}{organization}, not the API URL or "
                "organization asked for: log in to that one too, with --profile NAME to keep both.)")

    def _cache(self, given: Credentials) -> Path:
        from .stores._file import FileTokenStore  # noqa: PLC0415 - finds the default cache path

        return FileTokenStore(given.cache_path).path

    @cached_property
    def cli(self) -> dict[str, str]:
        """The string settings of the Koyeb CLI config file; {} if there is none."""
        try:
            text = Redacted(self.cli_path.read_text(encoding="utf-8"))  # it holds the CLI's token
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            failure = type(exc).__name__
        else:
            return _strings(self.cli_path, _parse_yaml(self.cli_path, text))
        raise _unreadable(self.cli_path, failure)


def _variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The chain's variables that are set, held as Redacted strs (so this dict shows no secret in a
    traceback's locals), those taken as they are checked once.

    The process environment (the ENVIRONMENT view) is read from os.environ itself, a value at a time
    straight into a Redacted str as the view would, so that no local holds os.environ or a bare value.
    """
    variables: dict[str, str] = {}
    for name in _VARIABLES:
        if value := Redacted((os.environ if environ is ENVIRONMENT else environ).get(name) or ""):
            if name in _TAKEN_AS_IS:
                _check_text(value, name)
            variables[name] = value
    return variables


def organization_id(value: str, given_in: str) -> str:
    """The organization id, if it can go into a URL path as is; ConfigurationError naming `given_in` if not."""
    if _ORGANIZATION_ID.fullmatch(value):
        return value
    what = ("a carriage return or a line feed (a file with Windows line endings?)" if "\r" in value or "\n" in value
            else "a space, a control or non-ASCII character, or one of / ? # % that would change the request's URL")
    raise ConfigurationError(f"The organization id in {given_in} is not an organization id: it holds {what}. "
                             "Copy it again from the Koyeb console (organization settings).")


def _check_text(value: object, given_in: str) -> None:
    """ConfigurationError unless `value` is a str that UTF-8 can carry, never showing it.

    os.environ turns bytes that are not UTF-8 into lone surrogates; encoding one later raises a
    UnicodeEncodeError whose repr holds the whole string, password and all.
    """
    if not isinstance(value, str):
        raise ConfigurationError(f"{given_in} must be a str, not {type(value).__name__}.")
    try:
        value.encode()
    except UnicodeEncodeError:
        pass  # raised below, outside the handler: the error's context would hold the value
    else:
        return
    raise ConfigurationError(f"{given_in} holds bytes that are not UTF-8 (a file or a terminal in another "
                             "encoding?). Set it again; its value is not shown here.")


def personal_token(value: str, given_in: str) -> Redacted:
    """The token without the white space a file or a secret mount leaves around it; it must then be
    fit for an HTTP header, or every request would fail with an error that quotes it. Errors name
    `given_in`, where it came from (a variable, a file, standard input)."""
    token = Redacted(value.strip())
    if not usable_bearer(token):
        raise ConfigurationError(
            f"The personal access token in {given_in} is not a token: it holds spaces, control or "
            "non-ASCII characters. Copy it again from the Koyeb console (the token itself is not shown here)."
        )
    return token


def _parse_yaml(path: Path, text: str) -> object:
    import yaml  # noqa: PLC0415 - loaded only by those who have the file

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        failure = type(exc).__name__
    # Raised outside the handler: a YAML error holds the file's text (its token) in its context.
    raise _unreadable(path, failure)


def _unreadable(path: Path, failure: str) -> ConfigurationError:
    return ConfigurationError(f"The Koyeb CLI config {path} cannot be read ({failure}). "
                              "Fix or remove it, or set KOYEB_CONFIG.")


def _strings(path: Path, document: object) -> dict[str, str]:
    if document is None:
        return {}
    if not isinstance(document, dict):
        del document  # it may hold the token: not in this frame's locals when the error goes up
        raise ConfigurationError(f"The Koyeb CLI config {path} is not a YAML mapping.")
    return {key: value for key, value in document.items() if isinstance(key, str) and isinstance(value, str)}


def default_store(environ: Mapping[str, str], cache_path: str | os.PathLike[str] | None) -> TokenStore:
    """The store of a KoyebAuth given no store=: the file at `cache_path` if given, else the Redis
    store at $KOYEB_AUTH_STORE if set, else the default cache file."""
    # Imported here: each store is built only when chosen (the Redis one needs the redis extra).
    from .stores._file import FileTokenStore  # noqa: PLC0415

    url = environ.get(STORE_VARIABLE) if cache_path is None else None
    return store_from_url(url, f"${STORE_VARIABLE}") if url else FileTokenStore(cache_path)


def store_from_url(url: str, given_in: str) -> TokenStore:
    """The Redis store at `url` (redis://, rediss:// or unix://); ConfigurationError for anything else."""
    url = Redacted(url)  # it holds Redis's password: never in a traceback's locals
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # a malformed IPv6 host, say: not echoed, the URL may hold a password
        scheme = ""
    if scheme not in {"redis", "rediss", "unix"}:
        raise ConfigurationError(f"{given_in} must be a readable redis://, rediss:// or unix:// URL; for a cache "
                                 "file, use cache_path= (--cache-path) instead.")
    from .stores._redis import RedisTokenStore  # noqa: PLC0415

    return RedisTokenStore(url)
