"""The token one request carries, and the 401 rule for it, written once for every client.

Sans-I/O, in the spirit of httpx's `auth_flow`: an `Authorization` never sends anything. Each
adapter (httpx, requests, niquests, aiohttp, the Koyeb SDK, or one of yours) drives it with its
own I/O:

```python
authorization = auth.authorize(method, url)  # None: not the API's origin, send it untouched
if authorization is not None:
    request.headers["Authorization"] = authorization.header
response = send(request)
while authorization and authorization.refused(response.status, response_request_url, response_request_auth):
    authorization = authorization.renew(read_body(response))  # `await arenew(...)` in async code
    if authorization is None or not rewind_body(request):
        break  # the 401 goes back to the caller
    request.headers["Authorization"] = authorization.header
    response = send(request)
```

The rule: a 401 counts only if the request it answers went to the API's origin carrying this
token (after a redirect to another origin it did not). Then, unless the API said `Token rejected`
(a deactivated organization), the token is renewed, single-flight, and the request sent again.
If the resend is refused too, it is sent once more only if a peer has replaced that token in the
meantime (a fleet with short tokens: a peer's refresh revoked ours between our renewal and our
resend), at most `MAX_RESENDS` times in all. Otherwise the renewed token is marked suspect:
further 401s with it go back to the caller for a while instead of causing a renewal each.
"""

from __future__ import annotations

from typing import Any, Protocol

from . import _session_api as api
from ._origin import Origin
from ._token import Token

__all__ = ["Authorization"]

# Each resend past the first needs a token a peer renewed meanwhile, so a 401 that no token cures (a
# permission, a proxy) ends after the first; the cap bounds a fleet whose peers keep renewing.
MAX_RESENDS = 3


class Renewer(Protocol):
    """What an Authorization needs from the token provider behind it."""

    def renew_rejected(self, rejected: Token, *, resent: bool = False) -> Token | None:
        """A token to send a refused request again with (`resent`: the refused token was itself a
        renewal), or None to return the 401.
        """

    async def arenew_rejected(self, rejected: Token, *, resent: bool = False) -> Token | None:
        """`renew_rejected` for coroutines: never blocks the event loop."""

    def suspect(self, renewed: Token) -> None:
        """Note that a request retried with the renewed token got a 401 again."""


class Authorization:
    """The token a request to the API carries, and whether a 401 calls for another one."""

    __slots__ = ("_origin", "_renewer", "header", "resends", "token")

    token: Token
    header: str
    resends: int

    def __init__(self, token: Token, renewer: Renewer, origin: Origin, *, resends: int = 0) -> None:
        """`token` for requests to `origin`; `renewer` renews it on a 401. Made by `KoyebAuth.authorize`."""
        self.token = token
        # The value of the `Authorization` header: `Bearer <token>` (an attribute: the hot path reads it).
        self.header = token.header
        self.resends = resends  # how often the request was sent again after a renewal
        self._renewer = renewer
        self._origin = origin

    def __repr__(self) -> str:
        return f"Authorization(token={self.token.fingerprint}, resends={self.resends})"

    def refused(self, status: int, url: Any, sent: str | None) -> bool:
        """True if this response is the API refusing this token: read its body and call `renew`.

        `url` and `sent` are those of the request the response answers (the last hop of a
        redirect chain): its URL and its `Authorization` header. Past `MAX_RESENDS`, a refusal is
        recorded (the renewed token becomes suspect) and False returned.
        """
        if status != 401 or sent != self.token.header or not self._origin.owns(url):
            return False
        if self.resends >= MAX_RESENDS:
            self._renewer.suspect(self.token)
            return False
        return True

    def renew(self, body: bytes) -> Authorization | None:
        """The authorization to send the request again with, or None to return the 401 as is."""
        if not api.renewal_may_help(body):
            return None
        return self._next(self._renewer.renew_rejected(self.token, resent=self.resends > 0))

    async def arenew(self, body: bytes) -> Authorization | None:
        """`renew` for coroutines: never blocks the event loop."""
        if not api.renewal_may_help(body):
            return None
        return self._next(await self._renewer.arenew_rejected(self.token, resent=self.resends > 0))

    def _next(self, renewed: Token | None) -> Authorization | None:
        return None if renewed is None else Authorization(renewed, self._renewer, self._origin,
                                                          resends=self.resends + 1)
