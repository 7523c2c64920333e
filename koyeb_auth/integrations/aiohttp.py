"""KoyebAuth as an aiohttp client middleware (aiohttp 3.12 and later)."""

from __future__ import annotations

import contextvars
from typing import Any

from .._extras import require
from ..auth import KoyebAuth
from ..errors import ConfigurationError

require("aiohttp", "aiohttp", "KoyebAuthMiddleware")
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse  # noqa: E402

__all__ = ["KoyebAuthMiddleware"]

_CHAINS_KEPT = 8

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

    auth: KoyebAuth
    """The KoyebAuth whose tokens it sends."""

    def __init__(self, auth: KoyebAuth | None = None) -> None:
        """Use `auth`, or a `KoyebAuth()` built from the environment and ~/.koyeb.yaml."""
        self.auth = auth if auth is not None else KoyebAuth()
        # The last redirect chains of the caller's task, and whether each one's first request was
        # the API's. Several, in case a middleware makes requests of its own during a chain.
        self._chains: contextvars.ContextVar[tuple[tuple[list[Any], bool], ...]] = contextvars.ContextVar(
            "koyeb_auth_chains", default=()
        )

    def __repr__(self) -> str:
        return f"KoyebAuthMiddleware({self.auth!r})"

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """aiohttp's middleware protocol: the token on a chain that started on the API; a resend on a 401.

        The resend needs a body that can be sent again (bytes, a form, a seekable file; not an async
        generator); with one that cannot, the token is still renewed and the 401 is returned.

        Raises ConfigurationError with an aiohttp whose redirect chains it cannot tell apart.
        """
        chain, chains = _chain_of(request), self._chains.get()
        started_on_the_api = next((verdict for known, verdict in chains if known is chain), None)
        if started_on_the_api is False:
            return await handler(request)  # a hop (or a retry) of a chain that started elsewhere
        authorization = await self.auth.aauthorize(request.method, request.url)
        if started_on_the_api is None:  # the first request of a chain decides for all of it
            self._chains.set(((chain, authorization is not None), *chains[:_CHAINS_KEPT - 1]))
        if authorization is None:
            return await handler(request)
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


def _chain_of(request: ClientRequest) -> list[Any]:
    """The identity of the redirect chain `request` belongs to.

    aiohttp runs middlewares on every hop of a redirect chain, and again on a retry after a
    dropped connection. It gives every request of one `session.request()` call (its first, its
    hops, their retries) the same list object as `_traces`: that is the chain's identity,
    whatever the redirect header (Location or URI) and however the URL was normalised.
    """
    chain = getattr(request, "_traces", None)
    if not isinstance(chain, list):
        raise ConfigurationError(
            "KoyebAuthMiddleware cannot tell the hops of a redirect chain apart with this aiohttp version, "
            "so it authorizes nothing. Use aiohttp 3.12 to 3.14, or httpx with KoyebAuth."
        )
    return chain
