"""The Koyeb session endpoints: request builders and reply parsing, with no I/O.

Wire facts (Koyeb's OpenAPI document, and how its CLI and console call these endpoints): the
bearer goes in `Authorization: Bearer <id>`; login takes a JSON body and an optional `seon-fp`
header; refresh and logout take no body; the organization switch needs an empty JSON object.
Errors are branched on HTTP status, not on the `code` string, which the API does not use
consistently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .errors import (
    AccessDeniedError,
    AccountLockedError,
    APIError,
    InvalidCredentialsError,
    KoyebAuthError,
    OrganizationDeactivatedError,
    RateLimitedError,
)
from .origin import LOGIN_PATH
from .token import Token, token_from_reply

Action = Literal["login", "refresh", "switch", "logout", "check"]

# The message the API sends with a 401 when the organization is deactivated: renewing the token
# cannot help, so it is never retried (the console makes the same check).
TOKEN_REJECTED = "Token rejected"
# Without x-ratelimit-reset, wait this long after a 429 (the API's window is about a minute).
DEFAULT_RATE_LIMIT_WAIT = 30.0
_MAX_MESSAGE = 300


@dataclass(frozen=True)
class Call:
    """One request to a session endpoint. Headers and body hold secrets, so repr omits them."""

    action: Action
    method: str
    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: Mapping[str, str] | None = field(default=None, repr=False)


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


def logout(api_url: str, token: str) -> Call:
    return Call("logout", "DELETE", api_url + "/v1/account/logout", bearer(token))


def check(api_url: str, token: str) -> Call:
    """The cheapest authenticated call that both user and organization tokens may make: one app.

    (Organization tokens cannot make calls that need a user, such as /v1/account/profile.)
    """
    return Call("check", "GET", api_url + "/v1/apps?limit=1", bearer(token))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_from(call: Call, reply: Reply, now: float) -> Token:
    """The token in a login, refresh or switch reply, or the error the reply stands for."""
    if reply.status != 200:
        raise error_for(call, reply)
    try:
        token = token_from_reply(json.loads(reply.body), now)
    except ValueError as exc:  # JSONDecodeError is a ValueError too
        # Only the message: a JSONDecodeError holds the whole reply, which may hold a token.
        problem = str(exc) if not isinstance(exc, json.JSONDecodeError) else "it is not JSON"
    else:
        problem = ""
    if problem:  # raised outside the handler, so the exception has no context to leak from
        raise APIError(f"{_what(call)} returned an unusable reply: {problem}. Is the API URL right?", 200)
    if not token.usable(now):
        raise APIError(
            f"{_what(call)} returned a token that has already expired. Check this machine's clock.", 200
        )
    return token


def check_logout(call: Call, reply: Reply) -> None:
    # 401: the session is already gone, which is what logout wants.
    if reply.status not in (200, 401):
        raise error_for(call, reply)


def rejection_message(body: bytes) -> str | None:
    """The `message` of a JSON error body, or None."""
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    message = decoded.get("message") if isinstance(decoded, dict) else None
    return message if isinstance(message, str) else None


def renewal_may_help(body: bytes) -> bool:
    """False for a 401 that says `Token rejected`: a deactivated organization, which no new token fixes."""
    return rejection_message(body) != TOKEN_REJECTED


def error_for(call: Call, reply: Reply) -> KoyebAuthError:
    """The KoyebAuthError subclass for a failed session call."""
    status, what = reply.status, _what(call)
    message = rejection_message(reply.body)
    said = f": {message[:_MAX_MESSAGE]!r}" if message else ""
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


def retry_after(headers: Mapping[str, str]) -> float:
    """Seconds to wait after a 429: `x-ratelimit-reset` is a delta in seconds; else Retry-After."""
    for name in ("x-ratelimit-reset", "retry-after"):
        try:
            return max(float(headers[name]), 0.0)
        except (KeyError, ValueError):
            continue
    return DEFAULT_RATE_LIMIT_WAIT


def _what(call: Call) -> str:
    return f"Koyeb {call.action} ({call.method} {call.url})"


def _hint(call: Call) -> str:
    if call.action == "login":
        return "Check the email and password (KOYEB_EMAIL, KOYEB_PASSWORD)."
    if call.action == "switch":
        return "Check the personal access token (KOYEB_TOKEN) and the organization id (KOYEB_ORGANIZATION)."
    return "The session is no longer valid; log in again."
