"""The only module that talks to the network: it sends one session call and returns the reply.

A new client per call: calls are rare (one per token lifetime), and a client kept between them
would have to be rebuilt after fork() and bound to each event loop.
"""

from __future__ import annotations

import functools
import ssl

import httpx

from .api import Call, Reply
from .errors import APIError, APIUnreachableError, KoyebAuthError

# A session reply is a few hundred bytes; stop reading anything much larger.
MAX_REPLY_BYTES = 1 << 20


def send(call: Call, timeout: float) -> Reply:
    try:
        with (
            httpx.Client(timeout=timeout, verify=_verify(call.url)) as client,
            client.stream(call.method, call.url, headers=call.headers, json=call.body) as response,
        ):
            body = _Body()
            for chunk in response.iter_bytes():
                if body.full(chunk):
                    break
            return body.reply(response)
    except httpx.HTTPError as exc:
        raise _failure(call, exc) from None


async def asend(call: Call, timeout: float) -> Reply:
    try:
        async with (
            httpx.AsyncClient(timeout=timeout, verify=_verify(call.url)) as client,
            client.stream(call.method, call.url, headers=call.headers, json=call.body) as response,
        ):
            body = _Body()
            async for chunk in response.aiter_bytes():
                if body.full(chunk):
                    break
            return body.reply(response)
    except httpx.HTTPError as exc:
        raise _failure(call, exc) from None


def _verify(url: str) -> ssl.SSLContext | bool:
    # Certificates matter only over TLS; loading them costs ~50 ms, so it is done once per process
    # and skipped for a plain-http API (a local fake or proxy).
    return _tls_context() if url.startswith("https:") else False


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


class _Body:
    """A reply body read up to MAX_REPLY_BYTES."""

    def __init__(self) -> None:
        self._data = b""

    def full(self, chunk: bytes) -> bool:
        self._data += chunk
        return len(self._data) > MAX_REPLY_BYTES

    def reply(self, response: httpx.Response) -> Reply:
        headers = {name.lower(): value for name, value in response.headers.items()}
        return Reply(response.status_code, headers, self._data[:MAX_REPLY_BYTES])


def _failure(call: Call, exc: httpx.HTTPError) -> KoyebAuthError:
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.TransportError):
        return APIUnreachableError(
            f"Could not reach the Koyeb API for {call.action} ({call.method} {call.url}): {reason}. "
            "Check the network and the API URL (KOYEB_URL)."
        )
    return APIError(f"Koyeb {call.action} ({call.method} {call.url}) sent a reply that could not be read: {reason}.")
