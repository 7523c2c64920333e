"""The warm path touches neither the file system nor the network: proven with audit hooks."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import httpx
import requests

from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

_WATCHED = ("open", "os.", "socket.", "fcntl.", "shutil.", "tempfile.", "glob.")
_seen: list[str] = []
_recording = [False]


def _hook(event: str, args: object) -> None:
    if _recording[0] and event.startswith(_WATCHED):
        _seen.append(event)


sys.addaudithook(_hook)


def _record(run: Callable[[], object]) -> list[str]:
    _seen.clear()
    _recording[0] = True
    try:
        run()
    finally:
        _recording[0] = False
    return list(_seen)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"authorization": request.headers.get("authorization")})


def test_warm_requests_make_no_file_or_network_call(fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]) -> None:
    auth = make_auth()
    token = auth.get_token()  # the cold path: login and cache write
    mock = httpx.MockTransport(ok)
    url = fake.url + "/v1/apps"
    with httpx.Client(transport=mock, auth=auth) as client:
        client.get(url)  # the client's own first-use work, outside the recording
        assert _record(lambda: [client.get(url) for _ in range(200)]) == []
        assert client.get(url).json() == {"authorization": f"Bearer {token}"}

    async def run_async() -> None:
        async with httpx.AsyncClient(transport=mock, auth=auth) as client:
            await client.get(url)
            _recording[0] = True
            try:
                await asyncio.gather(*(client.get(url) for _ in range(200)))
            finally:
                _recording[0] = False

    _seen.clear()
    asyncio.run(run_async())
    assert _seen == []

    prepared = requests.Request("GET", url).prepare()
    assert _record(lambda: [auth(prepared) for _ in range(200)]) == []
    assert prepared.headers["Authorization"] == f"Bearer {token}"
    assert fake.stats == {"login": 1}
