"""Admission to the renewal critical section: one caller per process, then one process per store.

Order matters: the in-process lock first (see `admission`), then the store's lock. Threads and
tasks of one process then queue in memory instead of all polling the lock file, and the store
lock is only ever held by one caller of the process, so it needs no per-thread bookkeeping.

Entering is a context manager that says what it found: `INSIDE` (the caller holds both locks
until the block ends), `BUSY` (someone else is inside and the caller did not want to wait), or
`Seen(token)` (while waiting, the store's token changed, or this process's own did while the
caller queued for its turn: the caller decides whether that is what it was waiting for). The
wait itself is written once, as a plan of probes that a blocking and an async driver carry out.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from .admission import admission_for, pause
from .errors import Hint, LockTimeoutError, StoreUnavailableError, TokenStoreError
from .logs import logger
from .store import TokenStore, async_face
from .token import Token

log = logger()
# One INFO record per wait that lasts longer than a moment, on a logger of its own so that an
# application (the `koyeb-auth` command on a terminal) can show these without every INFO record.
wait_log = logger("koyeb_auth.wait")
A_MOMENT = 1.0

# Waiters poll the store lock. In async code a blocking flock() would stall the event loop, and a
# helper thread could still win the lock after its task was cancelled. Polls back off to this.
_MAX_POLL = 0.02
_LOCK_RETRY = 0.1


@dataclass(frozen=True)
class Seen:
    """While waiting, the store's token became this one (None: the store lost its token)."""

    token: Token | None


INSIDE = "inside"
BUSY = "busy"
Admission = Seen | str

# The probes of a wait plan: try the locks, look at the store, or sleep this long.
_TRY, _LOOK = "try", "look"


@dataclass(frozen=True)
class Wait:
    """How to enter: wait until `deadline` (time.monotonic()) or not at all; if `watch`, stop
    early when the store's token is no longer `known`. With `mine` (the token this process holds),
    a caller whose in-process turn comes after another caller changed it gets `Seen` at once,
    without a store round trip."""

    wait: bool
    deadline: float
    watch: bool = False
    known: Token | None = None
    mine: Callable[[], Token | None] | None = None


def _moved(how: Wait) -> Seen | None:
    """Seen(the process's token) if it is no longer the one the caller knew (see Wait.mine)."""
    if how.mine is None:
        return None
    mine = how.mine()
    return Seen(mine) if _value(mine) != _value(how.known) else None


def _value(token: Token | None) -> str | None:
    return token.value if token is not None else None


def _plan(how: Wait, waiting_for: str) -> Generator[str | float, Any, Admission | None]:
    """The one order of a wait: try the locks, then look at the store, then sleep; None at the deadline.

    A wait that outlasts A_MOMENT is logged once (INFO on `koyeb_auth.wait`), naming `waiting_for`.
    """
    known = _value(how.known)
    announce_at = time.monotonic() + A_MOMENT
    for delay, attempt in _polls(how.deadline, spaced=how.watch):
        if attempt and (yield _TRY):
            return INSIDE
        if not how.wait:
            return BUSY
        if how.watch:
            stored: Token | None = yield _LOOK
            if _value(stored) != known:
                return Seen(stored)
        if time.monotonic() >= announce_at:
            announce_at = float("inf")
            wait_log.info("Waiting for %s, up to %.0f s more: another thread or process is logging in or "
                          "refreshing", waiting_for, max(how.deadline - time.monotonic(), 0.0))
        yield delay
    return None


def _polls(deadline: float, spaced: bool) -> Iterator[tuple[float, bool]]:
    """For each poll until `deadline`: the sleep after it, and whether it tries the lock.

    When the store is watched (a stat of the cache file while it is unchanged), that is done on
    every poll, and the lock, which costs far more to try, is tried on the first poll and then
    every _LOCK_RETRY. With 32 waiting processes on 2 cores, that keeps the wait from being
    CPU-bound.
    """
    every = _LOCK_RETRY if spaced else 0.0
    delay, next_attempt = 0.001, 0.0
    while True:
        now = time.monotonic()
        attempt = now >= next_attempt
        if attempt:
            next_attempt = now + every
        yield delay, attempt
        if time.monotonic() >= deadline:
            return
        delay = min(delay * 2, _MAX_POLL, max(deadline - time.monotonic(), 0.0))


class Gate:
    """The locks guarding the renewal of `key`'s token in `store`."""

    def __init__(self, store: TokenStore, key: str, lock_timeout: float) -> None:
        self._store = store
        self._astore = async_face(store)
        self._key = key
        self._lock_timeout = lock_timeout
        self._admission = admission_for(store)
        self._waiting_for = f"the token lock of {store!r}"

    @contextlib.contextmanager
    def entry(self, how: Wait) -> Iterator[Admission]:
        """Enter, blocking; the locks are held for the block if the admission is INSIDE."""
        admission = self._admission
        seen = admission.failures
        if not admission.take(max(how.deadline - time.monotonic(), 0.0) if how.wait else None):
            if how.wait:
                raise self._timed_out()
            yield BUSY
            return
        try:
            outcome = _moved(how) or self._carry_out(how, seen)
        except BaseException:
            admission.give()
            raise
        if outcome != INSIDE:
            admission.give()
            yield outcome
            return
        try:
            yield INSIDE
        except StoreUnavailableError as exc:
            admission.store_failed(exc)
            raise
        finally:
            self._leave()

    @contextlib.asynccontextmanager
    async def aentry(self, how: Wait) -> AsyncIterator[Admission]:
        """`entry` for coroutines: never blocks the event loop; cancellation leaves nothing held."""
        queue = self._admission.loop_queue()
        if not how.wait and queue.busy:
            yield BUSY
            return
        seen = self._admission.failures
        # Tasks of one loop queue here without polling; only the first polls the locks below.
        if not await queue.acquire(how.deadline):
            raise self._timed_out()
        try:
            outcome = _moved(how) or await self._acarry_out(how, seen)
        except BaseException:
            queue.release()
            raise
        if outcome != INSIDE:
            queue.release()
            yield outcome
            return
        try:
            yield INSIDE
        except StoreUnavailableError as exc:
            self._admission.store_failed(exc)
            raise
        finally:
            try:
                await self._aleave()
            finally:
                queue.release()

    def _carry_out(self, how: Wait, seen: int) -> Admission:
        """The wait, holding thread_lock; `seen`: the store failures counted when the caller came."""
        plan, answer = _plan(how, self._waiting_for), None  # type: Generator[str | float, Any, Admission | None], Any
        try:
            while True:
                probe = plan.send(answer)
                if isinstance(probe, float):
                    time.sleep(probe)
                    answer = None
                    continue
                self._admission.check_store(seen)
                with self._reporting_outage():
                    answer = self._store.try_lock() if probe == _TRY else self._store.load(self._key)
        except StopIteration as stop:
            return self._admission_or_timeout(stop.value)

    async def _acarry_out(self, how: Wait, seen: int) -> Admission:
        plan, answer = _plan(how, self._waiting_for), None  # type: Generator[str | float, Any, Admission | None], Any
        try:
            while True:
                probe = plan.send(answer)
                if isinstance(probe, float):
                    await pause(probe)
                    answer = None
                    continue
                self._admission.check_store(seen)
                if probe == _TRY:
                    answer = await self._atry_locks()
                else:
                    with self._reporting_outage():
                        answer = await self._astore.aload(self._key)
        except StopIteration as stop:
            return self._admission_or_timeout(stop.value)

    @contextlib.contextmanager
    def _reporting_outage(self) -> Iterator[None]:
        try:
            yield
        except StoreUnavailableError as exc:
            self._admission.store_failed(exc)
            raise

    def _admission_or_timeout(self, outcome: Admission | None) -> Admission:
        if outcome is None:
            raise self._timed_out()
        return outcome

    async def _atry_locks(self) -> bool:
        # Threads of this process take the thread lock by blocking; tasks try it, so as never to
        # block the loop.
        admission = self._admission
        if not admission.take(None):
            return False
        try:
            # Cancelled mid-call, a networked store may have granted the lock anyway: releasing
            # what a failed attempt may have taken is the store's job (see RedisTokenStore).
            with self._reporting_outage():
                entered = await self._astore.atry_lock()
        except BaseException:
            admission.give()
            raise
        if not entered:
            admission.give()
        return entered

    def _leave(self) -> None:
        try:
            self._store.unlock()
        except TokenStoreError as exc:
            _unlock_failed(self._store, exc)
        finally:
            self._admission.give()

    async def _aleave(self) -> None:
        try:
            await self._astore.aunlock()
        except TokenStoreError as exc:
            _unlock_failed(self._store, exc)
        finally:
            self._admission.give()

    def _timed_out(self) -> LockTimeoutError:
        return LockTimeoutError(
            f"Waited {self._lock_timeout:g} s for {self._waiting_for}: another thread or process "
            "is still logging in. Check that the Koyeb API answers.", Hint.LOCK_TIMEOUT
        )


def _unlock_failed(store: TokenStore, exc: TokenStoreError) -> None:
    # Whatever the flow produced stands; a lock we could not release ends with its lease.
    log.warning("Could not release the token lock of %r (%s); it ends when its lease runs out", store, exc)
