"""The token value and the rules that decide when it must be renewed.

Pure: nothing here reads a clock, a file or the network. Times are POSIX seconds passed in by the
caller, so the rules can be tested with any clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

# RFC 3339 as grpc-gateway writes it: `Z` or an offset, up to nanosecond fractions. Written out
# because `datetime.fromisoformat` rejects `Z` and 9 fractional digits before Python 3.11.
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):?(\d\d))"
)


SEND_MARGIN = 1.0


@dataclass(frozen=True)
class Token:
    """A Koyeb session token with an absolute expiry.

    `value` is the bearer secret; it is left out of `repr` so a token can be logged or shown in a
    traceback without leaking. `fingerprint` identifies it in logs.
    """

    value: str = field(repr=False)
    obtained_at: float
    expires_at: float | None = None
    user_id: str | None = None
    organization_id: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.value)

    def expired(self, now: float) -> bool:
        """True when the token must not be sent any more.

        A token with under a second left may expire on its way to the API, so it counts as expired
        already (a tenth of the lifetime for tokens shorter than ten seconds).
        """
        if self.expires_at is None:
            return False
        return now >= self.expires_at - min(SEND_MARGIN, self._lifetime / 10)

    @property
    def _lifetime(self) -> float:
        return max(self.expires_at - self.obtained_at, 0.0) if self.expires_at is not None else float("inf")

    def due(self, now: float, margin: float) -> bool:
        """True when the token should be renewed: expired, or inside its refresh window."""
        return now >= self.fresh_until(margin)

    def fresh_until(self, margin: float) -> float:
        """When the refresh window opens: `min(margin, lifetime / 2)` before expiry.

        Half the lifetime at most, because a fixed margin longer than a short token's life would
        make every call a refresh (the botocore 15-minute-window bug).
        """
        if self.expires_at is None:
            return float("inf")
        window = max(min(margin, self._lifetime / 2), min(SEND_MARGIN, self._lifetime / 10))
        return self.expires_at - window


def fingerprint(secret: str) -> str:
    """A short, stable, non-reversible name for a secret, for log lines."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8]


def parse_timestamp(text: str) -> float:
    """Parse an RFC 3339 timestamp into POSIX seconds; ValueError if it is not one."""
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


def jwt_expiry(value: str) -> float | None:
    """The `exp` claim of a JWT, read without verifying it (we only need a hint), or None."""
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
    if not isinstance(value, str) or not value or not value.isprintable() or " " in value:
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


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
