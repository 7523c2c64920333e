"""Session calls: one deadline for the whole call, TLS always verified, the user's network settings."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from koyeb_auth import APIUnreachableError, ConfigurationError, KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

from .conftest import shown_by_a_traceback
from .recorder import Answer, Recorder

# Expires in a day, as a session does (one said to last decades is refused as absurd).
LOGIN_REPLY = {"token": {"id": "session-token",
                         "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))}}


@contextmanager
def dripping_server(part: str) -> Iterator[str]:
    """A server that answers 1 byte every 0.1 s: of its headers, or of its body (headers sent at once)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                drip = head + b"{" * 100000 if part == "headers" else b"{" * 100000
                if part == "body":
                    connection.sendall(head)
                for byte in drip:
                    if stop.wait(0.1):
                        return
                    try:
                        connection.sendall(bytes([byte]))
                    except OSError:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


@pytest.mark.slow
@pytest.mark.parametrize("part", ["headers", "body"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_dripping_server_cannot_hold_a_login_past_the_timeout(part: str, mode: str, cache_path: Path) -> None:
    with dripping_server(part) as url:
        auth = KoyebAuth("a@b.c", "pw", api_url=url, cache_path=cache_path, timeout=1.0)
        started = time.monotonic()
        with pytest.raises(APIUnreachableError, match=r"did not answer .* within 1 s"):
            auth.get_token() if mode == "sync" else asyncio.run(auth.aget_token())
        waited = time.monotonic() - started
    assert 0.9 < waited < 2.0


@pytest.mark.parametrize("verify", [False, True, 123, 1.5])
def test_a_verify_that_is_neither_a_context_nor_a_path_is_refused_up_front(verify: object) -> None:
    with pytest.raises(ConfigurationError, match="always verifies TLS"):
        KoyebAuth("a@b.c", "pw", verify=verify)  # type: ignore[arg-type]


def test_a_ca_bundle_given_as_verify_is_trusted(tmp_path: Path, cache_path: Path) -> None:
    with Recorder(tls=True) as api:
        api.answer = Answer(200, {}, LOGIN_REPLY)
        bundle = tmp_path / "ca.pem"
        api.ca.cert_pem.write_to_path(str(bundle))
        assert KoyebAuth("a@b.c", "pw", api_url=api.url, cache_path=cache_path, verify=bundle).get_token() == (
            "session-token"
        )
        context = ssl.create_default_context()
        api.ca.configure_trust(context)
        other = KoyebAuth("b@b.c", "pw", api_url=api.url, cache_path=cache_path, verify=context)
        assert asyncio.run(other.aget_token()) == "session-token"
    assert [seen.path for seen in api.seen] == ["/v1/account/login"] * 2


def test_session_calls_go_through_the_given_proxy(fake: FakeKoyebAPI, cache_path: Path) -> None:
    with Recorder() as proxy:
        proxy.answer = Answer(200, {}, LOGIN_REPLY)
        auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path, proxy=proxy.url)
        assert auth.get_token() == "session-token"
    # A proxy receives the absolute URL; the fake API itself saw nothing.
    assert [seen.path for seen in proxy.seen] == [fake.url + "/v1/account/login"] and fake.stats == {}


def test_session_calls_use_the_given_transports(cache_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path} {json.loads(request.content)['email']}")
        return httpx.Response(200, json=LOGIN_REPLY)

    mock = httpx.MockTransport(handler)
    auth = KoyebAuth("a@b.c", "pw", api_url="https://api.test", cache_path=cache_path, transport=mock,
                     async_transport=mock)
    assert auth.get_token() == "session-token"
    other = KoyebAuth("b@b.c", "pw", api_url="https://api.test", cache_path=cache_path, transport=mock,
                      async_transport=mock)
    assert asyncio.run(other.aget_token()) == "session-token"
    assert seen == ["POST /v1/account/login a@b.c", "POST /v1/account/login b@b.c"]


PROXY_PASSWORD = "Pr0xy-Pa55-never-shown"
BROKEN_PROXIES = {
    "port": f"http://u:{PROXY_PASSWORD}@proxy.internal:31x8",
    "scheme": f"ftp://u:{PROXY_PASSWORD}@proxy.internal:3128",
    "socks without socksio": f"socks5://u:{PROXY_PASSWORD}@proxy.internal:1080",
}


@pytest.mark.parametrize("broken", list(BROKEN_PROXIES))
@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "all_proxy"])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_broken_proxy_variable_is_a_configuration_error_naming_it_and_never_its_password(
    broken: str, variable: str, mode: str, fake: FakeKoyebAPI, cache_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "socksio", None)  # not installed, whether it is here or not
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, BROKEN_PROXIES[broken])
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path)
    with pytest.raises(ConfigurationError, match=f"proxy in {variable}") as caught:
        auth.get_token() if mode == "sync" else asyncio.run(auth.aget_token())
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert PROXY_PASSWORD not in shown_by_a_traceback(caught.value) + str(caught.value)
    assert fake.stats == {}


@pytest.mark.parametrize("broken", list(BROKEN_PROXIES))
def test_a_broken_proxy_argument_is_refused_up_front_without_its_password(
    broken: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "socksio", None)
    with pytest.raises(ConfigurationError, match="proxy=") as caught:
        KoyebAuth("a@b.c", "pw", proxy=BROKEN_PROXIES[broken])
    assert caught.value.__context__ is None
    assert PROXY_PASSWORD not in shown_by_a_traceback(caught.value) + str(caught.value)
