"""`koyeb-auth status`: whose session, until when, and whether the API still accepts its token.

The cache says whether there is a token; only the API says whether it is still good (a personal
token may be revoked, or mistyped; a session may have been logged out elsewhere). So, unless told
`--offline`, status makes one cheap authenticated call (`api.check`), and says why a token is not
usable when it is not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .. import _session_api as api
from .._token import Token, format_timestamp
from ..cli import _state as state
from ..errors import KoyebAuthError
from ._account import Account

__all__ = ["EXIT_NO_TOKEN", "FIELDS", "profile_line", "report", "unconfigured"]

# Exit codes of `status`: beyond these, 5 (rate limited) and 6 (the API could not say).
EXIT_NO_TOKEN = 1
_EXIT_RATE_LIMITED, _EXIT_UNANSWERED = 5, 6
FIELDS = ("logged_in", "problem", "checked_with_api", "api_url", "email", "user_id", "organization_id", "expires_at",
          "expires_in_seconds", "credentials_from", "kind", "cache", "profile", "profiles")


def report(account: Account, online: bool, explain: Callable[[KoyebAuthError], str]) -> tuple[dict[str, Any], int]:
    """The status fields, and the exit code: 0 for a token the API accepts (or, offline, a cached one).

    `explain` words an error that kept the API from being asked.
    """
    token = account.cached()
    problem: str | None
    if token is None:
        problem, code = _why_none(account), EXIT_NO_TOKEN
    elif online:
        problem, code = _check(account, token, explain)
    else:
        problem, code = None, 0
    now = time.time()
    expires_at = token.expires_at if token is not None else None
    # A token the API could not give its verdict on (unreachable, failing, rate limiting) is still
    # the session: neither checked nor refused.
    unanswered = code in (_EXIT_RATE_LIMITED, _EXIT_UNANSWERED)
    fields = {
        "logged_in": token is not None and (code == 0 or unanswered),
        "problem": problem,
        "checked_with_api": online and token is not None and not unanswered,
        "api_url": account.api_url,
        "email": account.email,
        "user_id": token.user_id if token else None,
        "organization_id": (token.organization_id if token else None) or account.organization_id,
        "expires_at": format_timestamp(expires_at) if expires_at else None,
        "expires_in_seconds": round(expires_at - now) if expires_at else None,
        "credentials_from": account.found_in,
        "kind": account.kind,
        "cache": repr(account.store),
        **_profiles(account),
    }
    return fields, code


def unconfigured(problem: str) -> dict[str, Any]:
    """The status fields when no credentials are found: every field, so that scripts read one shape."""
    return {**dict.fromkeys(FIELDS), "logged_in": False, "problem": problem, "checked_with_api": False}


def _profiles(account: Account) -> dict[str, Any]:
    """The profile in use (None if the credentials came from elsewhere), and every profile logged in."""
    logins = state.profiles(account.cache_file)
    return {"profile": account.profile,
            "profiles": [{"name": login.profile, "kind": login.kind, "api_url": login.api_url, "email": login.email,
                          "organization_id": login.organization_id} for login in logins]}


def profile_line(profile: dict[str, Any]) -> str:
    """A profile of `profiles`, in a line of the text report."""
    details = [profile["kind"], profile["email"] or profile["api_url"], profile["organization_id"]]
    return f"{profile['name']} ({', '.join(d for d in details if d)})"


def _why_none(account: Account) -> str:
    source, email = account.source, account.email
    if isinstance(source, state.LastLogin):
        return "the session of the last `koyeb-auth login` has ended (expired or logged out): log in again"
    if email and not getattr(source, "password", None):
        return f"no password for {email}: set KOYEB_PASSWORD, or log in with `koyeb-auth login`"
    # A cached session carries a slow hash of the password that opened it: another password's
    # session tells a wrong password apart, without a login attempt.
    if email and account.foreign_session():
        return f"wrong password: not the one that opened the session cached for {email}"
    return "no session is cached for these credentials (none opened yet, logged out, or expired)"


def _check(account: Account, token: Token, explain: Callable[[KoyebAuthError], str]) -> tuple[str | None, int]:
    from .._transport import Network, SessionClient  # noqa: PLC0415 - httpx, for this call only

    call = api.check(account.api_url, token.value)
    try:
        reply = SessionClient(Network(), account.options.timeout).send(call)
    except KoyebAuthError as exc:
        # The token may be good, but nothing can say so now.
        return f"the API could not be asked: {explain(exc)}", _EXIT_UNANSWERED
    return _verdict(account, reply.status, reply.headers, reply.body)


def _verdict(account: Account, status: int, headers: Mapping[str, str], body: bytes) -> tuple[str | None, int]:
    if status < 300 or status == 403:  # a 403: the token authenticates, it may just not list apps
        return None, 0
    if status == 401:
        if api.rejection_message(body) == api.TOKEN_REJECTED:
            return "the API refused the token: the organization is deactivated", EXIT_NO_TOKEN
        if account.source is None:
            return ("the API refused the personal access token (HTTP 401): it is revoked, expired or mistyped; "
                    "create one in the Koyeb console (Settings, API)"), EXIT_NO_TOKEN
        return ("the API refused the cached token (HTTP 401): the session was revoked or logged out "
                "elsewhere; run `koyeb-auth login`"), EXIT_NO_TOKEN
    if status == 429:
        return f"the API is rate limiting: try again in {api.retry_after(headers):.0f} s", _EXIT_RATE_LIMITED
    return f"the API could not say (HTTP {status}); check the API URL if it persists", _EXIT_UNANSWERED
