"""KoyebAuth: the token provider seen as an httpx.Auth (sync and async) and a requests AuthBase.

Every adapter, these two and those of the other clients, goes through `authorize()` and the
`Authorization` it returns (see `_authorization`): the origin check and the 401 rule live there.

The requests (and niquests `Session`) protocol is in the style of requests' `HTTPDigestAuth`: a
hook registered per request reads the 401, renews the token through the request's `Authorization`,
rewinds the body and sends the request again, once, through the same connection adapter. A
rewinder makes a body ready to be sent again, or says it cannot: bytes, str, JSON and forms always
can; a seekable file can, from where it stood; a generator cannot (its token is still renewed, and
the 401 goes back to the caller).

A KoyebAuth pickles as its configuration (`PicklesAsConfiguration`): the arguments it was given.
A store, an `on_event` hook, an `ssl.SSLContext` or a transport may not pickle, and the pickler's
own error would not say which argument it was; checked before pickling, it does.
"""

from __future__ import annotations

import inspect
import os
import pickle
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Generator
from datetime import timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, overload

# The default store's lock, loaded with KoyebAuth rather than at the first lock (where the store
# would load it): the processes of a cold fleet, or the fresh workers of a pool, all take it at
# once, on their smallest share of the cores, and its import would delay the fleet's one login.
import filelock  # noqa: F401
import httpx
import requests
import requests.auth  # KoyebAuth's base: requests' stubs do not re-export the submodule (pyright)
from requests.cookies import extract_cookies_to_jar

from ._authorization import Authorization
from ._config import Config, Credentials, Settings, default_store
from ._engine import in_thread
from ._manager import PersonalTokenProvider, Timing, TokenManager, TokenProvider, seconds
from ._origin import Origin
from ._origin import shown as url_shown
from ._secrets import ENVIRONMENT, Redacted
from ._sources import (
    DEFAULT_ORGANIZATION_TOKEN_VALIDITY,
    OrganizationTokenMode,
    adopt_hash,
    check_organization_token,
    derived_hash,
    password_salt,
    source_for,
)
from ._token import DEFAULT_REFRESH_MARGIN, Token, usable_bearer
from ._transport import Network
from .errors import ConfigurationError, KoyebAuthError
from .events import EventHook
from .stores._protocol import TokenStore, check_lease

if TYPE_CHECKING:
    import niquests  # an optional client: only its type is named

__all__ = ["KoyebAuth"]


# --- pickled as the configuration -----------------------------------------------------------------

_Self = TypeVar("_Self", bound="PicklesAsConfiguration")

_PICKLING_ADVICE = {
    "store": "Use a store that pickles: FileTokenStore (the default) pickles as its path.",
    "on_event": "Pass a function defined at the top level of a module: lambdas and local functions do not pickle.",
    "verify": "Pass verify= the path of a CA bundle rather than an ssl.SSLContext.",
}


def check_picklable(argument: str, value: object) -> None:
    """Raise a ConfigurationError naming `argument` if `value` cannot be pickled."""
    if value is None:
        return
    try:
        pickle.dumps(value)
    except KoyebAuthError:
        raise  # the object's own explanation (MemoryTokenStore says why it refuses)
    except Exception as exc:  # pickle raises TypeError, AttributeError or PicklingError
        reason = f"{type(exc).__name__}: {exc}"
    else:
        return
    advice = _PICKLING_ADVICE.get(argument, "Build the KoyebAuth in each process instead.")
    raise ConfigurationError(
        f"This KoyebAuth cannot be pickled: its {argument}= ({type(value).__qualname__}) cannot be ({reason}). "
        f"{advice}"
    )


class PicklesAsConfiguration:
    """Pickled and copied as the attributes `_CONFIGURATION` names, rebuilt by `_start()`.

    What belongs to a process (locks, the resolved settings, a token in memory) is not carried:
    `_start()` makes it anew, in a copy as on the other side of a pickle. A copy in the same
    process shares the configured objects themselves (a store and its in-process locks, an
    SSLContext or a transport, which need not pickle for that).
    """

    _CONFIGURATION: ClassVar[tuple[str, ...]] = ()

    def _start(self) -> None:
        raise NotImplementedError

    def _arguments_that_may_not_pickle(self) -> tuple[tuple[str, object], ...]:
        """(argument name, value) of what a pickle would carry that may refuse to be pickled."""
        return ()

    def __getstate__(self) -> dict[str, Any]:
        """The configuration: arguments as given, so a password or token passed as an argument travels
        (the copy must log in) but one read from the environment does not. Never a token obtained."""
        for argument, value in self._arguments_that_may_not_pickle():
            check_picklable(argument, value)
        return {name: getattr(self, name) for name in self._CONFIGURATION}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({name: state[name] for name in self._CONFIGURATION})
        self._start()

    def __copy__(self: _Self) -> _Self:
        clone = type(self).__new__(type(self))
        clone.__setstate__({name: getattr(self, name) for name in self._CONFIGURATION})
        return clone

    def __deepcopy__(self: _Self, memo: dict[int, Any]) -> _Self:
        return self.__copy__()


# --- KoyebAuth ------------------------------------------------------------------------------------

class KoyebAuth(PicklesAsConfiguration, httpx.Auth, requests.auth.AuthBase):
    """Authenticate requests to the Koyeb API; pass it as `auth=` to httpx or requests.

    ```python
    auth = KoyebAuth()  # credentials from the environment or ~/.koyeb.yaml
    with httpx.Client(base_url="https://app.koyeb.com", auth=auth) as client:
        client.get("/v1/apps")
    ```

    Construction does no I/O: the first request logs in (or adopts a token another process
    cached). Tokens are renewed before they expire and after a 401, by one caller at a time across
    threads, tasks and processes. Only requests to the API's own origin get the token.

    A KoyebAuth pickles and copies as its configuration (see `__getstate__`), so a worker pool can
    be handed one: the copies share its store, and so its token.
    """

    #: The module whose Request and stream classes the httpx flows handle (httpx2 in Httpx2KoyebAuth).
    httpx_module: ClassVar[ModuleType] = httpx

    def __init__(
        self,
        email: str | None = None,
        password: str | None = None,
        *,
        token: str | None = None,
        organization_id: str | None = None,
        api_url: str | None = None,
        profile: str | None = None,
        cache_path: str | os.PathLike[str] | None = None,
        refresh_margin: float | timedelta = DEFAULT_REFRESH_MARGIN,
        seon_fp: str | None = None,
        store: TokenStore | None = None,
        timeout: float = 15.0,
        lock_timeout: float = 60.0,
        verify: ssl.SSLContext | str | os.PathLike[str] | None = None,
        proxy: str | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        on_event: EventHook | None = None,
        organization_token: OrganizationTokenMode = "auto",  # noqa: S107 - how it is obtained, not a secret
        organization_token_validity: float | timedelta = DEFAULT_ORGANIZATION_TOKEN_VALIDITY,
    ) -> None:
        """Take the configuration; no I/O (the credentials are read and checked at the first request).

        Credentials, the first that names any wins (see docs/configuration.md):

        - `email`, `password`: a password login (`POST /v1/account/login`); the session is renewed
          with `PUT /v1/account/refresh`. Koyeb has deprecated it: prefer `token`.
        - `token`: a personal access token (the Koyeb console, Settings, API), sent as is (with an
          `organization_id`, exchanged for an organization token).
        - `profile`: the login `koyeb-auth login --profile NAME` saved.
        - none of these: `KOYEB_EMAIL` and `KOYEB_PASSWORD`, `KOYEB_TOKEN` or `KOYEB_API_TOKEN`, then
          the last `koyeb-auth login`, then the Koyeb CLI's `~/.koyeb.yaml` (`KOYEB_CONFIG`).

        Where and as whom:

        - `organization_id`: the organization to work in (default `KOYEB_ORGANIZATION`, else the
          login's or the CLI file's). A personal access token is exchanged for an organization token.
        - `api_url`: the API (default `KOYEB_URL` or `KOYEB_API_HOST`, else the login's or the CLI
          file's, else `https://app.koyeb.com`). Only requests to its origin get the token.
        - `organization_token`: how a personal access token becomes an organization token: `"auto"`
          (the switch until Koyeb withdraws it, then the access token endpoint), `"access_token"` or
          `"switch"`.
        - `organization_token_validity`: seconds (or a timedelta) an organization access token is
          asked for; at most 86400.

        Sharing and renewal:

        - `cache_path`: the cache file tokens are shared through (default `tokens.json` in the user
          cache directory); its logins are kept beside it.
        - `store`: another `TokenStore` instead (a `RedisTokenStore` for hosts that share no disk);
          default `KOYEB_AUTH_STORE`, else the cache file. Not with `cache_path`.
        - `refresh_margin`: seconds (or a timedelta) before expiry a token is renewed (half its
          lifetime, for a token that lives less than twice this).
        - `timeout`: seconds for one whole session call (login, refresh, switch, logout).
        - `lock_timeout`: seconds to wait for a renewal another thread, task or process is doing,
          before `LockTimeoutError`.
        - `on_event`: called with a `TokenEvent` when a token is obtained, refreshed, rejected or
          fails to renew; a hook that raises is logged, never raised.

        The session calls' network (requests you send go through your own client's):

        - `verify`: an `ssl.SSLContext` or a CA bundle's path (default `SSL_CERT_FILE`, else the
          system's trust store); TLS is always verified.
        - `proxy`: a proxy URL (default `HTTPS_PROXY`).
        - `transport`, `async_transport`: httpx transports to send them through (a mock in tests).
        - `seon_fp`: the optional `seon-fp` header sent on login.

        Raises ConfigurationError for arguments that cannot work together or cannot be sent
        (`cache_path` with `store`, a `seon_fp` with spaces, a malformed proxy URL, an unknown
        `organization_token` or validity, a timeout that is not positive).
        """
        # Secrets as Redacted from the first line: a traceback's locals then show none of them. (A
        # mistyped API URL or a proxy URL may hold a password too.)
        password, token, api_url, proxy = (_redacted(value) for value in (password, token, api_url, proxy))
        if store is not None and cache_path is not None:
            raise ConfigurationError("Pass either cache_path= or store=, not both.")
        if seon_fp is not None and not usable_bearer(seon_fp):
            raise ConfigurationError("seon_fp= must be printable ASCII without spaces (it is sent as a header).")
        validity = seconds(organization_token_validity)
        check_organization_token(organization_token, validity)
        self._organization_token = (organization_token, validity)
        # The logins of `koyeb-auth login` (the default one, or `profile`'s) are beside the cache file.
        self._credentials = Credentials(email, password, token, organization_id, api_url, profile, cache_path)
        self._timing = Timing.checked(refresh_margin, timeout, lock_timeout)
        self._network = Network(verify, proxy, transport, async_transport)
        # A store of the environment's ($KOYEB_AUTH_STORE, else the default cache file) is not pickled:
        # the copy finds its own, as it reads its own credentials, and no Redis password travels.
        self._store_of_environment = store is None and cache_path is None
        self._store = store if store is not None else default_store(ENVIRONMENT, cache_path)
        check_lease(self._store, timeout)
        self._seon_fp = seon_fp
        self._on_event = on_event
        self._start()

    def _start(self) -> None:
        # What belongs to this process: built here, and again in a copy, never pickled.
        self._config = Config(ENVIRONMENT)
        self._setup_lock = threading.Lock()
        _instances.add(self)
        self._ready: tuple[Origin, Settings, TokenProvider] | None = None
        self._last: Authorization | None = None

    def __repr__(self) -> str:
        given = getattr(self, "_credentials", None)
        if given is None:  # a traceback that shows locals reprs `self` while __init__ fails
            return "KoyebAuth(<not built>)"
        shown = [f"email={given.email!r}"] if given.email else ["token=<redacted>"] if given.token else []
        shown += [f"organization_id={given.organization_id!r}"] if given.organization_id else []
        shown += [f"api_url={url_shown(given.api_url)!r}"] if given.api_url else []
        return f"KoyebAuth({', '.join(shown)})"

    # --- tokens -----------------------------------------------------------------------------------

    def get_token(self) -> str:
        """A valid token, logging in or refreshing as needed."""
        return self._provider().get_token().value

    async def aget_token(self) -> str:
        """`get_token` for coroutines: never blocks the event loop."""
        return (await self._provider().aget_token()).value

    def refresh(self) -> str:
        """Renew the token now, even if it looks valid, and return the new one.

        For a token the API refused to another client (a curl, a subprocess given it): requests
        made through this auth renew after a 401 by themselves. The renewal takes the path a 401
        takes: one caller at a time across threads, tasks and processes, and a caller that finds
        the token already replaced by a peer returns the peer's, so callers that refresh together
        renew once. With no token cached, this logs in. A personal access token is returned as is
        (only the Koyeb console renews it).
        """
        provider = self._provider()
        current = provider.cached()
        renewed = provider.renew_rejected(current) if current is not None else None
        return (renewed or provider.get_token()).value

    async def arefresh(self) -> str:
        """`refresh` for coroutines: never blocks the event loop."""
        provider = self._provider()
        current = await in_thread(provider.cached)  # may read the store (a file, Redis); trio too
        renewed = await provider.arenew_rejected(current) if current is not None else None
        return (renewed or await provider.aget_token()).value

    def logout(self) -> bool:
        """End the session (DELETE /v1/account/logout) and drop it from the shared cache.

        Returns False when there was no session to end: none cached for these credentials (a
        session belongs to the password that opened it), or a personal access token (which only
        the Koyeb console revokes).
        """
        return self._provider().logout()

    async def alogout(self) -> bool:
        """`logout` for coroutines."""
        return await self._provider().alogout()

    @property
    def settings(self) -> Settings:
        """Where the credentials came from, resolved on first use (reads ~/.koyeb.yaml if needed)."""
        return self._setup()[1]

    @property
    def store(self) -> TokenStore:
        """The store that shares this auth's tokens with other processes."""
        return self._store

    def cached_token(self) -> Token | None:
        """The token that would be used now, without any network call; None if there is none."""
        return self._provider().cached()

    # --- the surface for adapters -------------------------------------------------------------------

    def authorize(self, method: str, url: Any) -> Authorization | None:
        """The token for a request to `url`, and its 401 rule; None if the request must not carry one.

        `url` is a str, or an httpx or httpx2 URL. None means another origin than the API's, or
        the login call itself: send the request untouched. May log in or refresh (blocking).
        """
        origin, _, provider = self._setup()
        if not origin.authorizes(method, url):
            return None
        token = provider.get_token()
        last = self._last
        if last is None or last.token is not token:
            # One Authorization per token, reused by every request that carries it: the hot path
            # then builds nothing.
            last = self._last = Authorization(token, provider, origin)
        return last

    async def aauthorize(self, method: str, url: Any) -> Authorization | None:
        """`authorize` for coroutines: never blocks the event loop."""
        origin, _, provider = self._setup()
        if not origin.authorizes(method, url):
            return None
        token = provider.peek() or await provider.aget_token()  # a fresh token costs no coroutine
        last = self._last
        if last is None or last.token is not token:
            # One Authorization per token, reused by every request that carries it: the hot path
            # then builds nothing.
            last = self._last = Authorization(token, provider, origin)
        return last

    # --- httpx ------------------------------------------------------------------------------------

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """httpx's sync flow: the token on requests to the API; on a 401, a renewed token and a resend.

        The resend needs a body that can be sent again (bytes, a form, JSON; not a generator): with
        one that cannot, the token is still renewed and the 401 is returned.
        """
        authorization = self.authorize(request.method, request.url)
        if authorization is None:
            yield request
            return
        rewind = httpx_rewinder(request, self.httpx_module)
        request.headers["Authorization"] = authorization.header
        response = yield request
        # The status first: reading the request's headers costs more than the rest of the flow.
        while response.status_code == 401 and authorization.refused(
            response.status_code, response.request.url, sent_again(request, response)
        ):
            authorization = authorization.renew(response.read())
            if authorization is None or not rewind():
                return
            request.headers["Authorization"] = authorization.header
            response = yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """`sync_auth_flow` for `httpx.AsyncClient`: never blocks the event loop."""
        authorization = await self.aauthorize(request.method, request.url)
        if authorization is None:
            yield request
            return
        rewind = httpx_rewinder(request, self.httpx_module)
        request.headers["Authorization"] = authorization.header
        response = yield request
        while response.status_code == 401 and authorization.refused(
            response.status_code, response.request.url, sent_again(request, response)
        ):
            authorization = await authorization.arenew(await response.aread())
            if authorization is None or not rewind():
                return
            request.headers["Authorization"] = authorization.header
            response = yield request

    # --- requests ---------------------------------------------------------------------------------

    # niquests' sync Session runs requests' auth protocol with its own PreparedRequest: its `auth=`
    # type takes a callable of that class (niquests.typing.HttpAuthenticationType), not requests'
    # AuthBase, so each library's signature is declared.
    @overload
    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest: ...

    @overload
    def __call__(self, r: niquests.PreparedRequest) -> niquests.PreparedRequest: ...

    def __call__(self, r: Any) -> Any:
        """requests' (and niquests' `Session`) auth protocol: the token; on a 401, a renewal and a resend.

        Raises ConfigurationError when called on another client's request (httpx2, aiohttp,
        niquests.AsyncSession): each has its own adapter, named in the message.
        """
        if not isinstance(r.url, str):
            raise ConfigurationError(
                f"KoyebAuth was called on a {type(r.url).__module__.split('.')[0]} request as if it were requests: "
                "use Httpx2KoyebAuth with httpx2, KoyebAuthMiddleware with aiohttp, "
                "NiquestsAsyncKoyebAuth with niquests.AsyncSession."
            )
        authorization = self.authorize(r.method or "", r.url)
        if authorization is None:
            return r
        return authorize_prepared(r, authorization)

    # --- setup ------------------------------------------------------------------------------------

    def _provider(self) -> TokenProvider:
        return self._setup()[2]

    def _setup(self) -> tuple[Origin, Settings, TokenProvider]:
        ready = self._ready
        if ready is not None:
            return ready
        with self._setup_lock:  # one thread reads the settings (a file, a password hash); the others wait
            if self._ready is None:
                settings = self._config.settings(self._credentials)
                source = source_for(settings, self._seon_fp, *self._organization_token)
                if source is None:
                    assert settings.token is not None
                    provider: TokenProvider = PersonalTokenProvider(settings.token)
                else:
                    provider = TokenManager(source, self._store, self._timing, self._network, on_event=self._on_event)
                self._ready = (Origin(settings.api_url), settings, provider)
            return self._ready

    # --- pickling and copies (see `PicklesAsConfiguration`) ----------------------------------------

    # What a copy is made of: the arguments as given. Not the environment (the copy reads its own),
    # not a token (the copy finds it in the shared store), not locks (the copy makes its own).
    _CONFIGURATION: ClassVar[tuple[str, ...]] = ("_credentials", "_timing", "_network", "_store", "_seon_fp",
                                                 "_on_event", "_organization_token", "_store_of_environment")

    def _arguments_that_may_not_pickle(self) -> tuple[tuple[str, object], ...]:
        network = self._network
        store = None if self._store_of_environment else self._store
        return (("store", store), ("on_event", self._on_event), ("verify", network.verify),
                ("transport", network.transport), ("async_transport", network.async_transport))

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if self._store_of_environment:
            state = {**state, "_store": None}
        return {**state, "_password_hash": self._derived_password_hash()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state["_store_of_environment"]:
            state = {**state, "_store": default_store(ENVIRONMENT, None)}
        super().__setstate__(state)
        password, carried = self._credentials.password, state.get("_password_hash")
        if password is not None and carried is not None:
            adopt_hash(password, *carried)

    def _derived_password_hash(self) -> tuple[str, str] | None:
        """(salt, hash) of the password passed as an argument, if this process has derived it: a
        pickle carries that password anyway, and with the hash a pool's workers find the parent's
        session without deriving it again (a deliberately slow hash each). Never for a password read from
        the environment, which the pickle does not carry."""
        password, ready = self._credentials.password, self._ready
        if password is None or ready is None or ready[1].email is None:
            return None
        salt = password_salt(ready[1].api_url, ready[1].email)
        derived = derived_hash(password, salt)
        return None if derived is None else (salt, derived)


# Every KoyebAuth, weakly, so that a fork can give each a setup lock of its own.
_instances: weakref.WeakSet[KoyebAuth] = weakref.WeakSet()


def _reset_after_fork() -> None:
    # A thread of the parent may have been setting up (reading ~/.koyeb.yaml, hashing the password)
    # when another thread forked: the child has no such thread, and its copy of the lock stays held.
    for auth in list(_instances):
        auth._setup_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _redacted(secret: str | None) -> str | None:
    # Anything but a str is left as given, for the settings to refuse by its type (str() of it
    # would turn b"pw" into the password "b'pw'").
    return Redacted(secret) if isinstance(secret, str) else secret


# --- the requests protocol: a header, and the 401 as a response hook ------------------------------

def authorize_prepared(r: requests.PreparedRequest, authorization: Authorization) -> requests.PreparedRequest:
    """`r` with `authorization`'s header, and a hook that renews the token and resends on a 401."""
    r.headers["Authorization"] = authorization.header
    rewind = requests_rewinder(r.body)

    # Per-request state lives in this closure, not in thread-locals, so a request prepared on
    # one thread can be sent from another (requests#5178).
    def handle_401(response: requests.Response, **kwargs: Any) -> requests.Response:
        current: Authorization | None = authorization
        while current is not None and current.refused(response.status_code, response.request.url,
                                                      response.request.headers.get("Authorization")):
            content: Any = response.content
            if inspect.iscoroutine(content):  # niquests.AsyncSession, which needs an async auth
                content.close()
                raise ConfigurationError("Use NiquestsAsyncKoyebAuth(auth) as the auth of a niquests.AsyncSession.")
            current = current.renew(content or b"")
            if current is None or not rewind():
                break
            response.close()  # content was read: the connection goes back to the pool
            retry = resend_of(response, current.header)
            # The adapter's send runs no hooks, so this retry cannot trigger another one.
            again: requests.Response = response.connection.send(retry, **kwargs)
            again.history.append(response)
            again.request = retry
            response = again
        return response

    r.register_hook("response", handle_401)  # type: ignore[no-untyped-call]
    return r


# --- sending a request again ----------------------------------------------------------------------

Rewinder = Callable[[], bool]


def httpx_rewinder(request: Any, flavour: ModuleType) -> Rewinder:
    """The rewinder of an httpx (or httpx2: `flavour` is the module) request's body."""
    stream = request.stream
    if isinstance(stream, flavour.ByteStream):
        return _always  # bytes, str, JSON, forms
    if isinstance(stream, flavour._multipart.MultipartStream):
        # Multipart re-reads each file from the start: only if every file can seek back there.
        files = [getattr(part, "file", b"") for part in stream.fields]
        return _always if all(isinstance(f, (str, bytes)) or _seekable(f) for f in files) else _never
    # A file passed as content= is read from where it stands: note that, to seek back to it.
    # A generator can be read once only, so it is never replayed.
    file: Any = getattr(stream, "_stream", None)
    if isinstance(stream, flavour._content.IteratorByteStream) and _seekable(file):
        return _seeker(file, file.tell())
    return _never


def requests_rewinder(body: object) -> Rewinder:
    """The rewinder of a requests (or niquests) prepared body."""
    if body is None or isinstance(body, (bytes, str)):
        return _always
    if _seekable(body):
        return _seeker(body, body.tell())  # type: ignore[attr-defined]
    return _never


def resend_of(response: Any, header: str) -> Any:
    """The request that got `response`, again: its cookies, and `header` (a token's
    `Redacted` header) as its Authorization."""
    retry = response.request.copy()
    jar = retry._cookies
    extract_cookies_to_jar(jar, response.request, response.raw)  # type: ignore[no-untyped-call]
    retry.prepare_cookies(jar)
    retry.headers["Authorization"] = header
    return retry


def _seekable(file: object) -> bool:
    try:
        return bool(file.seekable())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _seeker(file: Any, position: int) -> Rewinder:
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


def sent_again(request: Any, response: Any) -> str | None:
    """The Authorization header of the request an httpx 401 answers, if resending `request` (what
    the flow does) repeats it: the same method, so no redirect turned it into another (a 303, or a
    302 after a POST, makes a GET: resending the POST would make it twice)."""
    if response.request.method != request.method:
        return None
    sent: str | None = response.request.headers.get("Authorization")
    return sent
