"""Which session a `koyeb-auth` command works with, found without loading an HTTP client.

The account comes from the flags, then the environment, then the last `koyeb-auth login` (see
`state`), then the Koyeb CLI's ~/.koyeb.yaml. Finding its cached token needs no network and no
HTTP client: `Account.fresh()` is the whole of a warm `koyeb-auth token`, which after a login loads
neither `config` nor `sources` (nor the dataclasses module they use). Only a token that is not
FRESH loads httpx, through `Account.provider()`.
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

# Any of these names an account in the environment, which then wins over the last login.
_ACCOUNT_VARIABLES = ("KOYEB_EMAIL", "KOYEB_PASSWORD", "KOYEB_TOKEN")


class Options(NamedTuple):
    """What every command takes: flags, each falling back to the environment and the config."""

    api_url: str | None = None
    cache_path: str | os.PathLike[str] | None = None
    email: str | None = None
    organization_id: str | None = None
    timeout: float = 15.0
    lock_timeout: float = 60.0
    store: str | None = None  # a Redis URL (--store); else $KOYEB_AUTH_STORE, else the cache file


class Account:
    """A session: whose, where its credentials were found, how it is renewed, where it is cached.

    `source` renews it; None for a personal access token, which is used as is (and kept out of
    the repr).
    """

    def __init__(self, *, api_url: str, email: str | None, organization_id: str | None, found_in: str,
                 source: "Source | None", store: "TokenStore", options: Options,
                 personal_token: str | None = None) -> None:
        self.api_url = api_url
        self.email = email
        self.organization_id = organization_id
        self.found_in = found_in
        self.source = source
        self.store = store
        self.options = options
        self._personal_token = personal_token

    @classmethod
    def configured(cls, settings: "Settings", source: "Source | None", store: "TokenStore",
                   options: Options) -> "Account":
        """The account that resolved settings name."""
        return cls(api_url=settings.api_url, email=settings.email, organization_id=settings.organization_id,
                   found_in=settings.found_in, source=source, store=store, options=options,
                   personal_token=settings.token if source is None else None)

    def __repr__(self) -> str:
        return f"Account({self.kind}, email={self.email!r}, api_url={self.api_url!r}, {self.store!r})"

    @property
    def kind(self) -> str:
        if self.source is None:
            return "personal access token"
        return "password login" if self.email else "organization token"

    @property
    def state_path(self) -> Path:
        # Beside the cache file, even when the session lives in Redis: it names the account.
        return state.path_for(FileTokenStore(self.options.cache_path).path)

    def cached(self) -> Token | None:
        """The token that would be sent now, from the cache (or the personal token); no network."""
        if self.source is None:
            assert self._personal_token is not None
            return Token(self._personal_token, obtained_at=0.0)
        token = self.store.load(self.source.key)
        return token if token is not None and token.usable(time.time()) else None

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
    """The account the flags, the environment, the last login or ~/.koyeb.yaml name, in that order.

    ConfigurationError if none does.
    """
    store = store_for(options, environ)
    if not options.email and not any(environ.get(name) for name in _ACCOUNT_VARIABLES):
        path = state.path_for(FileTokenStore(options.cache_path).path)
        last = state.load(path)
        if last is not None and _wanted(last, options, environ):
            return Account(api_url=last.api_url, email=last.email, organization_id=last.organization_id,
                           found_in=f"the last `koyeb-auth login` ({path})", source=last, store=store, options=options)
    # Credentials named elsewhere: a password's store key costs a slow hash (see `_sources`).
    from .._config import Config, Credentials  # noqa: PLC0415 - not needed after a login
    from .._sources import source_for  # noqa: PLC0415

    given = Credentials(email=options.email, organization_id=options.organization_id, api_url=options.api_url)
    settings = Config(environ).settings(given)
    return Account.configured(settings, source_for(settings, None), store, options)


def store_for(options: Options, environ: Mapping[str, str]) -> "TokenStore":
    """The cache file, unless --store or $KOYEB_AUTH_STORE names a Redis store."""
    if options.store or (environ.get("KOYEB_AUTH_STORE") and options.cache_path is None):
        from .._config import default_store, store_from_url  # noqa: PLC0415 - only for a Redis store

        return store_from_url(options.store, "--store") if options.store else default_store(environ, None)
    return FileTokenStore(options.cache_path)


def _wanted(last: state.LastLogin, options: Options, environ: Mapping[str, str]) -> bool:
    """False if the flags or the environment ask for another API URL or organization than the last login's."""
    url = options.api_url or environ.get("KOYEB_URL")
    if url:
        from .._origin import normalize_api_url  # noqa: PLC0415

        url = normalize_api_url(url)
    return last.matches(url, options.organization_id or environ.get("KOYEB_ORGANIZATION"))
