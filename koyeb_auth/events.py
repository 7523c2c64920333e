"""Token events, for the metrics and alerts of long-running services: `KoyebAuth(on_event=...)`.

The hook is called by the caller that did the work (a thread, or a task on its event loop), at
the moment it happened, usually while that caller still holds the renewal lock: keep the hook
short (count, or hand the event to a queue). A hook that raises is logged and ignored:
metrics must never break a request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ._logs import logger
from ._session_api import Action
from ._token import Token
from .errors import KoyebAuthError

if TYPE_CHECKING:
    import logging  # for the annotation only: _logs loads logging when it makes the logger

__all__ = ["EventKind", "TokenEvent"]

log: logging.Logger = logger()

EventKind = Literal["obtained", "refreshed", "rejected", "failed"]


@dataclass(frozen=True)
class TokenEvent:
    """Something happened to a session token. It names the token by fingerprint, never by value.

    `kind` is one of:

    - "obtained": a new session token, from a login or an organization switch (`action`).
    - "refreshed": a token renewed by the refresh call (`action` is "refresh").
    - "rejected": the API answered 401 to this token, and this process is renewing it.
    - "failed": a renewal failed, with `error`. `kept` is True when the token in use is still
      valid and stays in use (the failure is only logged; it is tried again later), False when
      the error was raised to the caller (each caller that gets it is one event).

    `fingerprint` and `expires_at` (POSIX seconds, this machine's clock) are those of the new token
    ("obtained", "refreshed"), the refused one ("rejected"), or the one being renewed ("failed";
    None when there was none). A personal access token used as is never causes an event.
    """

    kind: EventKind
    fingerprint: str | None = None
    expires_at: float | None = None
    action: Action | None = None
    error: KoyebAuthError | None = None
    kept: bool = False


EventHook = Callable[[TokenEvent], None]


def emit(
    hook: EventHook,
    kind: EventKind,
    token: Token | None,
    *,
    action: Action | None = None,
    error: KoyebAuthError | None = None,
    kept: bool = False,
) -> None:
    """Call `hook` with the event; log what it raises and go on. (Callers without a hook skip the
    call: building the event costs the token's fingerprint.)"""
    event = TokenEvent(kind, token.fingerprint if token else None, token.expires_at if token else None,
                       action, error, kept)
    try:
        hook(event)
    except Exception:
        # A broken metrics hook must not break the request that happened to trigger it.
        log.exception("The on_event hook raised on a %r event; ignored", kind)
