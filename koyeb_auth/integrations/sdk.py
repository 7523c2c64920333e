"""Koyeb's own Python SDK (`koyeb-sdk`) with tokens managed by KoyebAuth.

The sync SDK sends with urllib3, so it cannot take an `auth=`: its `refresh_api_key_hook` hands
it a valid token before every request, and `call_api`, the one method every operation goes
through, renews the token and sends again once on a 401. The async SDK sends with an
`httpx.AsyncClient`, which is given KoyebAuth as its `auth=`: its async flow does both.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from .._extras import require
from ..auth import KoyebAuth

require("koyeb.api", "sdk", "The Koyeb SDK integration")
import koyeb.api  # noqa: E402  (after the check that names the extra)
import koyeb.api_async  # noqa: E402
import urllib3  # noqa: E402  (the sync SDK's own client)

__all__ = ["async_sdk_client", "sdk_client", "sdk_configuration"]


def sdk_configuration(auth: KoyebAuth | None = None) -> koyeb.api.Configuration:
    """A `koyeb.api.Configuration` whose every request carries a valid token from `auth`."""
    auth = auth if auth is not None else KoyebAuth()
    configuration = koyeb.api.Configuration(host=auth.settings.api_url)
    # The SDK calls the hook only when a `Bearer` key is already set. With no prefix it sends the
    # key as is: the whole header value, a `Redacted` str, so that the SDK's own frames and dicts
    # never show the token either.
    configuration.api_key["Bearer"] = ""
    # The SDK leaves the hook's attribute unannotated, set to None, so its declared type is None.
    configuration.refresh_api_key_hook = lambda c: c.api_key.__setitem__(  # type: ignore[assignment]
        "Bearer", _header(auth, c.host)
    )
    return configuration


def _header(auth: KoyebAuth, host: str) -> str:
    authorization = auth.authorize("GET", host + "/")
    return authorization.header if authorization is not None else ""


class _RenewingApiClient(koyeb.api.ApiClient):
    def __init__(self, auth: KoyebAuth, **options: Any) -> None:
        # No API key: the SDK adds no header; call_api sets the one of the authorization it sends.
        super().__init__(koyeb.api.Configuration(host=auth.settings.api_url), **options)
        self._auth = auth

    def call_api(self, method: str, url: str, header_params: dict[str, str] | None = None, *args: Any,
                 **kwargs: Any) -> Any:
        headers = dict(header_params or {})
        authorization = self._auth.authorize(method, url)
        if authorization is None:  # not the API's origin: no token
            return super().call_api(method, url, headers, *args, **kwargs)
        response = None
        while authorization is not None:
            headers["Authorization"] = authorization.header
            # The SDK passes bodies as JSON-ready objects or bytes: they can always be sent again.
            response = super().call_api(method, url, headers, *args, **kwargs)
            if not authorization.refused(response.status, *_answered(response, method, url, authorization.header)):
                break
            authorization = authorization.renew(response.read())  # type: ignore[no-untyped-call]  # unannotated in the SDK
        return response


def _answered(response: Any, method: str, url: str, sent: str) -> tuple[str, str | None]:
    """The URL the response came from, and the Authorization header its request still carried.

    urllib3 follows redirects itself, with its own URL parser, and drops the header for good at
    the first hop to another origin: past such a hop, or after a redirect that changed the request
    (a 303, or a 301/302 after a POST, makes a GET), the 401 is not an answer to what we resend.
    """
    retries = response.response.retries
    current, kept = url, True
    same_request = method.upper() in ("GET", "HEAD")  # no redirect changes those
    for hop in retries.history if retries else ():
        if hop.redirect_location:  # as urllib3 follows it: joined to where it came from
            target = urljoin(current, hop.redirect_location)
            unchanged = same_request or hop.status in (307, 308)
            kept = kept and unchanged and _origin(target) == _origin(current)
            current = target
    return current, sent if kept else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib3.util.parse_url(url)  # urllib3's reading, not urlsplit's: they differ on "\\@"
    scheme = (parts.scheme or "").lower()
    return scheme, (parts.host or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


def sdk_client(auth: KoyebAuth | None = None, **options: Any) -> koyeb.api.ApiClient:
    """A `koyeb.api.ApiClient` that keeps a valid token, and renews it and retries once on a 401.

    ```python
    with sdk_client(KoyebAuth()) as client:
        apps = koyeb.api.AppsApi(client).list_apps().apps
    ```
    """
    return _RenewingApiClient(auth if auth is not None else KoyebAuth(), **options)


def async_sdk_client(auth: KoyebAuth | None = None, **options: Any) -> koyeb.api_async.ApiClient:
    """A `koyeb.api_async.ApiClient` whose requests go through KoyebAuth's async flow.

    ```python
    async with async_sdk_client(KoyebAuth()) as client:
        apps = (await koyeb.api_async.AppsApi(client).list_apps()).apps
    ```
    """
    auth = auth if auth is not None else KoyebAuth()
    client = koyeb.api_async.ApiClient(koyeb.api_async.Configuration(host=auth.settings.api_url), **options)
    # The SDK builds its httpx.AsyncClient on first use; build it now, with its own settings
    # (pool size, TLS, proxy), and our auth. No `Bearer` key is set, so the SDK adds no header.
    pool = client.rest_client._create_pool_manager()
    pool.auth = auth
    client.rest_client.pool_manager = pool
    return client
