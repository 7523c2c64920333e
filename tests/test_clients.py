"""KoyebAuth driven by every client library it supports, real ones, against the fake API."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory

from koyeb_auth import (
    AccountLockedError,
    APIError,
    APIUnreachableError,
    InvalidCredentialsError,
    KoyebAuth,
    MemoryTokenStore,
)
from koyeb_auth._manager import RETRY_AFTER_FAILURE
from koyeb_auth.testing import FakeKoyebAPI, Fault

from .clients import CLIENTS, send


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_construction_does_no_io_and_twenty_requests_cause_one_login(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], cache_path: Path
) -> None:
    auth = make_auth()
    assert fake.stats == {} and not cache_path.parent.exists()
    statuses = [send(client, auth, "GET", fake.url + "/v1/apps").status_code for _ in range(20)]
    assert statuses == [200] * 20
    assert fake.stats == {"login": 1, "api": 20}


def test_requests_to_another_origin_carry_no_token_and_cause_no_login(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    with FakeKoyebAPI() as other:
        auth = make_auth()
        for url in (other.url + "/v1/apps", fake.url.replace("127.0.0.1", "localhost") + "/v1/apps"):
            response = send(client, auth, "GET", url)
            assert response.status_code == 401  # no Authorization header reached it
        # Same server under another host name is another origin: a 401 there, and no login anywhere.
        assert fake.stats == {"unauthorized": 1} and other.stats == {"unauthorized": 1}


def test_a_request_to_the_login_endpoint_itself_is_left_alone(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    response = send(client, make_auth(), "POST", fake.url + "/v1/account/login",
                    json={"email": fake.EMAIL, "password": "wrong"})
    assert response.status_code == 401
    assert fake.stats == {"failed_login": 1}


@contextmanager
def in_refresh_window(client: str, fake: FakeKoyebAPI, auth: KoyebAuth) -> Iterator[FrozenDateTimeFactory]:
    """Log in with a 600 s token, then move the clock 400 s on: inside min(margin 300, 600 / 2)."""
    fake.ttl = 600
    with freeze_time(tick=True) as clock:
        assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 200
        clock.tick(400)
        yield clock


def test_a_token_in_its_refresh_window_is_refreshed_once_without_any_401(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth(refresh_margin=300)
    with in_refresh_window(client, fake, auth):
        statuses = [send(client, auth, "GET", fake.url + "/v1/apps").status_code for _ in range(10)]
    assert statuses == [200] * 10
    assert fake.stats == {"login": 1, "refresh": 1, "api": 11}


def test_an_expired_token_is_never_sent(client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]) -> None:
    fake.ttl = 600
    auth = make_auth()
    with freeze_time(tick=True) as clock:
        assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 200
        clock.tick(700)
        assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 200
    # An expired session cannot be refreshed, so it logs in again; the server never saw the old token.
    assert fake.stats == {"login": 2, "api": 2}


def test_a_revoked_token_is_renewed_and_the_request_retried_once_with_its_json_body(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()
    assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 200
    fake.revoke()
    response = send(client, auth, "POST", fake.url + "/v1/echo", json={"name": "app", "n": [1, 2]})
    assert response.status_code == 200
    assert json.loads(response.json()["body"]) == {"name": "app", "n": [1, 2]}
    # One 401, a refused refresh of the revoked token, a new login, then the retry.
    assert fake.stats == {"login": 2, "api": 2, "unauthorized": 1, "refresh_refused": 1}


def test_a_persistent_401_goes_back_to_the_caller_after_one_retry(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()
    assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 200
    unauthorized = Fault(401, {"status": 401, "code": "authentication_error", "message": "nope"})
    fake.fail("api", unauthorized, times=100)
    assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 401
    assert fake.stats["fault_api"] == 2  # the request and its single retry
    assert (fake.stats["login"], fake.stats["refresh"]) == (1, 1)  # the token was renewed once
    # Another 401 straight after: the fresh token is not the problem, so no renewal storm.
    assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 401
    assert fake.stats["fault_api"] == 3
    assert (fake.stats["login"], fake.stats["refresh"]) == (1, 1)


def test_token_rejected_means_a_deactivated_organization_and_is_not_retried(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()
    assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 200
    fake.deactivated_organizations.add(fake.ORGANIZATION_ID)
    assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 401
    assert fake.stats == {"login": 1, "api": 1, "unauthorized": 1}


def generated_body() -> Iterator[bytes]:
    yield b"streamed "
    yield b"once"


def test_a_generator_body_is_not_replayed_but_the_token_is_renewed(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()
    assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200
    fake.revoke()
    assert httpx.post(fake.url + "/v1/echo", content=generated_body(), auth=auth).status_code == 401
    assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200  # with the renewed token
    fake.revoke()
    assert requests.post(fake.url + "/v1/echo", data=generated_body(), auth=auth, timeout=10).status_code == 401
    assert requests.get(fake.url + "/v1/apps", auth=auth, timeout=10).status_code == 200
    assert fake.stats == {"login": 3, "api": 3, "unauthorized": 2, "refresh_refused": 2}


def test_a_seekable_file_body_is_rewound_and_replayed(fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]) -> None:
    auth = make_auth()
    auth.get_token()
    fake.revoke()
    with httpx.Client(auth=auth) as client:
        response = client.post(fake.url + "/v1/upload", content=io.BytesIO(b"file contents"))
    assert (response.status_code, response.json()["body"]) == (200, "file contents")
    fake.revoke()
    upload = io.BytesIO(b"skip:file contents")
    upload.seek(5)  # requests sends from the current position: so must the retry
    response = requests.post(fake.url + "/v1/upload", data=upload, auth=auth, timeout=10)
    assert (response.status_code, response.json()["body"]) == (200, "file contents")
    assert fake.stats["unauthorized"] == 2 and fake.stats["api"] == 2


def test_a_peer_token_in_the_cache_is_adopted_on_401_without_a_network_renewal(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    first, second = make_auth(), make_auth()
    assert send(client, first, "GET", fake.url + "/v1/apps").status_code == 200
    assert send(client, second, "GET", fake.url + "/v1/apps").status_code == 200  # adopts the cached token
    fake.ttl = 3000
    with freeze_time(tick=True) as clock:
        clock.tick(3500)  # `first` is due: it refreshes, and the server revokes the old token
        assert send(client, first, "GET", fake.url + "/v1/apps").status_code == 200
    assert send(client, second, "GET", fake.url + "/v1/apps").status_code == 200
    assert fake.stats == {"login": 1, "refresh": 1, "api": 4, "unauthorized": 1}


class PeerRefreshesFirst(FakeKoyebAPI):
    """A fake on which a peer process renews the token our retry carries just before the retry lands.

    What a busy fleet with short tokens sees: between our renewal and our resend, a peer renewed
    the token we just got (the server revokes it) and shared the newer one.
    """

    def __init__(self) -> None:
        super().__init__()
        self.race: tuple[str, KoyebAuth] | None = None  # (the token that stays alone, the peer)

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Any:
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        if self.race is not None and path == "/v1/apps" and bearer != self.race[0]:
            peer, self.race = self.race[1], None
            self.revoke(bearer)
            assert httpx.get(self.url + "/v1/apps", auth=peer).status_code == 200  # the peer renews and shares
        return super().handle(method, path, headers, body)


@pytest.mark.slow
def test_a_retry_refused_because_a_peer_renewed_meanwhile_is_sent_again_with_the_peers_token(
    client: str, cache_path: Path
) -> None:
    with PeerRefreshesFirst() as fake:
        auth, peer = (KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path) for _ in "12")
        first = auth.get_token()
        fake.revoke()
        fake.race = (first, peer)
        assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 200
        # Ours: a 401, a refused refresh, a login, a retry refused after the peer's renewal, then its
        # token. The peer's: a 401, a refused refresh, a login. No suspect mark: the next call is clean.
        assert fake.stats == {"login": 3, "refresh_refused": 2, "unauthorized": 3, "api": 2}
        assert send(client, auth, "GET", fake.url + "/v1/apps").status_code == 200
        assert fake.stats["api"] == 3 and fake.stats["login"] == 3


def test_wrong_password_is_a_clear_error_with_no_retry_loop_and_no_password(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth(password="correct horse battery staple")
    for _ in range(3):
        with pytest.raises(InvalidCredentialsError) as caught:
            send(client, auth, "GET", fake.url + "/v1/apps")
        assert "correct horse" not in str(caught.value) and "correct horse" not in repr(caught.value)
        assert "password is incorrect" in str(caught.value)
    # The first failure is remembered for a backoff period: three calls, one login attempt.
    assert fake.stats == {"failed_login": 1, "login_method": 1}


def test_a_locked_account_is_its_own_error(fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]) -> None:
    fake.locked_users.add(fake.EMAIL)
    with pytest.raises(AccountLockedError, match="Account is locked"):
        make_auth().get_token()


def test_an_unreachable_api_is_a_clear_error(make_auth: Callable[..., KoyebAuth], cache_path: Path) -> None:
    auth = KoyebAuth("a@b.c", "pw", api_url="http://127.0.0.1:9", cache_path=cache_path, timeout=2)
    with pytest.raises(APIUnreachableError, match="Could not reach"):
        httpx.get("http://127.0.0.1:9/v1/apps", auth=auth)


def test_a_garbage_login_reply_is_an_api_error_and_nothing_is_cached(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], cache_path: Path
) -> None:
    fake.fail("login", Fault(200, b"<html>proxy login page</html>", {"content-type": "text/html"}))
    with pytest.raises(APIError, match="unusable reply"):
        make_auth().get_token()
    assert not cache_path.exists()


def test_logout_ends_the_session_and_drops_it_from_the_shared_cache(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], cache_path: Path
) -> None:
    auth = make_auth()
    token = auth.get_token()
    assert token in cache_path.read_text()
    auth.logout()
    assert token not in cache_path.read_text()
    assert fake.stats == {"login": 1, "logout": 1} and fake.live_tokens() == []
    asyncio.run(auth.alogout())  # nothing left to end: no call
    assert fake.stats["logout"] == 1
    assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200  # logs in again lazily
    assert fake.stats["login"] == 2


def test_a_personal_token_with_an_organization_is_switched_and_cached(fake: FakeKoyebAPI, cache_path: Path) -> None:
    auth = KoyebAuth(token=fake.PERSONAL_TOKEN, organization_id="org-42", api_url=fake.url, cache_path=cache_path)
    assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200
    assert requests.get(fake.url + "/v1/apps", auth=auth, timeout=10).status_code == 200
    token = auth.cached_token()
    assert token is not None and token.organization_id == "org-42"
    assert fake.PERSONAL_TOKEN not in cache_path.read_text()
    assert fake.stats == {"switch": 1, "api": 2}


def test_a_personal_token_alone_is_sent_as_is_and_never_cached(fake: FakeKoyebAPI, cache_path: Path) -> None:
    session = fake._issue("user-pat", "org")["token"]["id"]  # stands in for a valid long-lived token
    auth = KoyebAuth(token=session, api_url=fake.url, cache_path=cache_path)
    assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200
    fake.revoke()
    assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 401  # nothing to renew: returned
    assert not cache_path.exists()
    assert fake.stats == {"api": 1, "unauthorized": 1}


def test_credentials_from_the_environment_and_the_cli_file(
    fake: FakeKoyebAPI, cache_path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "koyeb.yaml"
    config.write_text(f"token: {fake.PERSONAL_TOKEN}\nurl: {fake.url}\norganization: org-from-file\n")
    monkeypatch.setenv("KOYEB_CONFIG", str(config))
    auth = KoyebAuth(cache_path=cache_path)
    assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200
    assert auth.settings.found_in == str(config) and fake.stats["switch"] == 1
    monkeypatch.setenv("KOYEB_EMAIL", fake.EMAIL)
    monkeypatch.setenv("KOYEB_PASSWORD", fake.PASSWORD)
    auth = KoyebAuth(store=MemoryTokenStore())
    assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200
    assert auth.settings.found_in == "environment" and fake.stats["login"] == 1


def test_a_refresh_that_fails_keeps_the_still_valid_token(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth(refresh_margin=300)
    with in_refresh_window(client, fake, auth) as clock:
        fake.fail("refresh", times=5)
        started = time.monotonic()
        statuses = [send(client, auth, "GET", fake.url + "/v1/apps").status_code for _ in range(5)]
        took = time.monotonic() - started
        assert statuses == [200] * 5
        # One failed attempt, then one a second at most, however slow a busy machine makes the five
        # requests: never an attempt per request.
        stats = fake.stats
        attempts = stats.pop("fault_refresh")
        assert 1 <= attempts <= 1 + took // RETRY_AFTER_FAILURE, (attempts, took)
        assert stats == {"login": 1, "api": 6}
        clock.tick(250)  # expired now, and the API fails the new login: a clear error
        fake.fail("login")
        with pytest.raises(APIError, match="503"):
            send(client, auth, "GET", fake.url + "/v1/apps")
