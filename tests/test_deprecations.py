"""When Koyeb drops the deprecated session endpoints (login, refresh, logout, the organization
switch): what koyeb-auth does, against the fake API with each of them dropped, counting what the
fake saw."""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from freezegun import freeze_time

from koyeb_auth import (
    AccessDeniedError,
    APIError,
    ConfigurationError,
    EndpointWithdrawnError,
    InvalidCredentialsError,
    KoyebAuth,
    MemoryTokenStore,
    Token,
)
from koyeb_auth import _session_api as api
from koyeb_auth._token import entry_from_token, token_from_entry
from koyeb_auth.testing import FakeKoyebAPI, Fault

ORG = "org-42"
HTML = b"<html><body><h1>404 Not Found</h1></body></html>"
GATEWAY_404 = {"code": 5, "message": "Not Found", "details": []}


def organization_auth(fake: FakeKoyebAPI, cache_path: Path, **options: Any) -> KoyebAuth:
    return KoyebAuth(token=fake.PERSONAL_TOKEN, organization_id=ORG, api_url=fake.url, cache_path=cache_path,
                     **options)


def jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT with these claims: koyeb-auth reads claims without verifying them."""
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{part(b'{}')}.{part(json.dumps(claims).encode())}.{part(b'signature')}"


def run_for(seconds: int, step: int, *auths: KoyebAuth, url: str) -> list[int]:
    """One request every `step` seconds of a frozen clock, from each auth in turn; the statuses seen."""
    statuses = []
    with freeze_time(tick=True) as clock:
        for number in range(seconds // step):
            statuses.append(httpx.get(url, auth=auths[number % len(auths)]).status_code)
            clock.tick(step)
    return statuses


# --- organization scope without the switch ----------------------------------------------------------


@pytest.mark.parametrize("status", [404, 405, 410])
def test_a_personal_token_and_organization_keep_working_without_the_switch_one_token_per_lifetime(
    fake: FakeKoyebAPI, cache_path: Path, status: int
) -> None:
    fake.drop("switch", status)
    # Tokens valid 600 s, renewed in their last 60 s: one every 550 s with a request every 50 s.
    auth = organization_auth(fake, cache_path, refresh_margin=60, organization_token_validity=600)
    statuses = run_for(3000, 50, auth, url=fake.url + "/v1/apps")
    assert statuses == [200] * 60
    # The switch was asked once; then an access token per lifetime (at 0, 550, ..., 2750 s), each
    # renewed before it expired: no 401, no expired token sent.
    assert fake.stats == {"dropped_switch": 1, "access_token": 6, "api": 60}


def test_organization_token_access_token_never_asks_the_switch(fake: FakeKoyebAPI, cache_path: Path) -> None:
    auth = organization_auth(fake, cache_path, organization_token="access_token", organization_token_validity=600,
                             refresh_margin=60)
    assert run_for(1200, 50, auth, url=fake.url + "/v1/apps") == [200] * 24
    assert fake.stats == {"access_token": 3, "api": 24}
    token = auth.cached_token()
    assert token is not None and token.expires_at is not None
    assert token.expires_at - token.obtained_at == 600  # the validity asked for: the reply has no expiry


def test_the_withdrawn_switch_is_remembered_by_the_process_and_in_the_cache_entry(
    fake: FakeKoyebAPI, cache_path: Path
) -> None:
    fake.drop("switch")
    first = organization_auth(fake, cache_path)
    assert httpx.get(fake.url + "/v1/apps", auth=first).status_code == 200
    entry = next(iter(json.loads(cache_path.read_text())["tokens"].values()))
    assert entry["withdrawn"] == ["switch"]
    # Another process (another KoyebAuth on the same cache) renews a revoked token: straight to
    # the access token, because the entry said the switch is gone.
    second = organization_auth(fake, cache_path)
    assert httpx.get(fake.url + "/v1/apps", auth=second).status_code == 200
    fake.revoke()
    assert httpx.get(fake.url + "/v1/apps", auth=second).status_code == 200
    # The first process remembers it itself, even once the cache is gone.
    cache_path.unlink()
    fake.revoke()
    assert httpx.get(fake.url + "/v1/apps", auth=first).status_code == 200
    assert fake.stats == {"dropped_switch": 1, "access_token": 3, "api": 4, "unauthorized": 2}


FLEET = """
import json, os, sys, time, httpx
from koyeb_auth import KoyebAuth
auth = KoyebAuth(cache_path=os.environ["WORKER_CACHE"], organization_token_validity=float(os.environ["VALIDITY"]))
url = os.environ["KOYEB_URL"] + "/v1/apps"
print("ready", flush=True)
sys.stdin.readline()
statuses, deadline = [], time.monotonic() + float(os.environ["SECONDS"])
with httpx.Client(auth=auth) as client:
    while time.monotonic() < deadline:
        statuses.append(client.get(url).status_code)
print(json.dumps({"statuses": sorted(set(statuses)), "count": len(statuses)}))
"""


def test_a_fleet_of_processes_shares_one_organization_token_per_lifetime_without_the_switch(
    fake: FakeKoyebAPI, cache_path: Path
) -> None:
    fake.drop("switch")
    seconds, validity = 6.0, 3.0  # renewed in the last half of its life: every 1.5 s at most
    env = {**os.environ, "KOYEB_URL": fake.url, "KOYEB_TOKEN": fake.PERSONAL_TOKEN, "KOYEB_ORGANIZATION": ORG,
           "WORKER_CACHE": str(cache_path), "VALIDITY": str(validity), "SECONDS": str(seconds)}
    workers = [subprocess.Popen([sys.executable, "-c", FLEET], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env=env) for _ in range(4)]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = [json.loads(worker.communicate(timeout=60)[0]) for worker in workers]
    stats = fake.stats
    assert [result["statuses"] for result in results] == [[200]] * 4
    assert stats["api"] == sum(result["count"] for result in results)
    # One process met the withdrawn switch; the token it saved told every other one.
    assert stats["dropped_switch"] == 1 and "switch" not in stats
    assert seconds / validity <= stats["access_token"] <= seconds / (validity / 2) + 3
    assert stats.get("unauthorized", 0) == 0 and stats.get("expired_sent", 0) == 0


def test_organization_token_switch_reports_a_withdrawn_switch_with_the_way_out(
    fake: FakeKoyebAPI, cache_path: Path
) -> None:
    fake.drop("switch", 410)
    auth = organization_auth(fake, cache_path, organization_token="switch")
    with pytest.raises(EndpointWithdrawnError, match="organization_token='auto'") as caught:
        httpx.get(fake.url + "/v1/apps", auth=auth)
    assert (caught.value.endpoint, caught.value.status) == ("switch", 410)
    assert fake.PERSONAL_TOKEN not in str(caught.value)
    assert fake.stats == {"dropped_switch": 1}


def test_the_organization_token_options_are_checked(fake: FakeKoyebAPI, cache_path: Path) -> None:
    for bad in ({"organization_token": "sometimes"}, {"organization_token_validity": 0},
                {"organization_token_validity": 86401}, {"organization_token_validity": timedelta(days=2)}):
        with pytest.raises(ConfigurationError, match="organization_token"):
            organization_auth(fake, cache_path, **bad)
    auth = organization_auth(fake, cache_path, organization_token="access_token",
                             organization_token_validity=timedelta(hours=2))
    assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200
    token = auth.cached_token()
    assert token is not None and token.expires_at is not None and token.expires_at - token.obtained_at == 7200


def test_an_access_token_lives_its_validity_or_its_jwt_lifetime_whichever_is_sooner() -> None:
    call = api.access_token("https://x", "org", "pat", 3600)
    assert (call.url, call.body, call.validity) == ("https://x/v1/organizations/org/access_token",
                                                     {"validity": "3600s"}, 3600)
    assert api.duration(1.5) == "1.5s" and api.duration(0.000000001) == "0.000000001s"
    short, long = jwt({"iat": 1000, "exp": 1100}), jwt({"iat": 1000, "exp": 9000})
    for value, lifetime in ((short, 100), (long, 3600), ("opaque-token", 3600), (jwt({"exp": 1050}), 1000)):
        token = api.token_from(call, api.Reply(200, {}, json.dumps({"token": value}).encode()), 50.0, 51.0)
        assert (token.obtained_at, token.expires_at) == (50.0, 50.0 + lifetime)  # from when it was asked
    for unusable in (b"{}", b'{"token": 7}', b"<html>", b'{"token": ""}'):
        with pytest.raises(APIError, match="unusable reply"):
            api.token_from(call, api.Reply(200, {}, unusable), 50.0, 51.0)
    for expired in (jwt({"iat": 1000, "exp": 1000}), jwt({"exp": 40})):
        with pytest.raises(APIError, match="already expired"):
            api.token_from(call, api.Reply(200, {}, json.dumps({"token": expired}).encode()), 50.0, 51.0)


# --- refresh gone ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 405, 410])
def test_a_dropped_refresh_costs_one_login_per_lifetime_and_is_not_asked_again(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], status: int
) -> None:
    fake.drop("refresh", status)
    fake.ttl = 600
    # Two processes (two KoyebAuth on one cache) take turns: the one that met the withdrawn
    # refresh saved a token that tells the other.
    first, second = make_auth(refresh_margin=60), make_auth(refresh_margin=60)
    statuses = run_for(3000, 50, first, second, url=fake.url + "/v1/apps")
    assert statuses == [200] * 60
    assert fake.stats == {"login": 6, "dropped_refresh": 1, "api": 60}


def test_a_dropped_refresh_is_not_asked_again_by_the_process_that_met_it(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.drop("refresh")
    auth = make_auth(store=MemoryTokenStore())
    assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200
    for _ in range(3):
        fake.revoke()
        assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200
    assert fake.stats == {"login": 4, "dropped_refresh": 1, "api": 4, "unauthorized": 3}


# --- login gone --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 405, 410])
def test_a_dropped_login_says_it_may_be_withdrawn_and_names_the_personal_access_token(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], status: int
) -> None:
    fake.drop("login", status)
    auth = make_auth()
    for _ in range(2):  # the second within the backoff: the same error, no call
        with pytest.raises(EndpointWithdrawnError) as caught:
            httpx.get(fake.url + "/v1/apps", auth=auth)
    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert "may have withdrawn the email-and-password login" in message
    assert "personal access token" in message and "KOYEB_TOKEN" in message
    assert fake.PASSWORD not in message
    assert isinstance(caught.value, AccessDeniedError) and (caught.value.endpoint, caught.value.status) == (
        "login", status)
    copy = pickle.loads(pickle.dumps(caught.value))  # as a worker pool sends it to its parent
    assert (type(copy), str(copy), copy.endpoint, copy.status) == (EndpointWithdrawnError, message, "login", status)
    assert fake.stats == {"dropped_login": 1}


@pytest.mark.parametrize("status", [404, 405, 410])
def test_a_login_answered_by_something_other_than_koyeb_says_the_url_may_be_wrong(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], status: int
) -> None:
    fake.fail("login", Fault(status, HTML, {"content-type": "text/html"}))
    with pytest.raises(APIError) as caught:
        httpx.get(fake.url + "/v1/apps", auth=make_auth())
    assert not isinstance(caught.value, EndpointWithdrawnError)
    assert "not a Koyeb API reply" in str(caught.value) and "KOYEB_URL" in str(caught.value)
    assert "may be wrong" in str(caught.value) and caught.value.status == status
    assert fake.stats == {"fault_login": 1}


def test_the_command_line_gives_the_way_out_and_exit_code_4(fake: FakeKoyebAPI, cache_path: Path) -> None:
    fake.drop("login")
    env = {**os.environ, "KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD}
    result = subprocess.run([sys.executable, "-m", "koyeb_auth", "token", "--cache-path", str(cache_path)],
                            capture_output=True, text=True, env=env, timeout=60, check=False)
    assert result.returncode == 4
    assert "KOYEB_TOKEN" in result.stderr and "Traceback" not in result.stderr
    assert fake.stats == {"dropped_login": 1}


LOGIN = api.login("https://x", "a@b.c", "pw", None, None)
REFRESH = api.refresh("https://x", "tok")
SWITCH = api.switch("https://x", "org", "pat", None)
ACCESS = api.access_token("https://x", "org", "pat", 3600)
LOGOUT = api.logout("https://x", "tok")


@pytest.mark.parametrize(
    ("call", "status", "body", "error"),
    [
        (LOGIN, 404, GATEWAY_404, EndpointWithdrawnError),
        (LOGIN, 404, {"status": 404, "code": "not_found", "message": "Not Found"}, EndpointWithdrawnError),
        (LOGIN, 405, {"code": 12, "message": "Method Not Allowed"}, EndpointWithdrawnError),
        (LOGIN, 410, {"status": 410, "code": "gone", "message": "Gone"}, EndpointWithdrawnError),
        (LOGIN, 404, {"status": 404, "code": "not_found", "message": "Cannot find user"}, InvalidCredentialsError),
        (LOGIN, 404, HTML, APIError),
        (LOGIN, 405, b"", APIError),
        (LOGIN, 404, [1, 2], APIError),
        (ACCESS, 404, {"status": 404, "code": "not_found", "message": "Organization not found"},
         InvalidCredentialsError),
        (ACCESS, 405, GATEWAY_404, EndpointWithdrawnError),
        (ACCESS, 410, HTML, APIError),
        (REFRESH, 404, GATEWAY_404, EndpointWithdrawnError),
        # Not Koyeb's gateway (a load balancer's page, maybe passing): a failed refresh, not a withdrawn one.
        (REFRESH, 405, HTML, APIError),
        (SWITCH, 404, {"status": 404, "code": "not_found", "message": "Organization not found"},
         EndpointWithdrawnError),  # in "auto" the access token follows, and says which
        (SWITCH, 410, GATEWAY_404, EndpointWithdrawnError),
        (LOGOUT, 404, GATEWAY_404, EndpointWithdrawnError),
    ],
)
def test_what_a_404_405_or_410_means_for_each_endpoint(
    call: api.Call, status: int, body: object, error: type[Exception]
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    failure = api.error_for(call, api.Reply(status, {}, raw))
    assert type(failure) is error
    assert str(status) in str(failure) and call.url in str(failure)
    if isinstance(failure, EndpointWithdrawnError):
        assert (failure.endpoint, failure.status) == (call.action, status)
        assert "withdrawn" in str(failure)
    if error is APIError:
        assert "may be wrong" in str(failure)


# --- logout gone -------------------------------------------------------------------------------------


def test_a_dropped_logout_still_drops_the_token_and_says_why_the_session_lives_on(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], cache_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.drop("logout", 405)
    auth = make_auth()
    token = auth.get_token()
    with caplog.at_level(logging.WARNING, logger="koyeb_auth"):
        auth.logout()
    assert token not in cache_path.read_text() and auth.cached_token() is None
    assert "withdrawn logout" in caplog.text and "stays valid on the API until it expires" in caplog.text
    assert fake.stats == {"login": 1, "dropped_logout": 1}


# --- the cache entry ---------------------------------------------------------------------------------


def test_cache_entries_stay_what_earlier_versions_wrote_and_read() -> None:
    plain = Token("tok", obtained_at=1.0, expires_at=2.0, user_id="u", organization_id="o")
    assert set(entry_from_token(plain)) == {"token", "obtained_at", "expires_at", "user_id", "organization_id"}
    assert token_from_entry(entry_from_token(plain)) == plain
    knowing = Token("tok", obtained_at=1.0, expires_at=2.0, withdrawn=frozenset({"switch", "refresh"}))
    entry = entry_from_token(knowing)
    assert entry["withdrawn"] == ["refresh", "switch"]
    assert token_from_entry(json.loads(json.dumps(entry))) == knowing
    # Earlier versions read only the keys they know; a malformed list costs one more try, not the token.
    for malformed in ("switch", [1, None], {"switch": True}):
        read = token_from_entry({**entry, "withdrawn": malformed})
        assert read is not None and read.value == "tok" and read.withdrawn == frozenset()
    assert "withdrawn" not in repr(knowing)


# --- the demo ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("without", "shown", "credentials"), [
    ("switch", "Calls to withdrawn endpoints: switch 1.", []),
    ("refresh", "Calls to withdrawn endpoints: refresh 1.", ["--password"]),
    ("login", "may have withdrawn the email-and-password login", ["--password"]),
])
@pytest.mark.slow
def test_the_demo_rehearses_each_withdrawal(without: str, shown: str, credentials: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "koyeb_auth", "demo", "--workers", "3", "--seconds", "3",
                             "--ttl", "2", "--without", without, *credentials], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert shown in result.stdout
    assert "PASS: 3 processes" in result.stdout and "0 401(s), 0 request(s) with an expired token" in result.stdout
    assert "Traceback" not in result.stderr
