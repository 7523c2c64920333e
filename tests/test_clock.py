"""No clock trusted: the API's clock hours off, a wall clock stepped back, absurd waits and expiries."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest
from freezegun import freeze_time

from koyeb_auth import APIError, KoyebAuth, RateLimitedError, _logs
from koyeb_auth import _session_api as api
from koyeb_auth._manager import Backoff
from koyeb_auth._token import format_timestamp
from koyeb_auth.testing import FakeKoyebAPI, Fault

HOUR = 3600.0
RATE_LIMITED = {"status": 429, "code": "rate_limit_error", "message": "Rate limit exceeded"}
LOGIN = api.login("https://app.koyeb.com", "a@b.c", "pw", None, None)
MIDNIGHT = 1767225600.0  # 2026-01-01T00:00:00Z, our clock in the unit tests


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The clock warnings are once per process: each test starts as a new process would."""
    monkeypatch.setattr(_logs, "_warned", set())


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


# --- the API's clock ---------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [2 * HOUR, -2 * HOUR], ids=["api-ahead-2h", "api-behind-2h"])
def test_an_api_clock_two_hours_off_costs_one_login_and_no_401(
    offset: float, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], caplog: pytest.LogCaptureFixture
) -> None:
    # Read in our clock, its 1-hour tokens expire in 3 hours (ahead: the API refuses them after
    # one, a 401 and a new login each time) or expired an hour ago (behind: every call an error).
    fake.clock_offset, fake.ttl = offset, HOUR
    auth = make_auth()
    with freeze_time(tick=True) as frozen, httpx.Client(auth=auth) as client, caplog.at_level(logging.WARNING):
        statuses = []
        for _ in range(20):  # over 92 minutes: the token falls due at 55, and the request at 58 refreshes it
            statuses.append(client.get(fake.url + "/v1/apps").status_code)
            frozen.tick(290)
    assert statuses == [200] * 20
    assert fake.stats == {"login": 1, "refresh": 1, "api": 20}  # no 401, no expired token sent
    side = "behind" if offset > 0 else "ahead of"
    assert _warnings(caplog) == [  # once, and without any token or fingerprint
        f"This machine's clock is 2.0 h {side} the Koyeb API's (its Date header): token expiries are "
        "converted to this machine's clock. Synchronise it (NTP) if you can."
    ]


@pytest.mark.parametrize("offset", [60.0, -60.0], ids=["api-ahead-1min", "api-behind-1min"])
def test_a_short_lived_token_is_refreshed_before_the_api_rejects_it(
    offset: float, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.clock_offset, fake.ttl = offset, 30.0
    auth = make_auth()
    with freeze_time(tick=True) as frozen, httpx.Client(auth=auth) as client:
        statuses = []
        for _ in range(90):  # a request a second for 90 s: three lifetimes
            statuses.append(client.get(fake.url + "/v1/apps").status_code)
            frozen.tick(1)
    assert statuses == [200] * 90
    stats = fake.stats
    assert stats.get("login") == 1 and stats.get("refresh", 0) >= 3
    assert "unauthorized" not in stats and "expired_sent" not in stats  # refreshed before the API refused it


def _reply(date: str | None, expires_at: str) -> api.Reply:
    headers = {"date": date} if date is not None else {}
    return api.Reply(200, headers, json.dumps({"token": {"id": "t", "expires_at": expires_at}}).encode())


@pytest.mark.parametrize(
    ("date", "expires_at", "lifetime"),
    [
        ("Thu, 01 Jan 2026 00:00:00 GMT", "2026-01-01T01:00:00Z", 3600),  # the same clock
        ("Thu, 01 Jan 2026 00:00:01 GMT", "2026-01-01T01:00:00Z", 3600),  # a second off: Date's resolution
        # Off by 2 h either way: the hour the API gives, less the second Date cannot resolve.
        ("Thu, 01 Jan 2026 02:00:00 GMT", "2026-01-01T03:00:00Z", 3599),
        ("Wed, 31 Dec 2025 22:00:00 GMT", "2025-12-31T23:00:00Z", 3599),
        ("Wed, 31 Dec 2025 00:00:01 GMT", "2025-12-31T01:00:01Z", 3599),  # 23:59:59 behind: still a clock
        (None, "2026-01-01T01:00:00Z", 3600),  # no Date: our clock
        ("the day after tomorrow", "2026-01-01T01:00:00Z", 3600),  # unparsable: our clock
        ("Fri, 31 Dec 9999 23:59:59 GMT", "2026-01-01T01:00:00Z", 3600),  # over a day away: a broken header
    ],
)
def test_the_remaining_lifetime_is_the_expiry_minus_the_api_date(
    date: str | None, expires_at: str, lifetime: float
) -> None:
    token = api.token_from(LOGIN, _reply(date, expires_at), sent=MIDNIGHT, now=MIDNIGHT)
    assert token.obtained_at == MIDNIGHT
    assert token.expires_at == pytest.approx(MIDNIGHT + lifetime, abs=0.01)  # in our clock


def test_a_broken_date_is_ignored_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            reply = _reply("Fri, 31 Dec 9999 23:59:59 GMT", "2026-01-01T01:00:00Z")
            api.token_from(LOGIN, reply, sent=MIDNIGHT, now=MIDNIGHT)
    assert _warnings(caplog) == ["Ignoring the Koyeb API's Date header, 2912443 days away from this machine's "
                                 "clock: using this machine's clock for token expiries"]


def test_a_token_expired_by_the_api_own_clock_does_not_blame_ours() -> None:
    reply = _reply("Thu, 01 Jan 2026 02:00:00 GMT", "2026-01-01T01:00:00Z")  # 2 h ahead, expired an hour ago
    with pytest.raises(APIError, match=r"already expired\. The API's own clock \(its Date header\) agrees"):
        api.token_from(LOGIN, reply, sent=MIDNIGHT, now=MIDNIGHT)


# --- waits: monotonic, capped, never nan -------------------------------------------------------------


def test_a_wall_clock_stepped_back_an_hour_does_not_stretch_a_backoff(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.fail("login", Fault(503))
    auth = make_auth()
    # freezegun moves time.monotonic() with the wall clock; the machine's monotonic clock does not
    # move when the wall clock is stepped, so it is left real.
    real_monotonic = time.monotonic
    with freeze_time(tick=True) as frozen, pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "monotonic", real_monotonic)
        with pytest.raises(APIError, match="503"):
            auth.get_token()
        frozen.tick(-HOUR)  # NTP, a resumed VM or a user steps the wall clock back
        time.sleep(1.05)  # the first backoff lasts at most 1 s
        assert auth.get_token()
    assert fake.stats == {"fault_login": 1, "login": 1}


def _api_date_in(fake: FakeKoyebAPI, seconds: float) -> str:
    return formatdate(fake.now() + seconds, usegmt=True)


@pytest.mark.parametrize(
    ("header", "value", "wait"),
    [
        ("x-ratelimit-reset", "1e9", HOUR),  # capped
        ("retry-after", "1e9", HOUR),
        ("x-ratelimit-reset", "inf", api.DEFAULT_RATE_LIMIT_WAIT),  # not a number of seconds: absent
        ("x-ratelimit-reset", "nan", api.DEFAULT_RATE_LIMIT_WAIT),
        ("retry-after", "-5", api.DEFAULT_RATE_LIMIT_WAIT),
        ("retry-after", "in 120 s", 120),  # an HTTP date 120 s after the reply's Date, in the API's clock
    ],
)
def test_a_wait_a_server_asks_for_is_capped_and_absurd_ones_are_absent(
    header: str, value: str, wait: float, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.clock_offset = 2 * HOUR  # an HTTP date counts from the API's Date, not from our clock
    auth = make_auth()
    with freeze_time(tick=True) as frozen:
        asked = _api_date_in(fake, 120) if value == "in 120 s" else value
        fake.fail("login", Fault(429, RATE_LIMITED, {header: asked}))
        for _ in range(3):
            with pytest.raises(RateLimitedError) as caught:
                auth.get_token()
            assert caught.value.retry_after == pytest.approx(wait, abs=1.5)
            message = str(caught.value)
            assert f"Try again in {caught.value.retry_after:.0f} s." in message
            assert "nan" not in message and "inf" not in message
        assert fake.stats == {"fault_login": 1}  # three calls, one request
        frozen.tick(wait + 2)
        assert auth.get_token()  # the wait is over, not decades later
    assert fake.stats == {"fault_login": 1, "login": 1}


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"x-ratelimit-reset": "42", "retry-after": "7"}, 42),
        ({"x-ratelimit-reset": "nan", "retry-after": "7"}, 7),  # an absurd one is absent: the next counts
        ({"retry-after": "3601"}, HOUR),
        ({"retry-after": "Infinity"}, api.DEFAULT_RATE_LIMIT_WAIT),
        ({"retry-after": "Thu, 01 Jan 2026 00:01:00 GMT", "date": "Thu, 01 Jan 2026 00:00:00 GMT"}, 60),
        ({"retry-after": "Thu, 01 Jan 2026 00:00:00 GMT", "date": "Thu, 01 Jan 2026 00:01:00 GMT"}, 0),  # past
        ({"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT", "date": "Thu, 01 Jan 2026 00:00:00 GMT"}, HOUR),
    ],
)
def test_retry_after_reads_delays_and_http_dates(headers: dict[str, str], wait: float) -> None:
    assert api.retry_after(headers) == wait


def test_a_backoff_after_a_thousand_failures_is_still_a_minute() -> None:
    backoff = Backoff(clock=lambda: 0.0)
    for _ in range(1100):  # 2 ** 1100 seconds would not even fit a float
        backoff.failed(APIError("down", 503))
    assert 30 <= backoff.not_before <= 60


# --- absurd expiries ---------------------------------------------------------------------------------


def _jwt_with_exp(exp: str) -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    claims = '{"exp": ' + exp + "}"  # written out: json.dumps cannot write 10**400 as an int, nor NaN bare
    return ".".join((part(b"{}"), part(claims.encode()), part(b"signature")))


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ({"id": _jwt_with_exp("1" + "0" * 400)}, "not a finite time"),  # 10**400
        ({"id": _jwt_with_exp("NaN")}, "not a finite time"),
        ({"id": _jwt_with_exp("Infinity")}, "not a finite time"),
        ({"id": "t", "expires_at": "9999-12-31T23:59:59Z"}, "7974 years away"),
        ({"id": "t", "expires_at": "2200-01-01T00:00:00Z"}, "174 years away"),
    ],
)
def test_an_absurd_expiry_is_a_clear_api_error_inside_the_backoff(
    token: dict[str, str], problem: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.fail("login", Fault(200, {"token": token}), times=10)
    auth = make_auth()
    with freeze_time("2026-01-01"):  # frozen: the five calls fall within the first backoff
        for _ in range(5):
            with pytest.raises(APIError, match=f"unusable reply: the token's expiry is {problem}"):
                auth.get_token()
    assert fake.stats == {"fault_login": 1}  # one login attempt: the others met the backoff


@pytest.mark.parametrize(("lifetime", "expired"), [(6.0, True), (HOUR, False)], ids=["6s-token", "1h-token"])
def test_a_reply_delayed_on_its_way_counts_the_lifetime_from_when_the_call_was_sent(
    lifetime: float, expired: bool, cache_path: Path
) -> None:
    # The API stamps Date and the expiry as it answers; the reply then spends 8 s on its way to us.
    # The lifetime it grants (expiry - Date) started no later than when we sent the call.
    with freeze_time("2026-01-01 00:00:00") as frozen:
        sent_at = time.time()

        def slow_api(request: httpx.Request) -> httpx.Response:
            now = time.time()
            body = {"token": {"id": "delayed-token", "expires_at": format_timestamp(now + lifetime)}}
            frozen.tick(8.0)
            return httpx.Response(200, json=body, headers={"Date": formatdate(now, usegmt=True)})

        auth = KoyebAuth("a@b.c", "pw", api_url="https://api.test", cache_path=cache_path,
                         transport=httpx.MockTransport(slow_api))
        if expired:  # 2 s ago: never sent
            with pytest.raises(APIError, match="already expired"):
                auth.get_token()
            assert auth.cached_token() is None
        else:
            assert auth.get_token() == "delayed-token"
            token = auth.cached_token()
            assert token is not None and token.expires_at is not None
            assert token.expires_at <= sent_at + lifetime  # not 7 s later, as counted from the reply's arrival
