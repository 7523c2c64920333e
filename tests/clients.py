"""One request through any of the client libraries KoyebAuth supports, for tests run with each."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import httpx2
import requests

from koyeb_auth import Httpx2KoyebAuth, KoyebAuth, KoyebAuthMiddleware, NiquestsAsyncKoyebAuth

try:
    import niquests
except ImportError:  # .ci/run's lowest-versions run leaves it out: its urllib3-future replaces urllib3
    niquests = None  # type: ignore[assignment]

CLIENTS = ["httpx", "async", "requests", "httpx2", "httpx2-async", "aiohttp"]
if niquests is not None:
    CLIENTS += ["niquests", "niquests-async"]


@dataclass
class Reply:
    """What a test reads of a response, whatever the library."""

    status_code: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def send(client: str, auth: KoyebAuth, method: str, url: str, **kwargs: Any) -> Reply:
    """One request through the named client library, with `auth` as that library takes it.

    Redirects are followed, whatever the library's default.
    """
    if client in ("async", "httpx2-async", "aiohttp", "niquests-async"):
        return asyncio.run(_asend(client, auth, method, url, **kwargs))
    if client == "httpx":
        with httpx.Client(auth=auth, follow_redirects=True) as session:
            return _reply(session.request(method, url, **kwargs))
    if client == "httpx2":
        with httpx2.Client(auth=as_httpx2(auth), follow_redirects=True) as session2:
            return _reply(session2.request(method, url, **kwargs))
    library: Any = requests if client == "requests" else niquests
    return _reply(library.request(method, url, auth=auth, timeout=10, **kwargs))


async def _asend(client: str, auth: KoyebAuth, method: str, url: str, **kwargs: Any) -> Reply:
    if client == "async":
        async with httpx.AsyncClient(auth=auth, follow_redirects=True) as session:
            return _reply(await session.request(method, url, **kwargs))
    if client == "httpx2-async":
        async with httpx2.AsyncClient(auth=as_httpx2(auth), follow_redirects=True) as session2:
            return _reply(await session2.request(method, url, **kwargs))
    if client == "niquests-async":
        async with niquests.AsyncSession() as session3:
            return _reply(await session3.request(method, url, auth=NiquestsAsyncKoyebAuth(auth), **kwargs))
    async with aiohttp.ClientSession(middlewares=(KoyebAuthMiddleware(auth),)) as session4, session4.request(
        method, url, **kwargs
    ) as reply:
        return Reply(reply.status, await reply.read())


def _reply(response: Any) -> Reply:
    return Reply(response.status_code, response.content)


def as_httpx2(auth: KoyebAuth) -> Httpx2KoyebAuth:
    """The same KoyebAuth, state and all, seen as the httpx2 flavour (as if built as one)."""
    view = Httpx2KoyebAuth.__new__(Httpx2KoyebAuth)
    view.__dict__ = auth.__dict__
    return view
