"""The Koyeb session endpoints: the requests, built with no I/O; what their replies mean; the API's clock.

Wire facts (Koyeb's OpenAPI document, and how its CLI and console call these endpoints): the
bearer goes in `Authorization: Bearer <id>`; login takes a JSON body and an optional `seon-fp`
header; refresh and logout take no body; the organization switch needs an empty JSON object; an
organization access token is asked for with its validity, and its reply holds no expiry.

A reply is the token it holds, or the error it stands for. Errors are branched on HTTP status, not
on the `code` string, which the API does not use consistently. Login, refresh, logout and the
organization switch are deprecated ("replaced by WorkOS and will be dropped soon"); a 404, 405 or
410 from one of them is told apart from a wrong API URL here.

Times in a reply are in the API's clock. Its `Date` says what time it is there, so the time a
token has left is the expiry minus `Date` (see `clock_skew`), whatever this machine's clock says.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlencode

from ._logs import warn_once
from ._origin import LOGIN_PATH
from ._secrets import Redacted
from ._token import Token, json_value, jwt_expiry, jwt_lifetime, token_from_reply, usable_bearer
from .errors import (
    AccessDeniedError,
    AccountLockedError,
    APIError,
    EndpointWithdrawnError,
    Hint,
    InvalidCredentialsError,
    KoyebAuthError,
    OrganizationDeactivatedError,
    RateLimitedError,
)

# --- the requests, built with no I/O --------------------------------------------------------------

Action = Literal["login", "refresh", "switch", "access_token", "logout", "check", "login_method"]


@dataclass(frozen=True)
class Call:
    """One request to a session endpoint. Headers and body hold secrets, so repr omits them."""

    action: Action
    method: str
    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: Mapping[str, str] | None = field(default=None, repr=False)
    validity: float | None = None  # an access token's: the seconds asked for, since its reply has no expiry


@dataclass(frozen=True)
class Reply:
    """What came back: status, lower-cased headers and the raw body (a token: never in a repr)."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


def login(api_url: str, email: str, password: str, organization_id: str | None, seon_fp: str | None) -> Call:
    body = {"email": email, "password": password}
    if organization_id:
        body["organization_id"] = organization_id
    # No Authorization header on login: the console never sends one there.
    headers = {"seon-fp": seon_fp} if seon_fp else {}
    return Call("login", "POST", api_url + LOGIN_PATH, headers, body)


def refresh(api_url: str, token: str) -> Call:
    return Call("refresh", "PUT", api_url + "/v1/account/refresh", bearer(token))


def switch(api_url: str, organization_id: str, token: str, seon_fp: str | None) -> Call:
    headers = dict(bearer(token), **({"seon-fp": seon_fp} if seon_fp else {}))
    # The endpoint requires a body; the CLI notes it must be an empty object.
    return Call("switch", "POST", f"{api_url}/v1/organizations/{organization_id}/switch", headers, {})


def access_token(api_url: str, organization_id: str, token: str, validity: float) -> Call:
    """A short-lived token scoped to the organization (not deprecated): at most 24 h, 1 h by default."""
    url = f"{api_url}/v1/organizations/{organization_id}/access_token"
    return Call("access_token", "POST", url, bearer(token), {"validity": duration(validity)}, validity)


def duration(seconds: float) -> str:
    """Seconds as a protobuf Duration in JSON: `3600s`, `1.5s` (nine decimals at most)."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def logout(api_url: str, token: str) -> Call:
    return Call("logout", "DELETE", api_url + "/v1/account/logout", bearer(token))


def check(api_url: str, token: str) -> Call:
    """The cheapest authenticated call that both user and organization tokens may make: one app.

    (Organization tokens cannot make calls that need a user, such as /v1/account/profile.)
    """
    return Call("check", "GET", api_url + "/v1/apps?limit=1", bearer(token))


def login_method(api_url: str, email: str) -> Call:
    """How an account signs in: asked once a password login is refused, to tell an account that
    signs in through WorkOS (it has no password to log in with) from a wrong password."""
    return Call("login_method", "GET", f"{api_url}/v1/account/login_method?{urlencode({'email': email})}", {})


def signs_in_through_workos(reply: Reply) -> bool:
    """True if a `login_method` reply says WORKOS (`LoginMethodReply`); anything else is no answer."""
    if reply.status != 200:
        return False
    try:
        answer = json_value(reply.body)
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("method") == "WORKOS"


def workos_account(email: str) -> InvalidCredentialsError:
    """The refusal of a password login for an account that signs in through WorkOS."""
    return InvalidCredentialsError(
        f"The password login of {email} was refused: this account signs in through WorkOS (the Koyeb console's "
        "sign-in page), so it has no password koyeb-auth can log in with.", Hint.PERSONAL_TOKEN)


def bearer(token: str) -> dict[str, str]:
    # Redacted: the header dict sits in the locals of every httpx frame that an error can come from.
    return {"Authorization": Redacted(f"Bearer {token}")}


# --- the API's clock and ours ---------------------------------------------------------------------

# `Date` names a whole second, stamped between our sending the call and reading its reply: a
# smaller difference from our clock at the sending is no skew.
CLOCK_NOISE = 2.0
# A `Date` further than this from our clock is a broken header, not a clock (a machine a day off
# could not even check the API's TLS certificate): our clock is used instead.
MAX_CLOCK_SKEW = 86400.0
# A skew worth a warning (once per process).
REPORTED_SKEW = 60.0


def clock_skew(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the API's clock runs ahead of ours (`now`; negative: behind), from the `Date` header.

    `now` is when the call was sent: `Date` is later than that in any clock, so a reply slow on its
    way makes the API seem ahead, and its tokens shorter, never longer.

    None when `Date` is missing, unparsable or more than MAX_CLOCK_SKEW (a day) from our clock:
    our clock is used then. 0 within CLOCK_NOISE. Otherwise the API's time is taken at the end of
    the second `Date` names, so that a token never seems to live longer than it does. A skew over
    a minute is logged once per process.
    """
    api_now = http_date(headers.get("date"))
    if api_now is None:
        return None
    skew = api_now - now
    if abs(skew) > MAX_CLOCK_SKEW:
        warn_once("date", "Ignoring the Koyeb API's Date header, %s away from this machine's clock: using "
                   "this machine's clock for token expiries", _span(skew))
        return None
    if abs(skew) <= CLOCK_NOISE:
        return 0.0
    if abs(skew) > REPORTED_SKEW:
        warn_once("skew", "This machine's clock is %s %s the Koyeb API's (its Date header): token expiries are "
                   "converted to this machine's clock. Synchronise it (NTP) if you can.",
                   _span(skew), "behind" if skew > 0 else "ahead of")
    return skew + 1.0


def http_date(value: str | None) -> float | None:
    """POSIX seconds of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), or None."""
    if value is None:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):  # TypeError before Python 3.11
        return None
    return moment.replace(tzinfo=moment.tzinfo or timezone.utc).timestamp()  # HTTP dates are GMT


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


# --- what a reply means: a token, or an error -----------------------------------------------------

# The message the API sends with a 401 when the organization is deactivated: renewing the token
# cannot help, so it is never retried (the console makes the same check).
TOKEN_REJECTED = "Token rejected"
# Without a usable x-ratelimit-reset or Retry-After, wait this long after a 429 (the API's window
# is about a minute).
DEFAULT_RATE_LIMIT_WAIT = 30.0
# The longest a server can keep us away: a finite ask beyond it is capped (the server did ask for
# a long wait, and an hour is plenty); one that is not a number of seconds (nan, inf, negative) is
# treated as absent.
MAX_RETRY_AFTER = 3600.0
_MAX_MESSAGE = 300
# What a gateway answers for a route it no longer has (or a method it no longer takes).
GONE = frozenset({404, 405, 410})
# The console's messages for a wrong email or password, some of them with a 404: not a withdrawn login.
CREDENTIALS_REFUSED = frozenset({
    "There is no Koyeb account associated with this email address or your password is incorrect",
    "Cannot find user",
})
# What a 404, 405 or 410 from each endpoint means, and the way out.
WITHDRAWN = {
    "login": "Koyeb may have withdrawn the email-and-password login (it is deprecated: the console signs in "
             "through WorkOS). Use a personal access token instead: create one in the Koyeb console and set "
             "KOYEB_TOKEN (or pass token=), with KOYEB_ORGANIZATION for an organization.",
    "refresh": "Koyeb may have withdrawn the refresh (it is deprecated): koyeb-auth logs in again instead, once "
               "per token lifetime.",
    "switch": "Koyeb may have withdrawn the organization switch (it is deprecated), or the organization id is "
              "wrong. POST /v1/organizations/{id}/access_token replaces the switch: koyeb-auth falls back to it "
              "with organization_token='auto' (the default), and goes there first with 'access_token'.",
    "access_token": "Koyeb may have withdrawn the organization access token. Use an organization token created "
                    "in the Koyeb console as KOYEB_TOKEN, without KOYEB_ORGANIZATION.",
    "logout": "Koyeb may have withdrawn logout (it is deprecated): the token was dropped from the cache, and "
              "stays valid on the API until it expires.",
}
# The deprecated endpoints koyeb-auth can do without (a login instead of a refresh, the access token
# instead of the switch, nothing instead of a logout). A Koyeb 404, 405 or 410 from one of them is
# taken as withdrawn whatever its message: going around it costs nothing.
AVOIDABLE = frozenset({"refresh", "switch", "logout"})


def token_from(call: Call, reply: Reply, sent: float, now: float) -> Token:
    """The token any session call returned, or the error its reply stands for.

    `sent` is when the call went out and `now` when its reply was read, in our clock. The reply's
    expiry is in the API's clock: the token's remaining lifetime is that expiry minus the reply's
    `Date` (see `clock_skew`), and its expiry is held in our clock (`sent` plus that lifetime), so
    every process of this machine agrees on it. Counted from `sent`, not `now`: the API stamped
    `Date` before the reply's transit, however long that took, so the token lives no longer than
    said. An absurd expiry is an APIError.
    """
    if call.action == "access_token":
        return access_token_from(call, reply, sent)
    if reply.status != 200:
        raise error_for(call, reply)
    skew = clock_skew(reply.headers, sent)
    try:
        token = token_from_reply(json_value(reply.body), now, skew or 0.0)
    except ValueError as exc:  # JSONDecodeError is a ValueError too
        # Only the message: a JSONDecodeError holds the whole reply, which may hold a token.
        problem = str(exc) if not isinstance(exc, json.JSONDecodeError) else "it is not JSON"
    else:
        problem = ""
    if problem:  # raised outside the handler, so the exception has no context to leak from
        raise APIError(f"{_what(call)} returned an unusable reply: {problem}. Is the API URL right?", 200)
    if not token.usable(now):
        why = ("Check this machine's clock." if skew is None
               else "The API's own clock (its Date header) agrees: try again later.")
        raise APIError(f"{_what(call)} returned a token that has already expired. {why}", 200)
    return token


def access_token_from(call: Call, reply: Reply, sent: float) -> Token:
    """The token of a `CreateAccessTokenReply` (`{"token": "..."}`), or the error the reply stands for."""
    if reply.status != 200:
        raise error_for(call, reply)
    try:
        decoded = json_value(reply.body)
    except ValueError:  # only noted: the error holds the reply, which may hold a token
        decoded = None
    value = decoded.get("token") if isinstance(decoded, dict) else None
    if not isinstance(value, str) or not usable_bearer(value):
        raise APIError(f"{_what(call)} returned an unusable reply: no `token` string. Is the API URL right?", 200)
    # No expiry in the reply: the token lives what was asked, counted from when it was asked (the
    # API made it later), or less if its JWT says so: exp - iat, both in the API's clock, so a
    # skewed local clock changes nothing; without iat, exp brought to our clock through `Date`.
    assert call.validity is not None
    claimed = jwt_lifetime(value)
    if claimed is None and (expiry := jwt_expiry(value)) is not None:
        claimed = expiry - (clock_skew(reply.headers, sent) or 0.0) - sent
    lifetime = min(call.validity, claimed if claimed is not None else math.inf)
    if not lifetime > 0:
        raise APIError(f"{_what(call)} returned a token that has already expired. Check this machine's clock.", 200)
    return Token(value, obtained_at=sent, expires_at=sent + lifetime)


def check_logout(call: Call, reply: Reply) -> None:
    # 401: the session is already gone, which is what logout wants.
    if reply.status not in (200, 401):
        raise error_for(call, reply)


def rejection_message(body: bytes) -> str | None:
    """The `message` of a JSON error body, or None."""
    message = _error_body(body).get("message")
    return message if isinstance(message, str) else None


def from_koyeb(body: bytes) -> bool:
    """True for an error body the Koyeb API (or its gateway) writes: JSON with a `code` or a `message`.

    `Error` and `ErrorWithFields` have a string `code`, `google.rpc.Status` an integer one; an HTML
    page or a bare JSON value is some other server's answer.
    """
    decoded = _error_body(body)
    return isinstance(decoded.get("message"), str) or isinstance(decoded.get("code"), (str, int))


def _error_body(body: bytes) -> dict[str, object]:
    try:
        decoded = json_value(body)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


def renewal_may_help(body: bytes) -> bool:
    """False for a 401 that says `Token rejected`: a deactivated organization, which no new token fixes."""
    return rejection_message(body) != TOKEN_REJECTED


def error_for(call: Call, reply: Reply) -> KoyebAuthError:
    """The KoyebAuthError subclass for a failed session call."""
    message = rejection_message(reply.body)
    said = f": {_unsaid(message, call)[:_MAX_MESSAGE]!r}" if message else ""
    gone = _gone(call, reply, said) if reply.status in GONE else None
    return gone or _refusal(call, reply, message, said)


def _unsaid(message: str, call: Call) -> str:
    """The server's message without the secrets the call sent, should a server echo them."""
    secrets = [(call.body or {}).get("password", ""), call.headers.get("Authorization", "").removeprefix("Bearer ")]
    for secret in filter(None, secrets):
        message = message.replace(secret, "<redacted>")
    return message


def _refusal(call: Call, reply: Reply, message: str | None, said: str) -> KoyebAuthError:
    status, what = reply.status, _what(call)
    if status == 429:
        wait = retry_after(reply.headers)
        return RateLimitedError(f"{what} was rate limited (HTTP 429){said}. Try again in {wait:.0f} s.", wait)
    if status == 401 and message == TOKEN_REJECTED:
        return OrganizationDeactivatedError(
            f"{what} was refused (HTTP 401){said}: the organization is deactivated. Reactivate it in the "
            "Koyeb console or use another organization."
        )
    if status == 403 and message and "locked" in message.lower():
        return AccountLockedError(f"{what} was refused (HTTP 403){said}. Unlock the account in the Koyeb console.")
    if status == 403:
        return AccessDeniedError(
            f"{what} was refused (HTTP 403){said}. Accounts that sign in through the Koyeb console cannot "
            "use password login: create a personal access token and set KOYEB_TOKEN."
        )
    if status in (400, 401, 404):
        return InvalidCredentialsError(f"{what} was refused (HTTP {status}){said}. {_hint(call)}")
    if not message and reply.body.lstrip()[:1] not in (b"{", b""):
        said = " with a body that is not a Koyeb API reply"
    return APIError(f"{what} failed (HTTP {status}){said}. Try again later; check the API URL if it persists.", status)


def _gone(call: Call, reply: Reply, said: str) -> KoyebAuthError | None:
    """A 404, 405 or 410: a withdrawn endpoint, a wrong API URL, or None for a 404 about what was
    asked for (an unknown account or organization), which the credential errors describe."""
    status, what = reply.status, _what(call)
    # Only Koyeb's gateway withdraws an endpoint: another server's 404 (a load balancer's page, say)
    # may be passing, and must not make the fleet give up an endpoint for good.
    if not from_koyeb(reply.body):
        return APIError(f"{what} answered HTTP {status} with a body that is not a Koyeb API reply: the API URL "
                        "(KOYEB_URL or api_url=) may be wrong.", status)
    if call.action not in AVOIDABLE and status == 404 and (
        call.action != "login" or rejection_message(reply.body) in CREDENTIALS_REFUSED
    ):
        return None
    return EndpointWithdrawnError(f"{what} answered HTTP {status}{said}. {WITHDRAWN[call.action]}", call.action, status)


def retry_after(headers: Mapping[str, str]) -> float:
    """Seconds to wait after a 429, at most MAX_RETRY_AFTER (an hour).

    `x-ratelimit-reset` (Koyeb's) is a delay in seconds; else `Retry-After`, a delay or an HTTP
    date, counted from the reply's `Date` (the API's clock), else from ours. A value that is not
    a number of seconds (nan, inf, negative, garbage) is absent; a longer one is capped. Nothing
    usable: DEFAULT_RATE_LIMIT_WAIT.
    """
    for name in ("x-ratelimit-reset", "retry-after"):
        wait = _wait(headers, name)
        if wait is not None:
            return min(wait, MAX_RETRY_AFTER)
    return DEFAULT_RATE_LIMIT_WAIT


def _wait(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        moment = http_date(value) if name == "retry-after" else None
        if moment is None:
            return None
        now = http_date(headers.get("date"))
        seconds = max(moment - (time.time() if now is None else now), 0.0)  # a date past: now
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _what(call: Call) -> str:
    return f"Koyeb {call.action} ({call.method} {call.url})"


def _hint(call: Call) -> str:
    if call.action == "login":
        return "Check the email and password (KOYEB_EMAIL, KOYEB_PASSWORD)."
    if call.action in ("switch", "access_token"):
        return "Check the personal access token (KOYEB_TOKEN) and the organization id (KOYEB_ORGANIZATION)."
    return "The session is no longer valid; log in again."
