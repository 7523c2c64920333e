"""KoyebAuth as an aiohttp client middleware (aiohttp 3.12 and later)."""

from __future__ import annotations

import contextvars

from .auth import KoyebAuth
from .extras import require
from .origin import key_of

require("aiohttp", "aiohttp", "KoyebAuthMiddleware")
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse  # noqa: E402
from yarl import URL  # noqa: E402  (aiohttp's own URL type)

__all__ = ["KoyebAuthMiddleware"]

_REDIRECTS = (301, 302, 303, 307, 308)
# aiohttp runs middlewares on every hop of a redirect chain, in the caller's task. A hop the
# middleware left untouched that redirects is noted here, so the hop it leads to (the next
# request this task makes) is recognised as part of a chain that started elsewhere.
_led_from_elsewhere: contextvars.ContextVar[URL | None] = contextvars.ContextVar("koyeb_auth_redirect", default=None)


class KoyebAuthMiddleware:
    """Authenticates an `aiohttp.ClientSession`'s requests to the Koyeb API.

    ```python
    async with aiohttp.ClientSession(middlewares=(KoyebAuthMiddleware(),)) as session:
        async with session.get("https://app.koyeb.com/v1/apps") as response:
            print(await response.json())
    ```

    The same rules as KoyebAuth with httpx: a token renewed before it expires, and on a 401 one
    retry with a renewed token when the body can be sent again. A redirect chain that started on
    another origin never gets the token, even where it leads to the API. Tokens are shared with
    every KoyebAuth that uses the same store. Takes a `KoyebAuth` (one is built from the
    environment and ~/.koyeb.yaml if not).
    """

    def __init__(self, auth: KoyebAuth | None = None) -> None:
        self.auth = auth if auth is not None else KoyebAuth()

    def __repr__(self) -> str:
        return f"KoyebAuthMiddleware({self.auth!r})"

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        led_from = _led_from_elsewhere.get()
        _led_from_elsewhere.set(None)
        hop_of_foreign_chain = led_from is not None and _same_target(led_from, request.url)
        authorization = None if hop_of_foreign_chain else await self.auth.aauthorize(request.method, request.url)
        if authorization is None:
            response = await handler(request)
            if response.status in _REDIRECTS and (location := response.headers.get("Location")):
                _led_from_elsewhere.set(request.url.join(URL(location)))
            return response
        while True:
            request.headers["Authorization"] = authorization.header
            response = await handler(request)
            if not authorization.refused(response.status, request.url, request.headers.get("Authorization")):
                return response
            renewed = await authorization.arenew(await response.read())
            # aiohttp payloads say whether they can be sent again: bytes, forms and seekable files
            # can; an async generator cannot.
            if renewed is None or (request.body and request.body.consumed):
                return response
            response.release()
            authorization = renewed


def _same_target(target: URL, url: URL) -> bool:
    """The hop aiohttp makes to a redirect target: same origin and path."""
    return key_of(str(target)) == key_of(str(url)) and target.path == url.path
