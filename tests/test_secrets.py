"""No token or password in a repr, a log record or an exception, whatever happens."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Callable

import httpx
import pytest
import requests
from freezegun import freeze_time

from koyeb_auth import ConfigurationError, KoyebAuth, KoyebAuthError
from koyeb_auth import _session_api as api
from koyeb_auth._token import fingerprint
from koyeb_auth._transport import Network, SessionClient
from koyeb_auth.testing import FakeKoyebAPI, Fault

from .conftest import shown_by_a_traceback

PASSWORD = "pa55-word-never-shown"


def test_no_secret_in_logs_reprs_or_errors_across_every_flow(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.users[fake.EMAIL] = PASSWORD
    fake.ttl = 600
    texts: list[str] = []
    auth = make_auth(password=PASSWORD, refresh_margin=300)
    texts.append(repr(auth))
    issued: set[str] = set()
    with freeze_time(tick=True) as clock:
        httpx.get(fake.url + "/v1/apps", auth=auth)
        issued.update(fake.live_tokens())
        texts += [repr(auth.cached_token()), repr(auth.settings), repr(auth.store)]
        clock.tick(400)
        fake.fail("refresh")  # a failed refresh is logged as a warning
        requests.get(fake.url + "/v1/apps", auth=auth, timeout=10)
        clock.tick(1)
        fake.revoke()
        httpx.get(fake.url + "/v1/apps", auth=auth)  # 401, refused refresh, login, retry
        issued.update(fake.live_tokens())
    auth.logout()
    for failing in (make_auth(password="wrong-" + PASSWORD), KoyebAuth(token="tok-" + PASSWORD, api_url="nope")):
        with pytest.raises(KoyebAuthError) as caught:
            failing.get_token()
        texts += [str(caught.value), repr(caught.value), repr(failing)]
    fake.fail("login", Fault(500, {"message": "internal"}))
    with pytest.raises(KoyebAuthError) as caught:
        make_auth(password=PASSWORD, cache_path=None, store=None, api_url=fake.url).get_token()
    texts.append(str(caught.value))

    assert len(issued) == 2 and fake.stats["fault_refresh"] == 1 and fake.stats["refresh_refused"] == 1
    everything = "\n".join([*texts, caplog.text, *(r.getMessage() for r in caplog.records)])
    assert "Obtained Koyeb token" in everything  # the log does speak about tokens, by fingerprint
    leaked = [fingerprint(secret) for secret in [PASSWORD, *issued] if secret in everything]
    assert leaked == []  # fingerprints only, so a failure does not print the secret itself


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_session_call_the_http_client_cannot_send_leaves_no_token_in_any_frame(
    mode: str, fake: FakeKoyebAPI
) -> None:
    # A carriage return in the URL (a CRLF .env's organization id) makes httpx raise an error of its
    # own, not an httpx.HTTPError, from frames whose locals hold the request's headers.
    call = api.access_token(fake.url, "org-1\r", fake.PERSONAL_TOKEN, 3600.0)
    client = SessionClient(Network(), timeout=5.0)
    with pytest.raises(KoyebAuthError) as caught:
        client.send(call) if mode == "sync" else asyncio.run(client.asend(call))
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    shown = shown_by_a_traceback(caught.value) + str(caught.value)
    assert fake.PERSONAL_TOKEN not in shown, fingerprint(fake.PERSONAL_TOKEN)  # a failure prints no token
    assert fake.stats == {}  # nothing was sent


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_reply_cut_by_the_deadline_leaves_none_of_its_body_in_any_frame(mode: str) -> None:
    # A reply whose body starts with a token, then stalls: the whole-call deadline ends the read,
    # and the error's frames must not hold the part of the body read so far.
    secret = "session-token-half-read"
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
                               + f'{{"token": {{"id": "{secret}"'.encode())
            stop.wait(10)

    threading.Thread(target=serve, daemon=True).start()
    call = api.login(f"http://127.0.0.1:{listener.getsockname()[1]}", "a@b.c", PASSWORD, None, None)
    client = SessionClient(Network(), timeout=0.5)
    try:
        with pytest.raises(KoyebAuthError) as caught:
            client.send(call) if mode == "sync" else asyncio.run(client.asend(call))
    finally:
        stop.set()
        listener.close()
    shown = shown_by_a_traceback(caught.value) + str(caught.value)
    assert "did not answer" in str(caught.value)
    assert secret not in shown and PASSWORD not in shown


def test_a_password_with_a_lone_surrogate_is_a_koyeb_auth_error_that_shows_no_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    password = "pa55-word-\udcff-never-shown"  # os.environ's reading of b"pa55-word-\xff-never-shown"
    monkeypatch.setenv("KOYEB_EMAIL", "demo@koyeb.com")
    monkeypatch.setenv("KOYEB_PASSWORD", password)
    auth = KoyebAuth(api_url="http://127.0.0.1:9", cache_path=f"{tmp_path}/tokens.json", timeout=1)
    try:
        auth.get_token()
    except BaseException as exc:  # whatever escapes is the finding
        caught: BaseException = exc
    shown = repr(caught) + str(caught) + shown_by_a_traceback(caught)
    assert isinstance(caught, ConfigurationError), type(caught)
    assert "pa55-word" not in shown and "KOYEB_PASSWORD" in str(caught)


@pytest.mark.parametrize(("argument", "value"), [("email", 123), ("password", b"bytes"), ("token", 7),
                                                 ("organization_id", 1), ("email", "d\udcffmo@koyeb.com")])
def test_an_argument_of_the_wrong_type_or_encoding_is_a_configuration_error(argument: str, value: object) -> None:
    auth = KoyebAuth(api_url="http://127.0.0.1:9", **{argument: value})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=f"{argument}=") as caught:
        auth.get_token()
    assert caught.value.__context__ is None and "udcff" not in repr(caught.value)


@pytest.mark.parametrize(("where", "cli_file"), [
    ("argument", ""), ("environment", ""), ("cli file", "token: {token}\n"),
    ("cli file", "- token: {token}\n"), ("cli file", "token: {token}\nurl: [unclosed\n"),
])
def test_a_token_refused_by_the_chain_leaves_no_copy_in_any_frame(
    where: str, cli_file: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    token = "tok-never-shown with a space"  # not a token: refused, by the chain's frames
    for name in ("KOYEB_EMAIL", "KOYEB_PASSWORD", "KOYEB_TOKEN", "KOYEB_API_TOKEN", "KOYEB_AUTH_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KOYEB_CONFIG", f"{tmp_path}/koyeb.yaml")
    if where == "environment":
        monkeypatch.setenv("KOYEB_TOKEN", token)
    with open(f"{tmp_path}/koyeb.yaml", "w") as file:
        file.write(cli_file.format(token=token))
    auth = KoyebAuth(token=token if where == "argument" else None, api_url="http://127.0.0.1:9",
                     cache_path=f"{tmp_path}/tokens.json")
    with pytest.raises(ConfigurationError) as caught:
        auth.get_token()
    assert "tok-never-shown" not in shown_by_a_traceback(caught.value) + str(caught.value)
