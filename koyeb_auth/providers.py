"""What supplies KoyebAuth's tokens: the protocol, the personal access token used as is, and the
time settings a renewing provider (`manager.TokenManager`) runs on."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from .errors import ConfigurationError
from .logs import logger
from .token import Token

__all__ = ["PersonalTokenProvider", "Timing", "TokenProvider"]

log = logger()


def wall_clock() -> float:
    # Looked up at call time so that freezegun can move it.
    return time.time()


@dataclass(frozen=True)
class Timing:
    """The time settings of a KoyebAuth, in seconds."""

    refresh_margin: float
    timeout: float
    lock_timeout: float

    @classmethod
    def checked(cls, refresh_margin: float | timedelta, timeout: float, lock_timeout: float) -> Timing:
        """The settings as given (a margin may be a timedelta), or a ConfigurationError."""
        margin = seconds(refresh_margin)
        if not margin >= 0 or not timeout > 0 or not lock_timeout > 0:
            raise ConfigurationError("refresh_margin must be >= 0, and timeout and lock_timeout > 0 seconds.")
        return cls(margin, timeout, lock_timeout)


def seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TokenProvider(Protocol):
    """What KoyebAuth needs from whatever supplies its tokens."""

    def peek(self) -> Token | None:
        """The token if it can be sent as is, without locks or I/O; None if anything is due."""
        ...

    def get_token(self) -> Token: ...

    async def aget_token(self) -> Token: ...

    def renew_rejected(self, rejected: Token, *, resent: bool = False) -> Token | None:
        """A token to send a refused request again with (`resent`: the refused token was itself a
        renewal), or None to return the 401."""
        ...

    async def arenew_rejected(self, rejected: Token, *, resent: bool = False) -> Token | None: ...

    def suspect(self, renewed: Token) -> None:
        """Note that a request retried with the renewed token got a 401 again."""
        ...

    def logout(self) -> bool:
        """End the session; False if there was none to end."""
        ...

    async def alogout(self) -> bool: ...

    def cached(self) -> Token | None: ...


class PersonalTokenProvider:
    """A personal access token used as is: nothing to renew, nothing to cache."""

    def __init__(self, value: str) -> None:
        self._token = Token(value, obtained_at=0.0)

    def peek(self) -> Token | None:
        return self._token

    def get_token(self) -> Token:
        return self._token

    async def aget_token(self) -> Token:
        return self._token

    def renew_rejected(self, rejected: Token, *, resent: bool = False) -> Token | None:
        return None

    async def arenew_rejected(self, rejected: Token, *, resent: bool = False) -> Token | None:
        return None

    def suspect(self, renewed: Token) -> None:
        pass  # never renewed, so never retried

    def logout(self) -> bool:
        # Logging out would end nothing: a personal access token is revoked in the console.
        log.info("Nothing to log out: a personal access token stays valid until revoked in the Koyeb console")
        return False

    async def alogout(self) -> bool:
        return self.logout()

    def cached(self) -> Token | None:
        return self._token
