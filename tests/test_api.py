"""Request builders and the mapping of replies to errors (pure: Reply objects, no network)."""

from __future__ import annotations

import json

import pytest

from koyeb_auth import (
    AccessDeniedError,
    AccountLockedError,
    APIError,
    InvalidCredentialsError,
    KoyebAuthError,
    OrganizationDeactivatedError,
    RateLimitedError,
)
from koyeb_auth import _session_api as api

LOGIN = api.login("https://app.koyeb.com", "a@b.c", "hunter2", None, None)


def reply(status: int, body: object = None, **headers: str) -> api.Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
    return api.Reply(status, headers, raw)


def test_login_sends_credentials_in_the_body_and_no_authorization() -> None:
    call = api.login("https://app.koyeb.com", "a@b.c", "pw", "org-1", "fp")
    assert (call.method, call.url) == ("POST", "https://app.koyeb.com/v1/account/login")
    assert call.body == {"email": "a@b.c", "password": "pw", "organization_id": "org-1"}
    assert call.headers == {"seon-fp": "fp"}
    assert "pw" not in repr(call)


def test_refresh_logout_and_switch_use_the_bearer() -> None:
    refresh = api.refresh("https://x", "tok")
    assert (refresh.method, refresh.url, refresh.body) == ("PUT", "https://x/v1/account/refresh", None)
    assert refresh.headers == {"Authorization": "Bearer tok"}
    assert api.logout("https://x", "tok").method == "DELETE"
    switch = api.switch("https://x", "org-9", "pat", None)
    assert (switch.url, switch.body) == ("https://x/v1/organizations/org-9/switch", {})
    assert "tok" not in repr(refresh) and "pat" not in repr(switch)
    # The header dicts themselves: httpx's frames hold them as locals, which tracebacks render.
    assert "tok" not in repr(refresh.headers) and "pat" not in repr(switch.headers)


@pytest.mark.parametrize(
    ("status", "message", "error"),
    [
        (401, "There is no Koyeb account associated with this email address or your password is incorrect",
         InvalidCredentialsError),
        (400, "Invalid argument", InvalidCredentialsError),
        (404, "Cannot find user", InvalidCredentialsError),
        (401, "Token rejected", OrganizationDeactivatedError),
        (403, "Account is locked", AccountLockedError),
        (403, "Forbidden", AccessDeniedError),
        (500, "boom", APIError),
        (503, "Service is unavailable.", APIError),
    ],
)
def test_each_failure_maps_to_its_own_error_with_the_server_message(
    status: int, message: str, error: type[KoyebAuthError]
) -> None:
    failure = api.error_for(LOGIN, reply(status, {"status": status, "message": message}))
    assert type(failure) is error
    assert message in str(failure) and str(status) in str(failure)
    assert "hunter2" not in str(failure)


def test_rate_limit_honours_x_ratelimit_reset_then_retry_after() -> None:
    limited = api.error_for(LOGIN, reply(429, None, **{"x-ratelimit-reset": "42"}))
    assert isinstance(limited, RateLimitedError) and limited.retry_after == 42
    assert api.retry_after({"retry-after": "7"}) == 7
    assert api.retry_after({"retry-after": "Wed, 21 Oct 2015"}) == api.DEFAULT_RATE_LIMIT_WAIT


@pytest.mark.parametrize("body", [b"<html><body>Bad gateway</body></html>", b"\xff\xfe", b"[1, 2]"])
def test_a_non_koyeb_error_body_still_gives_a_clear_error(body: bytes) -> None:
    failure = api.error_for(LOGIN, reply(502, body))
    assert isinstance(failure, APIError) and failure.status == 502
    assert "502" in str(failure)


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"token": {}}', b"<html></html>", b'{"token": {"id": 1}}'])
def test_a_200_without_a_usable_token_is_an_api_error(body: bytes) -> None:
    with pytest.raises(APIError, match="unusable reply"):
        api.token_from(LOGIN, reply(200, body), sent=0, now=0)


def test_a_token_already_expired_on_arrival_is_refused() -> None:
    body = {"token": {"id": "t", "expires_at": "2000-01-01T00:00:00Z"}}
    with pytest.raises(APIError, match="clock"):
        api.token_from(LOGIN, reply(200, body), sent=2_000_000_000, now=2_000_000_000)


def test_logout_accepts_200_and_401_only() -> None:
    call = api.logout("https://x", "tok")
    api.check_logout(call, reply(200, {}))
    api.check_logout(call, reply(401, {"message": "Request unauthenticated with bearer"}))
    with pytest.raises(APIError):
        api.check_logout(call, reply(500, {}))
