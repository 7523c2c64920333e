"""The Redis lock between calls: a watchdog extends a held lease, and a release outlives its caller.

Both run in threads of their own, so they work the same for the blocking and the async face, and
go on while an event loop is busy or after the task that started them was cancelled.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .._logs import logger
from ..errors import StoreUnavailableError, TokenStoreError

log = logger()


@dataclass
class Hold:
    """The lock a store holds: its owner (one per attempt), its fencing number, its lease (ms), and
    whether it was let go."""

    owner: str
    fence: int
    lease_ms: int
    released: threading.Event = field(default_factory=threading.Event)

    @property
    def value(self) -> str:
        # The lease is in the value so that a host configured with a shorter one waits for it (LOCK).
        return f"{self.owner}:{self.fence}:{self.lease_ms}"


def watch(hold: Hold, extend: Callable[[str], bool], every: float, times: int) -> None:
    """Call `extend(value)` every `every` seconds, at most `times` times, until the hold is released
    or `extend` says the lock is no longer ours (its lease ran out while this process was paused)."""

    def run() -> None:
        for _ in range(times):
            if hold.released.wait(every):
                return
            try:
                if not extend(hold.value):
                    return
            except TokenStoreError as exc:  # the next try may do; else the lease ends as it would have
                log.debug("Could not extend the lease of a token lock: %s", exc)

    threading.Thread(target=run, daemon=True, name="koyeb-auth-redis-lease").start()


def release_soon(release: Callable[[], object], until: float, grace: float) -> None:
    """Call `release()` now in the background, and again until it succeeds or `until` passes.

    A release after a timeout meets the same slow Redis that caused it: it is retried until Redis
    answers, rather than leaving the lock to its lease. At interpreter exit, pending releases get
    `grace` seconds to finish.
    """

    def run() -> None:
        delay = 0.05
        try:
            while True:
                try:
                    release()
                    return
                except StoreUnavailableError:  # only a Redis that did not answer may answer later
                    if time.monotonic() + delay >= until:
                        return
                except TokenStoreError as exc:
                    log.warning("Could not release a token lock: %s", exc)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        finally:
            with _pending_lock:
                _pending.pop(thread, None)

    thread = threading.Thread(target=run, daemon=True, name="koyeb-auth-redis-release")
    with _pending_lock:
        _pending[thread] = grace
    thread.start()


_pending: dict[threading.Thread, float] = {}
_pending_lock = threading.Lock()


@atexit.register
def _finish_pending() -> None:
    # Daemon threads, so a Redis that is down cannot hold the exit for long; but a release that is
    # under way (a task cancelled just before the program ended) gets its chance.
    with _pending_lock:
        pending = dict(_pending)
    end = time.monotonic() + max(pending.values(), default=0.0)
    for thread in pending:
        thread.join(max(end - time.monotonic(), 0.0))
