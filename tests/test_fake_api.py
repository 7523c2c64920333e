"""The bundled fake API: its replies are exactly what Koyeb's OpenAPI document describes (checked
against `koyeb_openapi_subset.json`), its organization access token endpoint, and the endpoints it
can drop so that users can rehearse Koyeb withdrawing them."""

from __future__ import annotations

import base64
import email.utils
import json
import subprocess
import sys
import time
from typing import Any, NamedTuple

import httpx
import pytest

from koyeb_auth.testing import FakeKoyebAPI, Fault

from .openapi import problems

ORG = "org-7"


class Running(NamedTuple):
    """A fake API served by another process (`koyeb-auth fake-api`)."""

    url: str


def call(fake: FakeKoyebAPI | Running, method: str, path: str, token: str | None = None,
         **options: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, fake.url + path, headers=headers, **options)


def login(fake: FakeKoyebAPI) -> str:
    return str(call(fake, "POST", "/v1/account/login", json={"email": fake.EMAIL, "password": fake.PASSWORD})
               .json()["token"]["id"])


def access_token(fake: FakeKoyebAPI, validity: str | None = "3600s", organization: str = ORG) -> httpx.Response:
    body = {} if validity is None else {"validity": validity}
    return call(fake, "POST", f"/v1/organizations/{organization}/access_token", fake.PERSONAL_TOKEN, json=body)


def lifetime(token: str) -> float:
    """`exp - iat` of a JWT the fake issued."""
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return float(claims["exp"] - claims["iat"])


def test_the_validator_rejects_what_koyeb_never_sends() -> None:
    good = {"apps": [{"id": "a", "status": "HEALTHY", "created_at": "2024-01-01T00:00:00.123456Z",
                      "domains": [{"type": "CUSTOM", "version": "3", "koyeb": {"request_timeout_seconds": 100}}]}],
            "count": 1, "has_next": False}
    assert problems(good, "ListAppsReply") == []
    wrong: list[dict[str, Any]] = [
        {**good, "method": "GET"},  # a debugging key next to the documented ones
        {"apps": [{"status": "RUNNING"}]},  # not in the enum
        {"count": "1"},
        {"has_next": 1},
        {"apps": [{"created_at": "yesterday"}]},
        {"apps": [{"domains": [{"koyeb": {"request_timeout_seconds": 1.5}}]}]},
        {"apps": [{"domains": [{"version": "-1"}]}]},
        {"apps": {"id": "a"}},
    ]
    for reply in wrong:
        assert problems(reply, "ListAppsReply") != [], reply
    assert problems({"code": 5, "message": "Not Found", "details": [{"@type": "x", "any": 1}]},
                    "google.rpc.Status") == []
    assert problems({"extra": 1}, "LogoutReply") != []


def test_the_resources_are_exactly_their_documented_replies_for_every_kind_of_token(fake: FakeKoyebAPI) -> None:
    switched = call(fake, "POST", f"/v1/organizations/{ORG}/switch", fake.PERSONAL_TOKEN, json={})
    tokens = {"login": (login(fake), fake.ORGANIZATION_ID),
              "switch": (switched.json()["token"]["id"], ORG),
              "access_token": (access_token(fake).json()["token"], ORG)}
    for kind, (token, organization) in tokens.items():
        profile = call(fake, "GET", "/v1/account/profile", token)
        apps = call(fake, "GET", "/v1/apps", token)
        assert (profile.status_code, apps.status_code) == (200, 200), kind
        assert problems(profile.json(), "UserReply") == [], kind
        assert problems(apps.json(), "ListAppsReply") == [], kind
        assert {app["organization_id"] for app in apps.json()["apps"]} == {organization}, kind
    assert fake.stats["api"] == 6


def test_every_session_endpoint_replies_its_documented_shape(fake: FakeKoyebAPI) -> None:
    token = login(fake)
    replies = {
        "LoginReply": [call(fake, "POST", "/v1/account/login", json={"email": fake.EMAIL, "password": fake.PASSWORD}),
                       call(fake, "PUT", "/v1/account/refresh", token),
                       call(fake, "POST", f"/v1/organizations/{ORG}/switch", fake.PERSONAL_TOKEN, json={})],
        "CreateAccessTokenReply": [access_token(fake), access_token(fake, None)],
        "LogoutReply": [call(fake, "DELETE", "/v1/account/logout", login(fake))],
    }
    for definition, answers in replies.items():
        for answer in answers:
            assert answer.status_code == 200, answer.request.url
            assert problems(answer.json(), definition) == [], answer.request.url
    assert fake.stats == {"login": 3, "refresh": 1, "switch": 1, "access_token": 2, "logout": 1}


def test_every_error_replies_its_documented_shape(fake: FakeKoyebAPI) -> None:
    token = login(fake)
    fake.locked_users.add("locked@koyeb.com")
    fake.users["locked@koyeb.com"] = "pw"
    errors = {
        401: [call(fake, "POST", "/v1/account/login", json={"email": fake.EMAIL, "password": "wrong"}),
              call(fake, "GET", "/v1/apps", "not-a-token"),
              call(fake, "PUT", "/v1/account/refresh"),
              call(fake, "POST", f"/v1/organizations/{ORG}/access_token", "not-a-token", json={})],
        403: [call(fake, "POST", "/v1/account/login", json={"email": "locked@koyeb.com", "password": "pw"})],
    }
    for status, answers in errors.items():
        for answer in answers:
            assert answer.status_code == status
            assert problems(answer.json(), "Error") == [], answer.request.url
    for invalid in (call(fake, "POST", "/v1/account/login", content=b"not json"),
                    access_token(fake, "86401s")):
        assert invalid.status_code == 400
        assert problems(invalid.json(), "ErrorWithFields") == []
    fake.fail("api", Fault())
    fake.deactivated_organizations.add(fake.ORGANIZATION_ID)
    for answer in (call(fake, "GET", "/v1/apps", token), call(fake, "GET", "/v1/apps", token)):
        assert answer.status_code in (503, 401)
        assert problems(answer.json(), "Error") == []
    assert fake.stats == {"login": 1, "failed_login": 3, "unauthorized": 2, "refresh_refused": 1,
                          "access_token_refused": 1, "failed_access_token": 1, "fault_api": 1}


def test_other_paths_echo_the_request_for_tests_of_bodies(fake: FakeKoyebAPI) -> None:
    echoed = call(fake, "POST", "/v1/echo", login(fake), json={"name": "app"})
    assert echoed.status_code == 200
    assert echoed.json() == {"method": "POST", "path": "/v1/echo", "body": '{"name":"app"}'}


def test_an_access_token_lives_the_validity_asked_for_and_no_more(fake: FakeKoyebAPI) -> None:
    # The fake's own clock, moved forward: freezegun does not reach the fake's server threads.
    token = access_token(fake, "120s").json()["token"]
    assert call(fake, "GET", "/v1/apps", token).status_code == 200
    fake.clock_offset = 118
    assert call(fake, "GET", "/v1/apps", token).status_code == 200
    fake.clock_offset = 121
    assert call(fake, "GET", "/v1/apps", token).status_code == 401
    assert fake.stats == {"access_token": 1, "api": 2, "expired_sent": 1, "unauthorized": 1}


def test_an_access_token_is_valid_one_hour_by_default_and_24_hours_at_most(fake: FakeKoyebAPI) -> None:
    assert lifetime(access_token(fake, None).json()["token"]) == pytest.approx(3600, abs=1)
    assert lifetime(access_token(fake, "86400s").json()["token"]) == pytest.approx(86400, abs=1)
    assert lifetime(access_token(fake, "1.5s").json()["token"]) == pytest.approx(1.5, abs=1)
    for refused in ("86401s", "0s", "-5s", "3600", "an hour", "nans"):
        assert access_token(fake, refused).status_code == 400, refused
    assert fake.stats == {"access_token": 3, "failed_access_token": 6}


def test_access_tokens_are_scoped_to_their_organization_and_do_not_revoke_each_other(fake: FakeKoyebAPI) -> None:
    first = access_token(fake, organization="org-a").json()["token"]
    second = access_token(fake, organization="org-b").json()["token"]
    from_a = call(fake, "GET", "/v1/apps", first).json()["apps"]
    from_b = call(fake, "GET", "/v1/apps", second).json()["apps"]
    assert [app["organization_id"] for app in from_a + from_b] == ["org-a", "org-b"]
    session = login(fake)  # a session token may ask for one too
    by_session = call(fake, "POST", "/v1/organizations/org-c/access_token", session, json={"validity": "60s"})
    assert call(fake, "GET", "/v1/apps", by_session.json()["token"]).json()["apps"][0]["organization_id"] == "org-c"
    assert fake.stats == {"access_token": 3, "api": 3, "login": 1}


ENDPOINTS: dict[str, tuple[str, str]] = {
    "login": ("POST", "/v1/account/login"),
    "refresh": ("PUT", "/v1/account/refresh"),
    "logout": ("DELETE", "/v1/account/logout"),
    "switch": ("POST", f"/v1/organizations/{ORG}/switch"),
    "access_token": ("POST", f"/v1/organizations/{ORG}/access_token"),
}


@pytest.mark.slow
@pytest.mark.parametrize("status", [404, 405, 410])
@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_a_dropped_endpoint_answers_as_a_gateway_without_that_route(endpoint: str, status: int) -> None:
    with FakeKoyebAPI() as fake:
        fake.drop(endpoint, status)
        method, path = ENDPOINTS[endpoint]
        token = login(fake) if endpoint != "login" else fake.PERSONAL_TOKEN
        answer = call(fake, method, path, token, json={})
        assert answer.status_code == status
        assert problems(answer.json(), "google.rpc.Status") == []
        assert answer.json()["code"] == {404: 5, 405: 12, 410: 5}[status]
        fake.restore(endpoint)
        if endpoint != "login":
            token = login(fake)
        assert call(fake, method, path, token, json={"email": fake.EMAIL, "password": fake.PASSWORD}).status_code == 200
        assert fake.stats[f"dropped_{endpoint}"] == 1 and fake.stats[endpoint] >= 1


@pytest.mark.slow
def test_endpoints_dropped_from_the_start_and_what_cannot_be_dropped() -> None:
    with FakeKoyebAPI(without={"switch", "refresh"}) as fake:
        assert fake.dropped == {"switch": 404, "refresh": 404}
        token = login(fake)
        assert call(fake, "PUT", "/v1/account/refresh", token).status_code == 404
        assert call(fake, "POST", f"/v1/organizations/{ORG}/switch", token, json={}).status_code == 404
        assert access_token(fake).status_code == 200
        assert fake.stats == {"login": 1, "dropped_refresh": 1, "dropped_switch": 1, "access_token": 1}
        with pytest.raises(ValueError, match="drop"):
            fake.drop("login", 500)
    with pytest.raises(ValueError, match="drop"):
        FakeKoyebAPI(without={"api"})


def test_the_personal_token_authorizes_every_api_call_until_it_is_revoked(fake: FakeKoyebAPI) -> None:
    pat = fake.PERSONAL_TOKEN
    assert [call(fake, "GET", path, pat).status_code for path in ("/v1/apps", "/v1/account/profile")] == [200, 200]
    assert problems(call(fake, "GET", "/v1/apps", pat).json(), "ListAppsReply") == []
    assert call(fake, "POST", "/v1/echo", pat, json={}).json()["path"] == "/v1/echo"
    # A personal token is no session: refresh and logout refuse it, and it outlives them.
    assert [call(fake, "PUT", "/v1/account/refresh", pat).status_code,
            call(fake, "DELETE", "/v1/account/logout", pat).status_code] == [401, 401]
    fake.revoke()  # every session: the personal token is a credential, not a session
    assert call(fake, "GET", "/v1/apps", pat).status_code == 200
    fake.revoke(pat)
    refused = call(fake, "GET", "/v1/apps", pat)
    assert refused.status_code == 401 and problems(refused.json(), "Error") == []
    assert access_token(fake).status_code == 401
    assert fake.stats == {"api": 5, "unauthorized": 1, "access_token_refused": 1, "refresh_refused": 1,
                          "logout_refused": 1}


def test_login_method_answers_koyeb_or_workos_as_documented(fake: FakeKoyebAPI) -> None:
    fake.workos_users.add("sso@example.com")
    methods = {email: call(fake, "GET", "/v1/account/login_method", params={"email": email})
               for email in (fake.EMAIL, "sso@example.com", "nobody@example.com")}
    for answer in methods.values():
        assert answer.status_code == 200 and problems(answer.json(), "LoginMethodReply") == []
    assert {email: answer.json()["method"] for email, answer in methods.items()} == {
        fake.EMAIL: "KOYEB", "sso@example.com": "WORKOS", "nobody@example.com": "KOYEB"}
    assert fake.stats == {"login_method": 3}


def test_a_workos_account_is_refused_a_password_login_as_a_wrong_password_is(fake: FakeKoyebAPI) -> None:
    fake.users["sso@example.com"] = "right"
    fake.workos_users.add("sso@example.com")
    workos = call(fake, "POST", "/v1/account/login", json={"email": "sso@example.com", "password": "right"})
    wrong = call(fake, "POST", "/v1/account/login", json={"email": fake.EMAIL, "password": "wrong"})
    assert (workos.status_code, workos.json()) == (wrong.status_code, wrong.json()) == (401, wrong.json())
    assert fake.stats == {"failed_login": 2}


@pytest.mark.slow
def test_login_method_can_fail_and_be_dropped_as_the_deprecated_endpoint_it_is() -> None:
    with FakeKoyebAPI(without={"login_method"}) as fake:
        assert call(fake, "GET", "/v1/account/login_method?email=a@b.c").status_code == 404
        fake.restore("login_method")
        fake.fail("login_method", times=2)
        statuses = [call(fake, "GET", "/v1/account/login_method?email=a@b.c").status_code for _ in range(3)]
        assert statuses == [503, 503, 200]
        assert fake.stats == {"dropped_login_method": 1, "fault_login_method": 2, "login_method": 1}


@pytest.mark.slow
def test_latency_delays_every_answer_and_the_skew_moves_the_apis_clock() -> None:
    with FakeKoyebAPI(latency=0.3, clock_offset=-7200) as fake:
        started = time.monotonic()
        answer = call(fake, "GET", "/v1/account/login_method?email=a@b.c")
        assert time.monotonic() - started >= 0.3  # a lower bound only: a busy machine is slower, never faster
        assert email.utils.parsedate_to_datetime(answer.headers["date"]).timestamp() == pytest.approx(
            time.time() - 7200, abs=60)
        fake.latency = 0
        assert call(fake, "GET", "/v1/apps", fake.PERSONAL_TOKEN).status_code == 200


@pytest.mark.slow
def test_the_fake_api_command_prints_its_token_and_plays_the_faults_asked_for() -> None:
    command = [sys.executable, "-m", "koyeb_auth", "fake-api", "--latency", "0.2", "--skew", "-7200",
               "--fail", "api:1", "--without", "switch", "--workos", "sso@example.com"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[4]
        shown = "".join(proc.stdout.readline() for _ in range(3))
        assert f"KOYEB_URL={url} KOYEB_TOKEN={FakeKoyebAPI.PERSONAL_TOKEN}" in shown
        assert "the fake's own public test value" in shown
        fake = Running(url)
        pat = FakeKoyebAPI.PERSONAL_TOKEN
        started = time.monotonic()
        assert [call(fake, "GET", "/v1/apps", pat).status_code for _ in range(2)] == [503, 200]
        assert time.monotonic() - started >= 0.4  # a lower bound: a busy machine is slower, never faster
        assert call(fake, "POST", f"/v1/organizations/{ORG}/switch", pat, json={}).status_code == 404
        assert call(fake, "GET", "/v1/account/login_method?email=sso@example.com").json() == {"method": "WORKOS"}
        account = {"email": FakeKoyebAPI.EMAIL, "password": FakeKoyebAPI.PASSWORD}
        session = call(fake, "POST", "/v1/account/login", json=account).json()["token"]["id"]
        assert call(fake, "POST", "/_fake/revoke").status_code == 200
        assert call(fake, "GET", "/v1/apps", session).status_code == 401
        answer = call(fake, "GET", "/_fake/stats")
        assert email.utils.parsedate_to_datetime(answer.headers["date"]).timestamp() == pytest.approx(
            time.time() - 7200, abs=60)
        assert answer.json() == {"fault_api": 1, "api": 1, "dropped_switch": 1, "login_method": 1, "login": 1,
                                 "unauthorized": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("option", [["--fail", "api"], ["--fail", "nothing:2"], ["--fail", "api:0"],
                                    ["--latency", "-1"], ["--skew", "nan"], ["--without", "api"]])
def test_the_fake_api_command_refuses_faults_it_cannot_play(option: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "koyeb_auth", "fake-api", *option], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert option[0] in result.stderr
