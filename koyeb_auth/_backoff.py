"""How long to stay away from the API after a failed login or refresh.

Exponential with jitter, so a fleet whose API went down does not come back in lockstep, and never
shorter than what a 429 asked for (`_session_api.retry_after` caps that at an hour). Every interval runs
on a monotonic clock: a wall clock stepped back (NTP, a resumed VM, a user) cannot stretch a
backoff, nor a step forward cut it short.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import KoyebAuthError, RateLimitedError

BASE_DELAY = 1.0
MAX_DELAY = 60.0
# 2 ** 6 > MAX_DELAY: the exponent stops there, so a long outage cannot overflow the float.
_MAX_DOUBLINGS = 6


def monotonic() -> float:
    """time.monotonic(), looked up at each call so that freezegun can move it in tests."""
    return time.monotonic()


@dataclass
class Backoff:
    """The last failure and how long it keeps callers away, on `clock` (monotonic seconds)."""

    clock: Callable[[], float] = monotonic
    failures: int = 0
    not_before: float = 0.0
    error: KoyebAuthError | None = None

    def active(self) -> bool:
        return self.error is not None and self.clock() < self.not_before

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """Around a call to the API: while the backoff lasts, raise the last failure again instead;
        else record how the call went."""
        if self.error is not None and self.active():
            raise self.error.with_traceback(None)
        try:
            yield
        except KoyebAuthError as exc:
            self.failed(exc)
            raise
        self.failures, self.not_before, self.error = 0, 0.0, None

    def failed(self, error: KoyebAuthError) -> None:
        self.failures += 1
        ceiling = min(BASE_DELAY * 2 ** min(self.failures - 1, _MAX_DOUBLINGS), MAX_DELAY)
        delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311  # jitter, not a secret
        if isinstance(error, RateLimitedError):
            delay = max(delay, error.retry_after)
        self.not_before, self.error = self.clock() + delay, error
