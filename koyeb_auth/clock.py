"""The API's clock and ours: what the reply's `Date` header says about the difference.

The API states expiries in its own clock. Its reply's `Date` says what time it is there, so the
time a token has left is the expiry minus `Date`, whatever this machine's clock says.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime

from .logs import logger

__all__ = ["clock_skew", "http_date"]

log = logger()

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
        _warn_once("date", "Ignoring the Koyeb API's Date header, %s away from this machine's clock: using "
                   "this machine's clock for token expiries", _span(skew))
        return None
    if abs(skew) <= CLOCK_NOISE:
        return 0.0
    if abs(skew) > REPORTED_SKEW:
        _warn_once("skew", "This machine's clock is %s %s the Koyeb API's (its Date header): token expiries are "
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


_warned: set[str] = set()


def _warn_once(kind: str, message: str, *args: object) -> None:
    # Every login and refresh of the process meets the same clocks: once is enough.
    if kind not in _warned:
        _warned.add(kind)
        log.warning(message, *args)


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
