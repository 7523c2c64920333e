"""KoyebAuth's requests (and niquests `Session`) protocol: the header, and the 401 as a response hook.

In the style of requests' `HTTPDigestAuth`: a hook registered per request reads the 401, renews the
token through the request's `Authorization` (the one rule, see `authorization`), rewinds the body
and sends the request again, once, through the same connection adapter.
"""

from __future__ import annotations

import inspect
from typing import Any

import requests

from .authorization import Authorization
from .errors import ConfigurationError
from .replay import requests_rewinder, resend_of

__all__ = ["authorize_prepared"]


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
