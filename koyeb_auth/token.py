"""The token value, the rules that say when it must be renewed, and its wire and cache forms.

Pure: nothing here reads a clock, a file or the network. Times are POSIX seconds passed in by the
caller, so the rules can be tested with any clock.
"""

from __future__ import annotations

import enum
import functools
import json
import math
import re
from typing import Any, TypeGuard

# A warm `koyeb-auth token` loads this module to read the cache: what only API replies and log
# lines need (hashlib, base64, datetime) is imported where it is used, and Token is a plain class
# (the dataclasses module and the inspect module it loads would cost that command a tenth of its time).

__all__ = ["Token", "TokenState"]

# RFC 3339 as grpc-gateway writes it: `Z` or an offset, up to nanosecond fractions. Written out
# because `datetime.fromisoformat` rejects `Z` and 9 fractional digits before Python 3.11.
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):?(\d\d))"
)

# A token with less than this left may expire on its way to the API: it is not sent any more.
SEND_MARGIN = 1.0
# Seconds before expiry that a token falls due for refresh, unless the caller says otherwise.
DEFAULT_REFRESH_MARGIN = 300.0


class TokenState(enum.Enum):
    """What a token is good for now: the one question every caller asks."""

    FRESH = "fresh"  # send it; nothing to do
    DUE = "due"  # still valid, but inside its refresh window: send it, and renew it
    EXPIRED = "expired"  # never send it: wait for a new one


class Token:
    """A Koyeb session token with an absolute expiry, in this machine's clock. Immutable.

    `value` is the bearer secret; it is left out of `repr` so a token can be logged or shown in a
    traceback without leaking. `fingerprint` identifies it in logs.
    """

    value: str
    obtained_at: float
    expires_at: float | None
    user_id: str | None
    organization_id: str | None

    def __init__(self, value: str, obtained_at: float, expires_at: float | None = None, user_id: str | None = None,
                 organization_id: str | None = None) -> None:
        # Straight into __dict__, as a frozen dataclass does: assignment is refused below. (pickle
        # and copy restore __dict__ the same way.)
        self.__dict__.update(value=value, obtained_at=obtained_at, expires_at=expires_at, user_id=user_id,
                             organization_id=organization_id)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Token is immutable: cannot assign {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a Token is immutable: cannot delete {name!r}")

    def __repr__(self) -> str:
        return (f"Token(obtained_at={self.obtained_at!r}, expires_at={self.expires_at!r}, user_id={self.user_id!r}, "
                f"organization_id={self.organization_id!r})")

    def _fields(self) -> tuple[str, float, float | None, str | None, str | None]:
        return self.value, self.obtained_at, self.expires_at, self.user_id, self.organization_id

    def __eq__(self, other: object) -> bool:
        return self._fields() == other._fields() if isinstance(other, Token) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.value)

    @functools.cached_property
    def header(self) -> str:
        """The `Authorization` header value that carries this token (built once: the hot path reads it)."""
        return Redacted(f"Bearer {self.value}")

    def state(self, now: float, margin: float) -> TokenState:
        """FRESH, DUE (time left below `min(margin, lifetime / 2)`) or EXPIRED (under a second left)."""
        if now >= self.expires_at_latest:
            return TokenState.EXPIRED
        return TokenState.DUE if now >= self.due_at(margin) else TokenState.FRESH

    def usable(self, now: float) -> bool:
        """True while the token may still be sent (FRESH or DUE)."""
        return now < self.expires_at_latest

    @property
    def expires_at_latest(self) -> float:
        """The last moment the token is sent: a second before expiry (a tenth of the lifetime for
        tokens shorter than ten seconds), so it cannot expire on its way to the API."""
        if self.expires_at is None:
            return math.inf
        return self.expires_at - min(SEND_MARGIN, self._lifetime / 10)

    def due_at(self, margin: float) -> float:
        """When the refresh window opens: `min(margin, lifetime / 2)` before expiry.

        Half the lifetime at most, because a fixed margin longer than a short token's life would
        make every call a refresh (the botocore 15-minute-window bug).
        """
        if self.expires_at is None:
            return math.inf
        window = max(min(margin, self._lifetime / 2), min(SEND_MARGIN, self._lifetime / 10))
        return self.expires_at - window

    @property
    def _lifetime(self) -> float:
        return max(self.expires_at - self.obtained_at, 0.0) if self.expires_at is not None else math.inf


class Redacted(str):
    """A str whose repr hides it: a header value that stays secret in the header dicts, frame
    locals and tracebacks of every client it passes through, while sending as a plain str."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible name for a secret, for log lines."""
    import hashlib  # noqa: PLC0415 - see the imports

    return hashlib.sha256(secret.encode()).hexdigest()[:8]


# --- the API's replies ----------------------------------------------------------------------------


def parse_timestamp(text: str) -> float:
    """Parse an RFC 3339 timestamp into POSIX seconds; ValueError if it is not one."""
    from datetime import datetime, timedelta, timezone  # noqa: PLC0415 - see the imports

    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError("not an RFC 3339 timestamp")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, zulu, sign, off_hours, off_minutes = match.groups()[6:]
    offset = timedelta(0)
    if not zulu:
        offset = timedelta(hours=int(off_hours), minutes=int(off_minutes))
        offset = -offset if sign == "-" else offset
    moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    # Nanoseconds do not fit a datetime; add the fraction as a float instead.
    return moment.timestamp() + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def format_timestamp(timestamp: float) -> str:
    """POSIX seconds as RFC 3339 in UTC, to the second (`2026-05-01T12:00:00+00:00`)."""
    from datetime import datetime, timezone  # noqa: PLC0415 - see the imports

    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def jwt_expiry(value: str) -> float | None:
    """The `exp` claim of a JWT, read without verifying it (we only need a hint), or None."""
    import base64  # noqa: PLC0415 - see the imports
    import binascii  # noqa: PLC0415

    parts = value.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


def token_from_reply(body: object, now: float) -> Token:
    """Build a Token from a decoded `LoginReply`; ValueError says what is missing or malformed.

    Expiry comes from `expires_at`, else the `expires` key the spec's example uses, else the JWT
    `exp` claim (the console's own fallback).
    """
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, dict):
        raise ValueError("the reply has no `token` object")
    value = token.get("id")
    if not isinstance(value, str) or not usable_bearer(value):
        raise ValueError("the reply's `token.id` is missing or not a usable bearer token")
    stamp = token.get("expires_at") or token.get("expires")
    if stamp is None:
        expires_at = jwt_expiry(value)
    elif isinstance(stamp, str):
        expires_at = parse_timestamp(stamp)
    else:
        raise ValueError("the reply's `token.expires_at` is not a timestamp")
    return Token(
        value=value,
        obtained_at=now,
        expires_at=expires_at,
        user_id=_optional_str(token.get("user_id")),
        organization_id=_optional_str(token.get("organization_id")),
    )


def usable_bearer(value: str) -> bool:
    """True for a string that can go in an `Authorization: Bearer` header as is."""
    return bool(value) and value.isprintable() and " " not in value


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# --- the form a token takes in a shared store ------------------------------------------------------


def entry_from_token(token: Token) -> dict[str, Any]:
    return {
        "token": token.value,
        "obtained_at": token.obtained_at,
        "expires_at": token.expires_at,
        "user_id": token.user_id,
        "organization_id": token.organization_id,
    }


def token_from_entry(entry: object) -> Token | None:
    """The token a store entry holds, or None for anything that is not a well-formed entry."""
    if not isinstance(entry, dict):
        return None
    value, obtained, expires = entry.get("token"), entry.get("obtained_at"), entry.get("expires_at")
    if not isinstance(value, str) or not usable_bearer(value) or not _is_number(obtained):
        return None
    if expires is not None and not _is_number(expires):
        return None
    user, org = entry.get("user_id"), entry.get("organization_id")
    return Token(
        value=value,
        obtained_at=obtained,
        expires_at=expires,
        user_id=user if isinstance(user, str) else None,
        organization_id=org if isinstance(org, str) else None,
    )


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
