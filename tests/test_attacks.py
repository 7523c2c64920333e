"""Attacks on where secrets go: redirects, TLS, a guessed password, child processes, tracebacks.

Each test runs the attack against real servers on loopback (the fake API, and a hostile recorder
that logs what reached it) and asserts what the servers saw. Every one of them failed on the
code before the fix it guards (see SECURITY.md for the list).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import koyeb.api
import pytest
import requests
import urllib3
import yarl

from koyeb_auth import (
    APIError,
    APIUnreachableError,
    ConfigurationError,
    FileTokenStore,
    InvalidCredentialsError,
    KoyebAuth,
    KoyebAuthError,
    KoyebAuthMiddleware,
    MemoryTokenStore,
    sdk_client,
)
from koyeb_auth._origin import Origin, normalize_api_url
from koyeb_auth._token import fingerprint
from koyeb_auth.testing import FakeKoyebAPI, Fault

from .clients import CLIENTS, send
from .recorder import Answer, DroppingAPI, Recorder
from .test_readme import BLOCKS


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def secrets_of(fake: FakeKoyebAPI, *more: str) -> list[str]:
    return [*fake.issued, *fake.users.values(), fake.PERSONAL_TOKEN, *more]


def leaked(text: str, secrets: list[str]) -> list[str]:
    """Fingerprints of the secrets found in `text` (never the secrets themselves, in a report)."""
    return [fingerprint(secret) for secret in secrets if secret in text]


def rendered(error: BaseException) -> str:
    """What Sentry and friends show of an error: its chain, and every frame's locals, the test's
    own frame (which holds the secrets it plants) left out."""
    below_the_test = error.__traceback__.tb_next if error.__traceback__ else None
    shown = traceback.TracebackException(type(error), error, below_the_test, capture_locals=True)
    return "".join(shown.format())


# --- redirects --------------------------------------------------------------------------------------


def test_a_401_from_another_origin_after_a_redirect_gets_no_token_and_renews_none(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()
    assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 200
    with Recorder() as attacker:
        fake.fail("api", Fault(307, {}, {"Location": attacker.url + "/steal"}))
        response = send(client, auth, "GET", fake.url + "/v1/apps")
    assert response.status_code == 401  # the attacker's, returned as is
    assert [("authorization" in seen.headers) for seen in attacker.seen] == [False]  # one request, no token
    assert fake.stats == {"login": 1, "api": 1, "fault_api": 1}  # and no refresh of ours for its 401


def test_a_redirect_chain_that_started_elsewhere_never_carries_the_token(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()
    with Recorder() as attacker:
        attacker.answer = Answer(307, {"Location": fake.url + "/v1/apps"}, {})
        response = send(client, auth, "GET", attacker.url + "/innocent")
    # The API answered the hop without a token: the caller gets its 401, not the API's data.
    assert response.status_code == 401
    assert fake.stats == {"unauthorized": 1}


def test_aiohttp_never_authorizes_a_foreign_chain_whatever_the_redirect_header_or_url_form(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()

    async def fetch(url: str, method: str = "GET", **options: Any) -> int:
        async with aiohttp.ClientSession(middlewares=(KoyebAuthMiddleware(auth),), **options) as session, \
                session.request(method, url, json={"caller": "data"} if method == "POST" else None) as response:
            return response.status

    with Recorder() as attacker:
        # aiohttp follows the legacy `URI` header when there is no Location.
        for status in (302, 307):
            attacker.answer = Answer(status, {"URI": fake.url + "/v1/apps/app-demo/delete"}, {})
            assert asyncio.run(fetch(attacker.url + "/innocent", "POST")) == 401
        # Without requoting, aiohttp and a URL parser of ours would read these paths differently.
        for path in ("/x/../v1/apps", "/v1/./apps", "/v1/%2e%2e/v1/apps", "/v1/app\u00e9"):
            attacker.answer = Answer(307, {"Location": fake.url + path}, {})
            assert asyncio.run(fetch(attacker.url + "/innocent", requote_redirect_url=False)) == 401
    assert "api" not in fake.stats and "login" not in fake.stats


def test_aiohttp_never_authorizes_a_foreign_chain_s_hop_when_aiohttp_retries_it() -> None:
    # aiohttp sends an idempotent request again when its pooled connection was dropped: the
    # middleware runs again for the retry, which is still a hop of the attacker's chain.
    with DroppingAPI() as api, Recorder() as attacker:
        auth = KoyebAuth(token="p" * 64, api_url=api.url, store=MemoryTokenStore())
        attacker.answer = Answer(307, {"Location": api.url + "/v1/secrets"}, {})

        async def scenario() -> None:
            async with aiohttp.ClientSession(middlewares=(KoyebAuthMiddleware(auth),)) as session:
                async with session.get(api.url + "/v1/warm") as warm:  # its connection is now pooled
                    await warm.read()
                async with session.get(attacker.url + "/innocent") as response:
                    await response.read()

        asyncio.run(scenario())
    assert [carried for path, carried in api.seen if path == "/v1/secrets"] == [False, False]


def test_a_401_after_a_redirect_that_changed_the_request_does_not_resend_the_original(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    # POST -> 303 -> GET (refused): resending the POST with a new token would make it twice.
    for client in ("httpx", "async", "httpx2", "httpx2-async", "requests", "sdk"):
        auth = make_auth(store=MemoryTokenStore())
        auth.get_token()
        fake.reset_stats()
        fake.fail("api", Fault(303, {}, {"Location": fake.url + "/v1/apps/created"}))
        fake.fail("api", Fault(401, {"status": 401, "code": "authentication_error", "message": "no"}))
        if client == "sdk":
            with sdk_client(auth) as sdk:
                sdk.call_api("POST", fake.url + "/v1/apps", {"Content-Type": "application/json"}, {"name": "x"})
        else:
            response = send(client, auth, "POST", fake.url + "/v1/apps", json={"name": "x"})
        if client == "requests":  # requests resends the hop itself (the GET): that is right
            assert response.json()["method"] == "GET" and fake.stats["api"] == 1, fake.stats
        else:  # the others would resend the POST: they return the 401
            assert "api" not in fake.stats, (client, fake.stats)


class ReadOnce(io.RawIOBase):
    """A stream that can be read once: a pipe, a socket, an upload being relayed."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), len(self._data))
        buffer[:size], self._data = self._data[:size], self._data[size:]
        return size


def test_a_multipart_upload_of_a_read_once_file_is_not_replayed_empty(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()
    auth.get_token()
    fake.revoke()
    response = httpx.post(fake.url + "/v1/upload", auth=auth, files={"f": ("f.bin", ReadOnce(b"DATA" * 100))})
    assert response.status_code == 401 and "api" not in fake.stats  # not a 200 for an empty upload
    assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200  # the token was renewed


def test_the_sync_sdk_reads_redirects_as_urllib3_follows_them(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth(store=MemoryTokenStore())
    with Recorder() as attacker, sdk_client(auth) as client:
        koyeb.api.AppsApi(client).list_apps()
        fake.reset_stats()
        # urlsplit reads the API in this Location; urllib3 goes to the attacker (and drops our header).
        api_netloc, attacker_netloc = fake.url.split("//")[1], attacker.url.split("//")[1]
        fake.fail("api", Fault(307, {}, {"Location": f"http://{attacker_netloc}\\@{api_netloc}/v1/apps"}))
        with pytest.raises(koyeb.api.ApiException):
            koyeb.api.AppsApi(client).list_apps()
        assert len(attacker.seen) == 1 and "refresh" not in fake.stats and "login" not in fake.stats
        # A relative redirect stays on the API: a revoked token there is renewed and the call retried.
        fake.fail("api", Fault(307, {}, {"Location": "/v1/apps"}))
        fake.revoke()
        assert koyeb.api.AppsApi(client).list_apps().apps


@pytest.mark.parametrize("url", ["https://app.koyeb.com.evil.example", "https://app.koyeb.com@evil.example",
                                 "https://evil.example/app.koyeb.com", "http://app.koyeb.com",
                                 "https://app.koyeb.com:8443", "https://app.koyeb.com\\@evil.example"])
def test_look_alike_urls_are_another_origin(url: str) -> None:
    origin = Origin(normalize_api_url("HTTPS://App.Koyeb.COM:443/"))
    assert origin.authorizes("GET", "https://app.koyeb.com/v1/apps")
    assert origin.authorizes("GET", httpx.URL("https://APP.koyeb.com:443/v1/apps"))
    assert not origin.authorizes("GET", url + "/v1/apps")
    assert not origin.authorizes("GET", httpx.URL(url.replace("\\", "%5C") + "/v1/apps"))


# (API URL, URL of a request, whether it gets the token). The tricky ones are URLs that Python's
# urlsplit and the clients (urllib3, which requests and Koyeb's sync SDK send with, httpx, yarl
# under aiohttp) may read differently: each is either refused or read alike by all of them.
TRICKY_URLS = [
    ("https://app.koyeb.com", "https://app.koyeb.com/v1/apps", True),
    ("https://app.koyeb.com", "HTTPS://APP.Koyeb.COM/v1/apps", True),
    ("https://app.koyeb.com", "https://app.koyeb.com:443/v1/apps?x=1#y", True),
    ("https://app.koyeb.com", "https://app.koyeb.com:/v1/apps", True),
    ("https://app.koyeb.com", "https://app.koyeb.com?x=1", True),
    ("https://app.koyeb.com", "https://app.koyeb.com", True),
    ("https://app.koyeb.com/api", "https://app.koyeb.com/api/v1/apps", True),
    ("http://[::1]:8000", "http://[::1]:8000/v1/apps", True),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1/apps", True),
    ("https://app.koyeb.com", "https://evil.example\\@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "HTTPS://evil.example\\@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://evil.example:443\\@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://app.koyeb.com\\@evil.example/v1/apps", False),
    ("https://app.koyeb.com", " https://evil.example\\@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https:\\\\evil.example\\@app.koyeb.com/v1/apps", False),
    ("http://127.0.0.1:8000", "http://127.0.0.1:9000\\@127.0.0.1:8000/v1/apps", False),
    ("http://[::1]:8000", "http://[::1]:9000\\@[::1]:8000/v1/apps", False),
    ("https://app.koyeb.com", "https://evil.example\t@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://evil.example\r\n@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://app.koyeb.com\t@evil.example/v1/apps", False),
    ("https://app.koyeb.com", "https://app.ko\tyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://app.koyeb.com\n/v1/apps", False),
    ("https://app.koyeb.com", "https://app.koyeb.com /v1/apps", False),
    ("https://app.koyeb.com", "https://app.koyeb.com\x00.evil.example/v1/apps", False),
    ("https://app.koyeb.com", "https://app.koyeb.com@evil.example/v1/apps", False),
    ("https://app.koyeb.com", "https://a@b@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://user:pw@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://evil.example;@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://evil.example%5C@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://evil.example#@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://evil.example?@app.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://app%2Ekoyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://app.koyeb.com%2F@evil.example/v1/apps", False),
    ("https://app.koyeb.com", "https://app\u3002koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://\uff41pp.koyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://app.koyeb.com\u2024/v1/apps", False),
    ("https://app.koyeb.com", "https://app.\u212aoyeb.com/v1/apps", False),
    ("https://app.koyeb.com", "https://app_x.koyeb.com/v1/apps", False),
    ("https://app_x.koyeb.com", "https://APP_X.koyeb.com/v1/apps", True),
    ("https://app.koyeb.com", "https://app.koyeb.com./v1/apps", False),
    ("https://app.koyeb.com", "https://app.koyeb.com:99999/v1/apps", False),
    ("http://[::1]:8000", "http://[::1%25lo]:8000/v1/apps", False),
]


def where_clients_send(url: str) -> list[tuple[str, str, int] | None]:
    """(scheme, host, port) that each client connects to for `url`; None where it refuses the URL."""
    def read_urllib3(text: str) -> tuple[str, str | None, int | None]:
        parts = urllib3.util.parse_url(text)
        return parts.scheme or "", parts.host, parts.port

    def read_httpx(text: str) -> tuple[str, str | None, int | None]:
        parsed = httpx.URL(text)
        return parsed.scheme, parsed.host, parsed.port

    def read_requests(text: str) -> tuple[str, str | None, int | None]:  # it sends the prepared URL with urllib3
        return read_urllib3(requests.Request("GET", text).prepare().url or "")

    def read_yarl(text: str) -> tuple[str, str | None, int | None]:
        parsed = yarl.URL(text)
        return parsed.scheme, parsed.host, parsed.explicit_port

    readings: list[tuple[str, str, int] | None] = []
    for read in (read_urllib3, read_httpx, read_requests, read_yarl):
        try:
            scheme, host, port = read(url)
        except Exception:  # this client refuses the URL: it sends it nowhere
            readings.append(None)
            continue
        scheme = scheme.lower()
        readings.append((scheme, (host or "").lower().strip("[]"), port or {"http": 80, "https": 443}.get(scheme, 0)))
    return readings


@pytest.mark.parametrize(("api_url", "url", "expected"), TRICKY_URLS)
def test_a_url_gets_the_token_only_if_every_client_sends_it_to_the_api(api_url: str, url: str, expected: bool) -> None:
    origin = Origin(api_url)
    assert origin.authorizes("GET", url) is expected and origin.owns(url) is expected
    if expected:
        api = (origin.key[0], origin.key[1], origin.key[2])
        assert where_clients_send(url) == [api] * 4


def test_the_readme_s_urllib3_helper_sends_no_token_to_the_host_urllib3_reads(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    helper: dict[str, Any] = {}
    exec(BLOCKS["docs/usage.md > Any other client: `authorize()` 0"].split("\nprint(", 1)[0], helper)
    helper["auth"] = make_auth(store=MemoryTokenStore())
    assert helper["request"]("GET", fake.url + "/v1/apps").status == 200  # the API's own URL gets the token
    with Recorder() as attacker:
        # urlsplit reads the API's host in this URL; urllib3 connects to the attacker, who answers 401.
        url = f"http://{attacker.url.split('//')[1]}\\@{fake.url.split('//')[1]}/v1/apps"
        assert helper["request"]("GET", url).status == 401
    assert [("authorization" in seen.headers) for seen in attacker.seen] == [False]
    assert (fake.stats["login"], fake.stats.get("refresh", 0)) == (1, 0)  # the 401 renewed nothing


@pytest.mark.parametrize("path", ["/v1/account/login/", "//v1/account/login", "/v1/account/login;x",
                                  "/v1/Account/Login", "/v1/account/%6Cogin"])
@pytest.mark.parametrize("method", ["POST", "post"])
def test_no_variant_of_the_login_call_gets_the_token(path: str, method: str) -> None:
    assert not Origin("https://app.koyeb.com").authorizes(method, "https://app.koyeb.com" + path)


# --- TLS ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["argument HTTPS", "argument Https", "KOYEB_URL", "~/.koyeb.yaml"])
def test_an_untrusted_certificate_stops_the_login_whatever_the_scheme_case(
    where: str, fake: FakeKoyebAPI, cache_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Recorder(tls=True) as attacker:
        url = attacker.url.replace("https://", "Https://" if where == "argument Https" else "HTTPS://")
        if where == "KOYEB_URL":
            monkeypatch.setenv("KOYEB_URL", url)
        if where == "~/.koyeb.yaml":
            config = tmp_path / "koyeb.yaml"
            config.write_text(f"url: {url}\ntoken: {fake.PERSONAL_TOKEN}\norganization: org-1\n")
            monkeypatch.setenv("KOYEB_CONFIG", str(config))
            auth = KoyebAuth(cache_path=cache_path)
        else:
            auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=url if where.startswith("argument") else None,
                             cache_path=cache_path)
        with pytest.raises(APIUnreachableError, match="TLS certificate is not trusted") as caught:
            auth.get_token()
    assert attacker.seen == [] and attacker.handshakes_failed >= 1  # the password never left
    assert caught.value.__context__ is None and leaked(rendered(caught.value), secrets_of(fake)) == []


@pytest.mark.parametrize("url", ["https://me:hunter2@app.koyeb.com", "https://me:hun/ter2@app.koyeb.com",
                                 "https://me:hun#ter2@app.koyeb.com", "https://me:hun?ter2@app.koyeb.com",
                                 "https:/me:hunter2@app.koyeb.com"])
def test_a_user_and_password_in_the_api_url_are_refused_without_being_echoed(url: str) -> None:
    auth = KoyebAuth("a@b.c", "pw", api_url=url)
    with pytest.raises(ConfigurationError) as caught:
        auth.get_token()
    assert "ter2" not in str(caught.value) and "ter2" not in repr(auth) and caught.value.__context__ is None
    assert "ProxyPass" not in repr(KoyebAuth(proxy="http://user:ProxyPass@proxy.internal:3128")._network)


def test_a_plain_http_api_url_is_refused_unless_it_is_loopback() -> None:
    with pytest.raises(ConfigurationError, match="plain http"):
        KoyebAuth("a@b.c", "pw", api_url="http://app.koyeb.com").get_token()
    for loopback in ("http://127.0.0.1:9", "http://localhost:9", "http://[::1]:9"):
        with pytest.raises(APIUnreachableError):  # accepted: nothing listens there
            KoyebAuth("a@b.c", "pw", api_url=loopback, timeout=2).get_token()


@pytest.mark.slow
@pytest.mark.parametrize("host", ["x.localhost", "App.LocalHost", "a.b.localhost", "localhost.",
                                  "localhost.evil.example"])
def test_a_plain_http_api_url_to_a_name_under_localhost_is_refused(host: str) -> None:
    with Recorder() as server:  # where such a name may resolve: the password must not reach it
        url = f"http://{host}:{server.url.rsplit(':', 1)[1]}"
        with pytest.raises(ConfigurationError, match="plain http") as caught:
            KoyebAuth(FakeKoyebAPI.EMAIL, FakeKoyebAPI.PASSWORD, api_url=url, timeout=2).get_token()
    assert server.seen == [] and "localhost" in str(caught.value) and caught.value.__context__ is None


@pytest.mark.slow
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_plain_http_to_localhost_or_a_loopback_address_reaches_the_fake_api(host: str, cache_path: Path) -> None:
    with FakeKoyebAPI(host="::1" if host == "[::1]" else "127.0.0.1") as api:
        url = f"http://{host}:{api.url.rsplit(':', 1)[1]}"
        auth = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=url, cache_path=cache_path)
        assert httpx.get(url + "/v1/apps", auth=auth).status_code == 200
        assert (api.stats["login"], api.stats["api"]) == (1, 1)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_session_calls_go_through_the_environment_s_proxy(
    flavour: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], monkeypatch: pytest.MonkeyPatch
) -> None:
    with Recorder() as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        auth = make_auth()
        with pytest.raises(InvalidCredentialsError):  # the recording proxy answers 401
            auth.get_token() if flavour == "sync" else asyncio.run(auth.aget_token())
    # The refused login, then the question whether the account signs in through WorkOS: both by the proxy.
    assert [seen.path for seen in proxy.seen] == [fake.url + "/v1/account/login",
                                                  fake.url + "/v1/account/login_method?email=demo%40koyeb.com"]
    assert fake.stats == {}


# --- a cached session and a guessed password -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["file", "memory"])
@pytest.mark.parametrize("email", [FakeKoyebAPI.EMAIL, FakeKoyebAPI.EMAIL.upper()])
def test_a_wrong_password_never_gets_the_cached_session(
    kind: str, email: str, fake: FakeKoyebAPI, cache_path: Path
) -> None:
    store = FileTokenStore(cache_path) if kind == "file" else MemoryTokenStore()
    victim = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, store=store)
    token = victim.get_token()
    guesser = KoyebAuth(email, "a guess", api_url=fake.url, store=store)
    with pytest.raises(InvalidCredentialsError):
        guesser.get_token()
    assert guesser.cached_token() is None
    assert guesser.logout() is False  # ends and deletes nothing: the session is not the guesser's
    # The right password, in another KoyebAuth, still shares the session: one login in all.
    assert KoyebAuth(email, fake.PASSWORD, api_url=fake.url, store=store).get_token() == token
    assert fake.stats == {"login": 1, "failed_login": 1, "login_method": 1}
    if kind == "file":
        assert fake.PASSWORD not in cache_path.read_text()


# --- what reaches a child process, an exception, a traceback ---------------------------------------------


def test_a_personal_token_is_trimmed_and_a_broken_one_is_never_echoed(
    fake: FakeKoyebAPI, cache_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = fake._issue("user-pat", "org")["token"]["id"]  # stands in for a valid long-lived token
    monkeypatch.setenv("KOYEB_TOKEN", session + "\n")  # as a secret mounted from a file leaves it
    assert httpx.get(fake.url + "/v1/apps", auth=KoyebAuth(api_url=fake.url, cache_path=cache_path)).status_code == 200
    for broken in ("\u201c" + "p" * 62 + "\u201d", "p" * 30 + " " + "p" * 33, "p" * 30 + "\r\n" + "p" * 32):
        auth = KoyebAuth(token=broken, organization_id="org-1", api_url=fake.url, cache_path=cache_path)
        with pytest.raises(ConfigurationError, match="is not a token") as caught:
            auth.get_token()
        assert leaked(rendered(caught.value), [broken.strip()]) == []
    with pytest.raises(ConfigurationError):
        KoyebAuth(fake.EMAIL, fake.PASSWORD, seon_fp="finger print\n")
    assert fake.stats == {"api": 1}


def test_logout_without_the_password_says_it_ended_nothing(fake: FakeKoyebAPI, cache_path: Path) -> None:
    KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path).get_token()
    assert KoyebAuth(fake.EMAIL, api_url=fake.url, cache_path=cache_path).logout() is False
    result = subprocess.run([sys.executable, "-m", "koyeb_auth", "logout", "--email", fake.EMAIL, "--cache-path",
                             str(cache_path)], capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "KOYEB_URL": fake.url})
    # Without the password the session's key cannot be found: nothing to end here (logging out is
    # idempotent), and the session is not ended by guesswork.
    assert result.returncode == 0 and "no session of" in result.stdout, result.stderr
    assert "logout" not in fake.stats and len(fake.live_tokens()) == 1  # the session still stands


def test_exec_gives_the_child_a_token_and_not_the_credentials(fake: FakeKoyebAPI, cache_path: Path) -> None:
    child = "import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith('KOYEB_')}))"
    env = {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD}
    result = subprocess.run([sys.executable, "-m", "koyeb_auth", "exec", "--cache-path", str(cache_path), "--",
                             sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert sorted(seen) == ["KOYEB_TOKEN", "KOYEB_URL"] and seen["KOYEB_TOKEN"] in fake.live_tokens()


@pytest.mark.parametrize("credential", ["password", "personal token"])
def test_a_failed_session_call_carries_no_secret_in_its_context_or_locals(credential: str, cache_path: Path) -> None:
    unreachable = "http://127.0.0.1:9"
    if credential == "password":
        secret = "pw-never-shown"
        auth = KoyebAuth("a@b.c", secret, api_url=unreachable, cache_path=cache_path)
    else:
        secret = "p" * 64
        auth = KoyebAuth(token=secret, organization_id="org-1", api_url=unreachable, cache_path=cache_path)
    with pytest.raises(APIUnreachableError) as caught:
        auth.get_token()
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert leaked(rendered(caught.value), [secret]) == []


def test_an_unreadable_reply_holding_a_token_leaks_it_nowhere(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    planted = "eyJ-a-token-in-a-broken-reply"
    fake.fail("login", Fault(200, f'{{"token": {{"id": "{planted}", "expires_at": '.encode()))
    with pytest.raises(APIError, match="unusable reply") as caught:
        make_auth().get_token()
    assert caught.value.__context__ is None and planted not in rendered(caught.value)


@pytest.mark.parametrize("failure", ["renewal fails", "connection dropped"])
def test_the_sync_sdk_s_frames_never_hold_the_token(
    failure: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    client = sdk_client(make_auth(store=MemoryTokenStore()))
    koyeb.api.AppsApi(client).list_apps()
    if failure == "renewal fails":
        fake.revoke()
        fake.fail("login", Fault(500, {"message": "down"}))
    else:
        fake.fail("api", Fault(drop=True), times=10)
    with pytest.raises(Exception) as caught:
        koyeb.api.AppsApi(client).list_apps()
    assert leaked(rendered(caught.value), secrets_of(fake)) == []


def test_tracebacks_with_locals_show_no_token_when_a_renewal_fails_mid_request(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()
    assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 200
    fake.revoke()  # the next request gets a 401; its renewal then fails
    fake.fail("login", Fault(500, {"message": "down"}))
    with pytest.raises(KoyebAuthError) as caught:
        send(client, auth, "POST", fake.url + "/v1/echo", json={"a": 1})
    assert leaked(rendered(caught.value), secrets_of(fake)) == []
