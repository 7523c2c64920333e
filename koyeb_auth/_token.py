"""The token value, the rules that say when it must be renewed, and its wire and cache forms.

Pure: nothing here reads a clock, a file or the network. Times are POSIX seconds passed in by the
caller, so the rules can be tested with any clock.
"""

from __future__ import annotations

import enum
import json
import math
import re
from typing import Any, TypeGuard

from ._secrets import Redacted

# A warm `koyeb-auth token` loads this module to read the cache: what only API replies and log
# lines need (hashlib, base64, datetime) is imported where it is used.

__all__ = ["Token", "TokenState"]

# RFC 3339 as grpc-gateway writes it: `Z` or an offset, up to nanosecond fractions. Written out
# because `datetime.fromisoformat` rejects `Z` and 9 fractional digits before Python 3.11.
_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):?(\d\d))"
)

# A token with less than this left may expire on its way to the API: it is not sent any more.
SEND_MARGIN = 1.0
# A session lives hours or days. An expiry further away than this is a broken reply or a
# placeholder for "never" (year 9999), not a session: it is refused, like a non-finite one.
_YEAR = 365.25 * 86400.0
MAX_LIFETIME = 10 * _YEAR
# Koyeb's tokens are a few hundred characters; many servers refuse headers over 8 KiB.
MAX_TOKEN_CHARS = 8192
# Seconds before expiry that a token falls due for refresh, unless the caller says otherwise.
DEFAULT_REFRESH_MARGIN = 300.0
# A password hash as `_sources` writes it (32 bytes of scrypt, in lower-case hex). Anything else
# read from a store is no hash: a non-ASCII one would make hmac.compare_digest raise TypeError.
_PASSWORD_HASH = re.compile(r"[0-9a-f]{64}")


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

    # Written out rather than a frozen dataclass: a warm `koyeb-auth token` reads a Token and loads
    # no dataclasses module (nor the inspect and ast modules it loads).
    __slots__ = ("__weakref__", "expires_at", "expires_at_latest", "header", "obtained_at", "organization_id",
                 "password_hash", "user_id", "value", "withdrawn")

    value: str
    obtained_at: float
    expires_at: float | None
    user_id: str | None
    organization_id: str | None
    # The session endpoints that answered 404/405/410 before this token was obtained, so that its
    # renewal skips them: kept in the store, every process that adopts the token learns it too.
    withdrawn: frozenset[str]
    # A password session's salted scrypt hash of the password that opened it: only that password may
    # adopt it from a shared store (see `_sources`). Kept when the session is refreshed.
    password_hash: str | None
    # The `Authorization` header value that carries this token (built once: the hot path reads it).
    header: str
    # The last moment the token is sent: a second before expiry (a tenth of the lifetime for tokens
    # shorter than ten seconds), so it cannot expire on its way to the API. Computed once, here.
    expires_at_latest: float

    # The dataclass's signature, kept: every field may be given by position.
    def __init__(self, value: str, obtained_at: float, expires_at: float | None = None,  # noqa: PLR0917
                 user_id: str | None = None, organization_id: str | None = None,
                 withdrawn: frozenset[str] = frozenset(), password_hash: str | None = None) -> None:
        """A token obtained at `obtained_at` (`time.time()`), valid until `expires_at` (None: no known expiry).

        `user_id` and `organization_id` are whom the API issued it to, when it said; `withdrawn`
        the session endpoints known to be gone when it was obtained; `password_hash` that of the
        password that opened it.
        """
        latest = math.inf
        if expires_at is not None:
            latest = expires_at - min(SEND_MARGIN, max(expires_at - obtained_at, 0.0) / 10)
        fields = {"value": value, "obtained_at": obtained_at, "expires_at": expires_at, "user_id": user_id,
                  "organization_id": organization_id, "withdrawn": withdrawn,
                  "password_hash": password_hash, "header": Redacted(f"Bearer {value}"),
                  "expires_at_latest": latest}
        for name, field_value in fields.items():
            object.__setattr__(self, name, field_value)  # past our own __setattr__, which refuses

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Token is immutable: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Token is immutable: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        # As a dataclass's: equal fields in another class (a subclass too) are not an equal token.
        if isinstance(other, Token) and other.__class__ is self.__class__:
            return self._fields() == other._fields()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (f"Token(obtained_at={self.obtained_at!r}, expires_at={self.expires_at!r}, "
                f"user_id={self.user_id!r}, organization_id={self.organization_id!r})")

    def __reduce__(self) -> tuple[type[Token], tuple[Any, ...]]:
        return self.__class__, self._fields()

    def _fields(self) -> tuple[Any, ...]:
        return (self.value, self.obtained_at, self.expires_at, self.user_id, self.organization_id, self.withdrawn,
                self.password_hash)

    def replace(self, *, withdrawn: frozenset[str] | None = None, password_hash: str | None = None) -> Token:
        """This token, remembering that `withdrawn` endpoints are gone, or which `password_hash` opened it."""
        return self.__class__(self.value, self.obtained_at, self.expires_at, self.user_id, self.organization_id,
                              self.withdrawn if withdrawn is None else withdrawn,
                              self.password_hash if password_hash is None else password_hash)

    @property
    def fingerprint(self) -> str:
        """A short, stable, non-reversible name for the token, for logs and events."""
        return fingerprint(self.value)

    def state(self, now: float, margin: float) -> TokenState:
        """FRESH, DUE (time left below `min(margin, lifetime / 2)`) or EXPIRED (under a second left)."""
        if now >= self.expires_at_latest:
            return TokenState.EXPIRED
        return TokenState.DUE if now >= self.due_at(margin) else TokenState.FRESH

    def usable(self, now: float) -> bool:
        """True while the token may still be sent (FRESH or DUE)."""
        return now < self.expires_at_latest

    def due_at(self, margin: float) -> float:
        """When the refresh window opens: `min(margin, lifetime / 2)` before expiry.

        Half the lifetime at most, because a fixed margin longer than a short token's life would
        make every call a refresh (the botocore 15-minute-window bug).
        """
        if self.expires_at is None:
            return math.inf
        lifetime = max(self.expires_at - self.obtained_at, 0.0)
        return self.expires_at - max(min(margin, lifetime / 2), min(SEND_MARGIN, lifetime / 10))


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
    year, month, day, hour, minute, second = map(int, match.groups()[:6])
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
    return _jwt_claim(value, "exp")


def jwt_lifetime(value: str) -> float | None:
    """`exp - iat` of a JWT: how long the API made it valid, whatever the clocks; None without both."""
    expires, issued = _jwt_claim(value, "exp"), _jwt_claim(value, "iat")
    return expires - issued if expires is not None and issued is not None else None


def json_value(data: str | bytes) -> object:
    """The JSON value `data` holds; ValueError if it holds none, or nests deeper than the parser can
    go (json raises RecursionError then: not a ValueError, so callers expecting one would crash)."""
    try:
        return json.loads(data)
    except RecursionError:
        pass  # raised outside the handler: nothing of the data is kept in a context
    raise ValueError("it is nested too deeply to be JSON this library reads")


def _jwt_claim(value: str, name: str) -> float | None:
    import base64  # noqa: PLC0415 - see the imports
    import binascii  # noqa: PLC0415

    parts = value.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json_value(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return None
    claim = claims.get(name) if isinstance(claims, dict) else None
    if not isinstance(claim, (int, float)) or isinstance(claim, bool):
        return None
    try:
        return float(claim)
    except OverflowError:  # an integer beyond any float (10**400): infinitely far, hence refused
        return math.inf


def token_from_reply(body: object, now: float, skew: float = 0.0) -> Token:
    """Build a Token from a decoded `LoginReply`; ValueError says what is missing or malformed.

    Expiry comes from `expires_at`, else the `expires` key the spec's example uses, else the JWT
    `exp` claim (the console's own fallback). It is in the API's clock, which runs `skew` seconds
    ahead of ours (`now`); the Token holds it in ours. An absurd expiry, one that is not a finite
    time or is more than MAX_LIFETIME (ten years) after `now`, is a ValueError.
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
    if expires_at is not None:
        expires_at -= skew  # into our clock
        if not math.isfinite(expires_at):
            raise ValueError("the token's expiry is not a finite time")
        if expires_at - now > MAX_LIFETIME:
            years = (expires_at - now) / _YEAR
            raise ValueError(f"the token's expiry is {years:.0f} years away, and no session lasts 10")
    user, org = token.get("user_id"), token.get("organization_id")
    return Token(
        value=value,
        obtained_at=now,
        expires_at=expires_at,
        user_id=user if isinstance(user, str) and user else None,
        organization_id=org if isinstance(org, str) and org else None,
    )


def usable_bearer(value: str) -> bool:
    """True for a string that can go in an `Authorization: Bearer` header as is: printable ASCII,
    no space, and not too long to be a token (from the API, or from a shared store that someone
    else can write). Anything else makes the HTTP client raise an error that quotes the header."""
    return 0 < len(value) <= MAX_TOKEN_CHARS and value.isascii() and value.isprintable() and " " not in value


# --- the form a token takes in a shared store ------------------------------------------------------


def entry_from_token(token: Token) -> dict[str, Any]:
    entry = {
        "token": token.value,
        "obtained_at": token.obtained_at,
        "expires_at": token.expires_at,
        "user_id": token.user_id,
        "organization_id": token.organization_id,
    }
    # Only when there is something to say, so an entry is what earlier versions wrote (and read:
    # they ignore keys they do not know) until Koyeb withdraws an endpoint.
    if token.password_hash is not None:
        entry["password_hash"] = token.password_hash
    return {**entry, "withdrawn": sorted(token.withdrawn)} if token.withdrawn else entry


def token_from_entry(entry: object) -> Token | None:
    """The token a store entry holds, or None for anything that is not a well-formed entry."""
    if not isinstance(entry, dict):
        return None
    value, obtained, expires = entry.get("token"), entry.get("obtained_at"), entry.get("expires_at")
    if not isinstance(value, str) or not usable_bearer(value) or not _is_number(obtained):
        return None
    # The same bounds as an API reply's: a store anyone else can write may hold anything.
    if expires is not None and (not _is_number(expires) or expires - obtained > MAX_LIFETIME):
        return None
    user, org, withdrawn, hashed = (entry.get(name) for name in ("user_id", "organization_id", "withdrawn",
                                                                  "password_hash"))
    return Token(
        value=value,
        obtained_at=obtained,
        expires_at=expires,
        user_id=user if isinstance(user, str) else None,
        organization_id=org if isinstance(org, str) else None,
        # Missing in entries written before it existed; malformed costs only one more try of an endpoint.
        withdrawn=frozenset(name for name in withdrawn if isinstance(name, str))
        if isinstance(withdrawn, list) else frozenset(),
        password_hash=hashed if isinstance(hashed, str) and _PASSWORD_HASH.fullmatch(hashed) else None,
    )


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
