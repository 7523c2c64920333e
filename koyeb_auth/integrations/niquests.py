"""KoyebAuth for `niquests.AsyncSession`.

niquests' sync `Session` takes KoyebAuth itself: it runs requests' auth protocol (a call that
sets the header, a response hook that retries on 401). Its `AsyncSession` awaits the auth only
when `__call__` is a coroutine function, and awaits async response hooks: this adapter is the
same flow with awaits. It needs no import of niquests.
"""

from __future__ import annotations

import inspect
from typing import Any

from .._authorization import Authorization
from ..auth import KoyebAuth, requests_rewinder, resend_of

__all__ = ["NiquestsAsyncKoyebAuth"]


class NiquestsAsyncKoyebAuth:
    """`auth=` for `niquests.AsyncSession`, sharing tokens with the KoyebAuth it wraps.

    ```python
    async with niquests.AsyncSession(auth=NiquestsAsyncKoyebAuth(KoyebAuth())) as session:
        response = await session.get("https://app.koyeb.com/v1/apps")
    ```
    """

    auth: KoyebAuth
    """The KoyebAuth whose tokens it sends."""

    def __init__(self, auth: KoyebAuth | None = None) -> None:
        """Wrap `auth`, or a `KoyebAuth()` built from the environment and ~/.koyeb.yaml."""
        self.auth = auth if auth is not None else KoyebAuth()

    def __repr__(self) -> str:
        return f"NiquestsAsyncKoyebAuth({self.auth!r})"

    async def __call__(self, r: Any) -> Any:
        """niquests' async auth protocol: the token on requests to the API; on a 401, a renewal and a resend.

        The resend needs a body that can be sent again (bytes, a form, JSON, a seekable file); with one
        that cannot, the token is still renewed and the 401 is returned.
        """
        authorization = await self.auth.aauthorize(r.method or "", r.url or "")
        if authorization is None:
            return r
        r.headers["Authorization"] = authorization.header
        rewind = requests_rewinder(r.body)

        async def handle_401(response: Any, **kwargs: Any) -> Any:
            current: Authorization | None = authorization
            while current is not None and current.refused(response.status_code, response.request.url,
                                                          response.request.headers.get("Authorization")):
                current = await current.arenew(await _settled(response.content) or b"")
                if current is None or not rewind():
                    break
                await _settled(response.close())
                retry = resend_of(response, current.header)
                again = await response.connection.send(retry, **kwargs)
                again.history.append(response)
                again.request = retry
                response = again
            return response

        r.register_hook("response", handle_401)
        return r


async def _settled(value: Any) -> Any:
    # Hooks see an AsyncResponse (awaitable content and close) for a streamed response, a plain
    # Response otherwise.
    return await value if inspect.isawaitable(value) else value
