"""Which session a `koyeb-auth` command works with, found without loading an HTTP client.

The account comes from the library's chain (`_config`): the flags, then a `--profile`, then the
environment, then the `koyeb-auth login` of $KOYEB_AUTH_PROFILE or the default profile (see
`state`), then the Koyeb CLI's ~/.koyeb.yaml. Finding its cached token needs no network and no
HTTP client: `Account.fresh()` is the whole of a warm `koyeb-auth token`, which after a login loads
neither `config` nor `sources` (nor the dataclasses module they use): `resolve` reads the login
itself when the chain would come to it. Only a token that is not FRESH loads httpx, through
`Account.provider()`.
"""

# No `from __future__ import annotations`: with it, NamedTuple compiles each field's annotation
# into a ForwardRef, a millisecond of every warm `koyeb-auth token`.
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from .._token import DEFAULT_REFRESH_MARGIN, Token, TokenState
from ..cli import _state as state
from ..stores._file import FileTokenStore

if TYPE_CHECKING:
    from .._config import Settings
    from .._manager import TokenProvider
    from .._sources import Source
    from ..stores._protocol import TokenStore

__all__ = ["Account", "Options", "resolve", "store_for"]

# Any of these names an account in the environment, which then wins over the last login
# (`_config.Config._environment` reads them).
_ACCOUNT_VARIABLES = ("KOYEB_EMAIL", "KOYEB_PASSWORD", "KOYEB_TOKEN", "KOYEB_API_TOKEN")


class Options(NamedTuple):
    """What every command takes: flags, each falling back to the environment and the config."""

    api_url: str | None = None
    cache_path: str | os.PathLike[str] | None = None
    email: str | None = None
    organization_id: str | None = None
    timeout: float = 15.0
    lock_timeout: float = 60.0
    store: str | None = None  # a Redis URL (--store); else $KOYEB_AUTH_STORE, else the cache file
    profile: str | None = None  # the login of `koyeb-auth login --profile NAME` (--profile)


class Account:
    """A session: whose, where its credentials were found, how it is renewed, where it is cached.

    `source` renews it; None for a personal access token, which is used as is (and kept out of
    the repr).
    """

    def __init__(self, *, api_url: str, email: str | None, organization_id: str | None, found_in: str,
                 source: "Source | None", store: "TokenStore", options: Options,
                 personal_token: str | None = None, profile: str | None = None) -> None:
        self.api_url = api_url
        self.email = email
        self.organization_id = organization_id
        self.found_in = found_in
        self.source = source
        self.store = store
        self.options = options
        self._personal_token = personal_token
        self.profile = profile  # the profile of the login it comes from, if it does

    @classmethod
    def configured(cls, settings: "Settings", source: "Source | None", store: "TokenStore",
                   options: Options) -> "Account":
        """The account that resolved settings name."""
        return cls(api_url=settings.api_url, email=settings.email, organization_id=settings.organization_id,
                   found_in=settings.found_in, source=source, store=store, options=options,
                   personal_token=settings.token if source is None else None, profile=settings.profile)

    def __repr__(self) -> str:
        return f"Account({self.kind}, email={self.email!r}, api_url={self.api_url!r}, {self.store!r})"

    @property
    def kind(self) -> str:
        if self.source is None:
            return "personal access token"
        return "password login" if self.email else "organization token"

    @property
    def cache_file(self) -> Path:
        """The token cache file the logins are kept beside, even when the session lives in Redis."""
        return FileTokenStore(self.options.cache_path).path

    @property
    def state_path(self) -> Path:
        return state.path_for(self.cache_file, self.profile or state.DEFAULT_PROFILE)

    def cached(self) -> Token | None:
        """The token that would be sent now, from the cache (or the personal token); no network."""
        if self.source is None:
            assert self._personal_token is not None
            return Token(self._personal_token, obtained_at=0.0)
        token = self.store.load(self.source.key)
        if token is None or not token.usable(time.time()):
            return None
        return token if self.source.owns(token) else None

    def foreign_session(self) -> bool:
        """Whether the store holds a session under this account's key that its source does not own:
        one another password of the account opened (this one is wrong, or that one is)."""
        source = self.source
        token = self.store.load(source.key) if source is not None else None
        return source is not None and token is not None and not source.owns(token)

    def fresh(self) -> Token | None:
        """The cached token if nothing is due: it can be printed without any lock or network call."""
        token = self.cached()
        if token is None or token.state(time.time(), DEFAULT_REFRESH_MARGIN) is not TokenState.FRESH:
            return None
        return token

    def provider(self) -> "TokenProvider":
        """What renews the token (loads httpx): refreshes, logs in, waits for a peer, logs out."""
        from .._manager import (  # noqa: PLC0415
            PersonalTokenProvider,
            Timing,
            TokenManager,
        )
        from .._transport import Network  # noqa: PLC0415

        if self.source is None:
            assert self._personal_token is not None
            return PersonalTokenProvider(self._personal_token)
        timing = Timing(DEFAULT_REFRESH_MARGIN, self.options.timeout, self.options.lock_timeout)
        return TokenManager(self.source, self.store, timing, Network())

    def token(self) -> Token:
        """A valid token: the cached one if FRESH, else through `provider()`."""
        return self.fresh() or self.provider().get_token()


def resolve(options: Options, environ: Mapping[str, str]) -> Account:
    """The account the flags, the environment, a login or ~/.koyeb.yaml name (see `_config`).

    ConfigurationError if none does.
    """
    store = store_for(options, environ)
    if (last := _login_of_chain(options, environ)) is not None:
        return Account(api_url=last.api_url, email=last.email, organization_id=last.organization_id,
                       found_in=state.found_in(FileTokenStore(options.cache_path).path, last),
                       source=None if last.token else last, store=store, options=options,
                       personal_token=last.token, profile=last.profile)
    # Credentials named elsewhere: a password's store key costs a slow hash (see `_sources`).
    from .._config import Config, Credentials  # noqa: PLC0415 - not needed after a login
    from .._sources import source_for  # noqa: PLC0415

    given = Credentials(email=options.email, organization_id=options.organization_id, api_url=options.api_url,
                        profile=options.profile, cache_path=options.cache_path)
    settings = Config(environ).settings(given)
    return Account.configured(settings, source_for(settings, None), store, options)


def _login_of_chain(options: Options, environ: Mapping[str, str]) -> "state.LastLogin | None":
    """The login the chain would come to, if its token needs no source (`_sources`) to be used: a
    password session, or a personal access token used as is. None for anything else: the chain
    (`_config`) then decides, and says what is wrong."""
    if options.email or (options.profile is None and any(environ.get(name) for name in _ACCOUNT_VARIABLES)):
        return None
    named = options.profile or environ.get(state.PROFILE_VARIABLE)
    # str(): the environment's values are Redacted, and a profile's name is no secret.
    profile = str(named) if named else state.DEFAULT_PROFILE
    if not state.PROFILE_NAME.fullmatch(profile):
        return None
    try:
        url = _asked_url(options, environ)
    except ValueError:
        return None
    asked_organization = options.organization_id or environ.get("KOYEB_ORGANIZATION") or None
    last = state.load(state.path_for(FileTokenStore(options.cache_path).path, profile), profile)
    if last is None or not last.matches(url, asked_organization):
        return None
    if last.token and (asked_organization or last.organization_id):
        return None  # a personal access token exchanged for an organization's: a source does that
    return last


def store_for(options: Options, environ: Mapping[str, str]) -> "TokenStore":
    """The cache file, unless --store or $KOYEB_AUTH_STORE names a Redis store."""
    if options.store or (environ.get("KOYEB_AUTH_STORE") and options.cache_path is None):
        from .._config import default_store, store_from_url  # noqa: PLC0415 - only for a Redis store

        return store_from_url(options.store, "--store") if options.store else default_store(environ, None)
    return FileTokenStore(options.cache_path)


def _asked_url(options: Options, environ: Mapping[str, str]) -> str | None:
    """The API URL the flag or the environment ask for, normalized as the chain does; ValueError
    if it is one the chain would refuse (it then says why)."""
    if not options.api_url and not any(environ.get(name) for name in ("KOYEB_URL", "KOYEB_API_HOST")):
        return None
    from .._origin import api_url_of_environment, normalize_api_url  # noqa: PLC0415
    from ..errors import ConfigurationError  # noqa: PLC0415

    try:
        return normalize_api_url(options.api_url) if options.api_url else api_url_of_environment(environ)
    except ConfigurationError:
        raise ValueError from None
