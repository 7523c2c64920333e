"""KoyebAuth for `niquests.AsyncSession`.

niquests' sync `Session` takes KoyebAuth itself: it runs requests' auth protocol (a call that
sets the header, a response hook that retries on 401). Its `AsyncSession` awaits the auth only
when `__call__` is a coroutine function, and awaits async response hooks: this adapter is the
same flow with awaits. It needs no import of niquests.
"""

from __future__ import annotations

import inspect
from typing import Any

from .auth import KoyebAuth, renewable, requests_rewinder, retry_of


class NiquestsAsyncKoyebAuth:
    """`auth=` for `niquests.AsyncSession`, sharing tokens with the KoyebAuth it wraps.

    ```python
    async with niquests.AsyncSession(auth=NiquestsAsyncKoyebAuth(KoyebAuth())) as session:
        response = await session.get("https://app.koyeb.com/v1/apps")
    ```
    """

    def __init__(self, auth: KoyebAuth | None = None) -> None:
        self.auth = auth if auth is not None else KoyebAuth()

    def __repr__(self) -> str:
        return f"NiquestsAsyncKoyebAuth({self.auth!r})"

    async def __call__(self, r: Any) -> Any:
        if not self.auth._origin_of().admits(r.method or "", r.url or ""):
            return r
        tokens = self.auth._tokens()
        sent = tokens.fresh() or await tokens.aget_token()
        r.headers["Authorization"] = f"Bearer {sent}"
        rewind = requests_rewinder(r.body)

        async def handle_401(response: Any, **kwargs: Any) -> Any:
            if response.status_code != 401 or not renewable(await _settled(response.content)):
                return response
            renewed = await tokens.arenew_rejected(sent)
            if renewed is None or not rewind():
                return response
            await _settled(response.close())
            retry = retry_of(response, renewed)
            again = await response.connection.send(retry, **kwargs)
            again.history.append(response)
            again.request = retry
            if again.status_code == 401:
                tokens.suspect(renewed)
            return again

        r.register_hook("response", handle_401)
        return r


async def _settled(value: Any) -> Any:
    # Hooks see an AsyncResponse (awaitable content and close) for a streamed response, a plain
    # Response otherwise.
    return await value if inspect.isawaitable(value) else value
