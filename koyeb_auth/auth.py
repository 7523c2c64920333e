"""KoyebAuth: the token manager seen as an httpx.Auth (sync and async) and a requests AuthBase."""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import timedelta
from types import ModuleType
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import requests
from requests.cookies import extract_cookies_to_jar

from . import api
from .config import Config, Settings
from .errors import ConfigurationError
from .manager import StaticToken, TokenManager, TokenProvider
from .sources import source_for
from .store import FileTokenStore, TokenStore
from .token import Token

DEFAULT_REFRESH_MARGIN = 300.0
_DEFAULT_PORTS = {"http": 80, "https": 443}


class KoyebAuth(httpx.Auth, requests.auth.AuthBase):
    """Authenticate requests to the Koyeb API; pass it as `auth=` to httpx or requests.

    ```python
    auth = KoyebAuth()  # credentials from the environment or ~/.koyeb.yaml
    with httpx.Client(base_url="https://app.koyeb.com", auth=auth) as client:
        client.get("/v1/apps")
    ```

    Construction does no I/O: the first request logs in (or adopts a token another process
    cached). Tokens are renewed before they expire and after a 401, by one caller at a time across
    threads, tasks and processes. Only requests to the API's own origin get the token.
    """

    # The module whose Request and stream classes the httpx flows handle (httpx2 in the subclass).
    _httpx: ClassVar[ModuleType] = httpx

    def __init__(
        self,
        email: str | None = None,
        password: str | None = None,
        *,
        token: str | None = None,
        organization_id: str | None = None,
        api_url: str | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        refresh_margin: float | timedelta = DEFAULT_REFRESH_MARGIN,
        seon_fp: str | None = None,
        store: TokenStore | None = None,
        timeout: float = 15.0,
        lock_timeout: float = 60.0,
    ) -> None:
        if store is not None and cache_path is not None:
            raise ConfigurationError("Pass either cache_path= or store=, not both.")
        margin = refresh_margin.total_seconds() if isinstance(refresh_margin, timedelta) else float(refresh_margin)
        if not margin >= 0 or timeout <= 0 or lock_timeout <= 0:
            raise ConfigurationError("refresh_margin must be >= 0, and timeout and lock_timeout > 0 seconds.")
        self._credentials = (email, password, token, organization_id, api_url)
        self._config = Config(os.environ)
        self._store = store if store is not None else FileTokenStore(cache_path)
        self._options = {"refresh_margin": margin, "timeout": timeout, "lock_timeout": lock_timeout}
        self._seon_fp = seon_fp
        self._setup_lock = threading.Lock()
        self._origin: _Origin | None = None
        self._settings: Settings | None = None
        self._provider: TokenProvider | None = None

    def __repr__(self) -> str:
        email, _, token, organization_id, api_url = self._credentials
        shown = [f"email={email!r}"] if email else ["token=<redacted>"] if token else []
        shown += [f"organization_id={organization_id!r}"] if organization_id else []
        shown += [f"api_url={api_url!r}"] if api_url else []
        return f"KoyebAuth({', '.join(shown)})"

    # --- tokens -----------------------------------------------------------------------------------

    def get_token(self) -> str:
        """A valid token, logging in or refreshing as needed."""
        return self._tokens().get_token()

    async def aget_token(self) -> str:
        return await self._tokens().aget_token()

    def logout(self) -> None:
        """End the session (DELETE /v1/account/logout) and drop it from the shared cache."""
        self._tokens().logout()

    async def alogout(self) -> None:
        await self._tokens().alogout()

    @property
    def settings(self) -> Settings:
        """Where the credentials came from, resolved on first use (reads ~/.koyeb.yaml if needed)."""
        self._tokens()
        assert self._settings is not None
        return self._settings

    @property
    def store(self) -> TokenStore:
        return self._store

    def cached_token(self) -> Token | None:
        """The token that would be used now, without any network call; None if there is none."""
        return self._tokens().cached()

    # --- httpx ------------------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._origin_of().admits_httpx(request):
            yield request
            return
        tokens = self._tokens()
        sent = tokens.get_token()
        rewind = _httpx_rewinder(request, self._httpx)
        response = yield _authorize(request, sent)
        if response.status_code == 401 and renewable(response.read()):
            renewed = tokens.renew_rejected(sent)
            if renewed is not None and rewind():
                retried = yield _authorize(request, renewed)
                if retried.status_code == 401:
                    tokens.suspect(renewed)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._origin_of().admits_httpx(request):
            yield request
            return
        tokens = self._tokens()
        sent = tokens.fresh() or await tokens.aget_token()  # no coroutine on the hot path
        rewind = _httpx_rewinder(request, self._httpx)
        response = yield _authorize(request, sent)
        if response.status_code == 401 and renewable(await response.aread()):
            renewed = await tokens.arenew_rejected(sent)
            if renewed is not None and rewind():
                retried = yield _authorize(request, renewed)
                if retried.status_code == 401:
                    tokens.suspect(renewed)

    # --- requests ---------------------------------------------------------------------------------

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        if not self._origin_of().admits(r.method or "", r.url or ""):
            return r
        tokens = self._tokens()
        sent = tokens.get_token()
        r.headers["Authorization"] = f"Bearer {sent}"
        rewind = requests_rewinder(r.body)

        # Per-request state lives in this closure, not in thread-locals, so a request prepared on
        # one thread can be sent from another (requests#5178).
        def handle_401(response: requests.Response, **kwargs: Any) -> requests.Response:
            if response.status_code != 401:
                return response
            content: Any = response.content
            if inspect.iscoroutine(content):  # niquests.AsyncSession, which needs an async auth
                content.close()
                raise ConfigurationError("Use NiquestsAsyncKoyebAuth(auth) as the auth of a niquests.AsyncSession.")
            if not renewable(content or b""):
                return response
            renewed = tokens.renew_rejected(sent)
            if renewed is None or not rewind():
                return response
            response.close()  # content was read: the connection goes back to the pool
            retry = retry_of(response, renewed)
            # The adapter's send runs no hooks, so this retry cannot trigger another one.
            again: requests.Response = response.connection.send(retry, **kwargs)
            again.history.append(response)
            again.request = retry
            if again.status_code == 401:
                tokens.suspect(renewed)
            return again

        r.register_hook("response", handle_401)  # type: ignore[no-untyped-call]
        return r

    # --- setup ------------------------------------------------------------------------------------

    def _origin_of(self) -> _Origin:
        origin = self._origin
        if origin is None:
            self._tokens()
            origin = self._origin
            assert origin is not None
        return origin

    def _tokens(self) -> TokenProvider:
        provider = self._provider
        if provider is None:
            with self._setup_lock:
                provider = self._provider or self._build_provider()
        return provider

    def _build_provider(self) -> TokenProvider:
        settings = self._config.settings(*self._credentials)
        self._origin = _Origin(settings.api_url)
        source = source_for(settings, self._seon_fp)
        if source is None:
            assert settings.token is not None
            provider: TokenProvider = StaticToken(settings.token)
        else:
            provider = TokenManager(source, self._store, **self._options)
        self._settings, self._provider = settings, provider
        return provider


class _Origin:
    """The API's scheme, host and port: the only place the token is ever sent."""

    def __init__(self, api_url: str) -> None:
        parts = urlsplit(api_url)
        self.key = (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS[parts.scheme])
        self.login_path = parts.path + api.LOGIN_PATH
        scheme, host, port = self.key
        # httpx normalizes URLs (lower-case host, brackets around IPv6, no default port): its
        # netloc compares as bytes, which keeps this check off the per-request profile.
        host = f"[{host}]" if ":" in host else host
        self.scheme = scheme
        self.netloc = (host if port == _DEFAULT_PORTS[scheme] else f"{host}:{port}").encode()
        # requests lower-cases the host of a prepared URL, so most URLs of the API start with this.
        self.prefix = f"{scheme}://{self.netloc.decode()}/"

    def admits_httpx(self, request: httpx.Request) -> bool:
        url = request.url
        if url.netloc != self.netloc or url.scheme != self.scheme:
            return False
        return not (request.method == "POST" and url.path == self.login_path)

    def admits(self, method: str, url: str) -> bool:
        if url.__class__ is str and url.startswith(self.prefix) and method != "POST":
            return True  # the common case, decided without parsing the URL
        if not isinstance(url, str):
            raise ConfigurationError(
                f"KoyebAuth was called on a {type(url).__module__.split('.')[0]} request as if it were requests: "
                "use Httpx2KoyebAuth with httpx2, KoyebAuthMiddleware with aiohttp, "
                "NiquestsAsyncKoyebAuth with niquests.AsyncSession."
            )
        parts = urlsplit(url)
        try:
            scheme = parts.scheme.lower()
            key = (scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0))
        except ValueError:  # a port that is not a number
            return False
        return key == self.key and not (method == "POST" and parts.path == self.login_path)


def _authorize(request: httpx.Request, token: str) -> httpx.Request:
    request.headers["Authorization"] = f"Bearer {token}"
    return request


def renewable(body: bytes) -> bool:
    # A 401 saying `Token rejected` means a deactivated organization: a new token cannot help.
    return api.rejection_message(body) != api.TOKEN_REJECTED


def _httpx_rewinder(request: httpx.Request, flavour: ModuleType) -> Callable[[], bool]:
    """A function that makes the request body ready to send again, or says it cannot.

    `flavour` is the module whose classes the request is made of: httpx, or httpx2.
    """
    stream = request.stream
    if isinstance(stream, (flavour.ByteStream, flavour._multipart.MultipartStream)):
        return _always  # bytes, str, JSON, forms; multipart re-reads its files from the start
    # A file passed as content= is read from where it stands: note that, to seek back to it.
    # A generator can be read once only, so it is never replayed.
    file: Any = getattr(stream, "_stream", None)
    if isinstance(stream, flavour._content.IteratorByteStream) and _seekable(file):
        return _seeker(file, file.tell())
    return _never


def retry_of(response: Any, renewed: str) -> Any:
    """The request that got `response`, again: its cookies, and the renewed token (requests, niquests)."""
    retry = response.request.copy()
    jar = retry._cookies
    extract_cookies_to_jar(jar, response.request, response.raw)  # type: ignore[no-untyped-call]
    retry.prepare_cookies(jar)
    retry.headers["Authorization"] = f"Bearer {renewed}"
    return retry


def requests_rewinder(body: object) -> Callable[[], bool]:
    if body is None or isinstance(body, (bytes, str)):
        return _always
    if _seekable(body):
        return _seeker(body, body.tell())  # type: ignore[attr-defined]
    return _never


def _seekable(file: object) -> bool:
    try:
        return bool(file.seekable())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _seeker(file: Any, position: int) -> Callable[[], bool]:
    def rewind() -> bool:
        try:
            file.seek(position)
        except (OSError, ValueError):
            return False
        return True

    return rewind


def _always() -> bool:
    return True


def _never() -> bool:
    return False
