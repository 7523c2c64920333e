"""Attacks on where secrets go: redirects, TLS, a guessed password, child processes, tracebacks.

Each test runs the attack against real servers on loopback (the fake API, and a hostile recorder
that logs what reached it) and asserts what the servers saw. Every one of them failed on the
code before the fix it guards (see SECURITY.md for the list).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from koyeb_auth import (
    APIError,
    APIUnreachableError,
    ConfigurationError,
    FileTokenStore,
    InvalidCredentialsError,
    KoyebAuth,
    KoyebAuthError,
    MemoryTokenStore,
)
from koyeb_auth.origin import Origin
from koyeb_auth.testing import FakeKoyebAPI, Fault
from koyeb_auth.token import fingerprint

from .clients import CLIENTS, send
from .recorder import Answer, Recorder


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


@pytest.mark.parametrize("url", ["https://app.koyeb.com.evil.example", "https://app.koyeb.com@evil.example",
                                 "https://evil.example/app.koyeb.com", "http://app.koyeb.com",
                                 "https://app.koyeb.com:8443", "https://app.koyeb.com\\@evil.example"])
def test_look_alike_urls_are_another_origin(url: str) -> None:
    origin = Origin("HTTPS://App.Koyeb.COM:443/")
    assert origin.authorizes("GET", "https://app.koyeb.com/v1/apps")
    assert origin.authorizes("GET", httpx.URL("https://APP.koyeb.com:443/v1/apps"))
    assert not origin.authorizes("GET", url + "/v1/apps")
    assert not origin.authorizes("GET", httpx.URL(url.replace("\\", "%5C") + "/v1/apps"))


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


def test_a_user_and_password_in_the_api_url_are_refused_without_being_echoed() -> None:
    with pytest.raises(ConfigurationError) as caught:
        KoyebAuth("a@b.c", "pw", api_url="https://me:hunter2@app.koyeb.com").get_token()
    assert "hunter2" not in str(caught.value)


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
    # The right password, in another KoyebAuth, still shares the session: one login in all.
    assert KoyebAuth(email, fake.PASSWORD, api_url=fake.url, store=store).get_token() == token
    assert fake.stats == {"login": 1, "failed_login": 1}
    if kind == "file":
        assert fake.PASSWORD not in cache_path.read_text()


# --- what reaches a child process, an exception, a traceback ---------------------------------------------


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
