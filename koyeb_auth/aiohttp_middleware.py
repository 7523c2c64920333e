"""KoyebAuth as an aiohttp client middleware (aiohttp 3.12 and later)."""

from __future__ import annotations

from .auth import KoyebAuth, renewable
from .extras import require

require("aiohttp", "aiohttp", "KoyebAuthMiddleware")
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse  # noqa: E402


class KoyebAuthMiddleware:
    """Authenticates an `aiohttp.ClientSession`'s requests to the Koyeb API.

    ```python
    async with aiohttp.ClientSession(middlewares=(KoyebAuthMiddleware(),)) as session:
        async with session.get("https://app.koyeb.com/v1/apps") as response:
            print(await response.json())
    ```

    The same rules as KoyebAuth with httpx: a token renewed before it expires, and on a 401 one
    retry with a renewed token when the body can be sent again. Tokens are shared with every
    KoyebAuth that uses the same store. Takes a `KoyebAuth` (one is built from the environment
    and ~/.koyeb.yaml if not).
    """

    def __init__(self, auth: KoyebAuth | None = None) -> None:
        self.auth = auth if auth is not None else KoyebAuth()

    def __repr__(self) -> str:
        return f"KoyebAuthMiddleware({self.auth!r})"

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        if not self.auth._origin_of().admits(request.method, str(request.url)):
            return await handler(request)
        tokens = self.auth._tokens()
        sent = tokens.fresh() or await tokens.aget_token()
        request.headers["Authorization"] = f"Bearer {sent}"
        response = await handler(request)
        if response.status != 401 or not renewable(await response.read()):
            return response
        renewed = await tokens.arenew_rejected(sent)
        # aiohttp payloads say whether they can be sent again: bytes, forms and seekable files can;
        # an async generator cannot.
        if renewed is None or (request.body and request.body.consumed):
            return response
        response.release()
        request.headers["Authorization"] = f"Bearer {renewed}"
        retried = await handler(request)
        if retried.status == 401:
            tokens.suspect(renewed)
        return retried
