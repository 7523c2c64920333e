"""The warm path touches neither the file system nor the network: proven with audit hooks."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable

import httpx
import requests

from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

# Only the recording thread is watched, and a thread it starts counts as an event itself: threads of
# earlier tests that may still run (a Redis lease's watchdog, a call of its pool) are not the warm
# path's, and a thread of ours would show where it starts.
_WATCHED = ("open", "os.", "socket.", "fcntl.", "shutil.", "tempfile.", "glob.")
_seen: list[str] = []
_recording = [False]
_recorder: list[int] = [0]
_thread_start = threading.Thread.start


def _hook(event: str, args: object) -> None:
    if _recording[0] and event.startswith(_WATCHED) and threading.get_ident() == _recorder[0]:
        _seen.append(event)


sys.addaudithook(_hook)


def _start_watched(thread: threading.Thread) -> None:
    if _recording[0] and threading.get_ident() == _recorder[0]:
        _seen.append("threading.Thread.start")
    _thread_start(thread)


def _start_recording() -> None:
    _seen.clear()
    _recorder[0] = threading.get_ident()
    threading.Thread.start = _start_watched  # type: ignore[method-assign]
    _recording[0] = True


def _stop_recording() -> None:
    _recording[0] = False
    threading.Thread.start = _thread_start  # type: ignore[method-assign]


def _record(run: Callable[[], object]) -> list[str]:
    _start_recording()
    try:
        run()
    finally:
        _stop_recording()
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
            _start_recording()
            try:
                await asyncio.gather(*(client.get(url) for _ in range(200)))
            finally:
                _stop_recording()

    asyncio.run(run_async())
    assert _seen == []

    prepared = requests.Request("GET", url).prepare()
    assert _record(lambda: [auth(prepared) for _ in range(200)]) == []
    assert prepared.headers["Authorization"] == f"Bearer {token}"
    assert fake.stats == {"login": 1}
