"""KoyebAuth as an aiohttp client middleware (aiohttp 3.12 and later)."""

from __future__ import annotations

import contextvars

from .auth import KoyebAuth
from .extras import require

require("aiohttp", "aiohttp", "KoyebAuthMiddleware")
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse  # noqa: E402

__all__ = ["KoyebAuthMiddleware"]

_REDIRECTS = (301, 302, 303, 307, 308)
# aiohttp runs middlewares on every hop of a redirect chain, in the caller's task, one after the
# other. A response to a request the middleware left untouched that redirects is noted here: the
# next request this task makes is the hop it leads to (when aiohttp follows it), and is never
# authorized, wherever it goes. (With allow_redirects=False, a request of the caller's own right
# after such a response goes out without a token once: failing safe.)
_after_foreign_redirect: contextvars.ContextVar[bool] = contextvars.ContextVar("koyeb_auth_redirect", default=False)


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
        hop_of_foreign_chain = _after_foreign_redirect.get()
        _after_foreign_redirect.set(False)
        authorization = None if hop_of_foreign_chain else await self.auth.aauthorize(request.method, request.url)
        if authorization is None:
            response = await handler(request)
            _after_foreign_redirect.set(response.status in _REDIRECTS)
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
