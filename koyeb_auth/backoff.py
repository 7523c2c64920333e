"""How long to stay away from the API after a failed login or refresh.

Exponential with jitter, so a fleet whose API went down does not come back in lockstep, and never
shorter than what a 429 asked for.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import KoyebAuthError, RateLimitedError

BASE_DELAY = 1.0
MAX_DELAY = 60.0


@dataclass
class Backoff:
    failures: int = 0
    not_before: float = 0.0
    error: KoyebAuthError | None = None

    def active(self, now: float) -> bool:
        return self.error is not None and now < self.not_before

    def check(self, now: float) -> None:
        """Raise the last failure again, without a network call, while the backoff lasts."""
        if self.error is not None and now < self.not_before:
            raise self.error.with_traceback(None)

    def failed(self, now: float, error: KoyebAuthError) -> None:
        self.failures += 1
        ceiling = min(BASE_DELAY * 2 ** (self.failures - 1), MAX_DELAY)
        delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311  # jitter, not a secret
        if isinstance(error, RateLimitedError):
            delay = max(delay, error.retry_after)
        self.not_before, self.error = now + delay, error

    def succeeded(self) -> None:
        self.failures, self.not_before, self.error = 0, 0.0, None
