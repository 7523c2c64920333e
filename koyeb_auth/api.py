"""The Koyeb session endpoints: the requests, built with no I/O (their replies: `replies`).

Wire facts (Koyeb's OpenAPI document, and how its CLI and console call these endpoints): the
bearer goes in `Authorization: Bearer <id>`; login takes a JSON body and an optional `seon-fp`
header; refresh and logout take no body; the organization switch needs an empty JSON object; an
organization access token is asked for with its validity, and its reply holds no expiry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .origin import LOGIN_PATH
from .token import Redacted

Action = Literal["login", "refresh", "switch", "access_token", "logout", "check"]

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


def bearer(token: str) -> dict[str, str]:
    # Redacted: the header dict sits in the locals of every httpx frame that an error can come from.
    return {"Authorization": Redacted(f"Bearer {token}")}


