"""Admission to the renewal critical section: one caller per process, then one process per store.

Order matters: the in-process lock first, then the store's lock. Threads of one process then
queue in memory instead of all polling the lock file, and the store lock is only ever held by one
thread of the process, so it needs no per-thread bookkeeping. The in-process locks belong to the
store object, not to a gate: KoyebAuth objects that share a store share them too. (A filelock
object is reentrant within a process: two gates with locks of their own would both get in.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator

from .errors import LockTimeoutError, TokenStoreError
from .store import TokenStore, async_face
from .token import Token

log = logging.getLogger("koyeb_auth")

Ready = Callable[[Token | None], bool]

# Waiters poll the store lock. In async code a blocking flock() would stall the event loop, and a
# helper thread could still win the lock after its task was cancelled. Polls back off to this.
_MAX_POLL = 0.02
_LOCK_RETRY = 0.1

_gates: weakref.WeakSet[Gate] = weakref.WeakSet()


class _Admission:
    """The in-process locks of one store: one thread at a time, and one task at a time per loop."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.thread_lock = threading.Lock()
        # One asyncio.Lock per event loop: an asyncio.Lock is bound to the loop that first waits on it.
        self.loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self.loop_locks.get(loop)
        if lock is None:
            lock = self.loop_locks.setdefault(loop, asyncio.Lock())
        return lock


# By the identity of the store (stores need not be hashable), dropped when the store is collected.
_admissions: dict[int, _Admission] = {}
_admissions_lock = threading.Lock()


def _admission_for(store: TokenStore) -> _Admission:
    with _admissions_lock:
        admission = _admissions.get(id(store))
        if admission is None:
            admission = _Admission()
            try:
                weakref.finalize(store, _admissions.pop, id(store), None)
            except TypeError:  # a store that cannot be weakly referenced: locks of this gate's own
                return admission
            _admissions[id(store)] = admission
        return admission


class Gate:
    """The locks guarding the renewal of `key`'s token in `store`.

    `enter`/`aenter` return True when the caller is inside; it must then call `exit`/`aexit`.
    While waiting, `ready(token in the store)` may say that whoever is inside has already produced
    what the caller came for: the caller then stops waiting and is not inside.
    """

    def __init__(self, store: TokenStore, key: str, timeout: float) -> None:
        self._store = store
        self._astore = async_face(store)
        self._key = key
        self._timeout = timeout
        self._admission = _admission_for(store)
        _gates.add(self)

    @property
    def _thread_lock(self) -> threading.Lock:
        return self._admission.thread_lock

    def try_enter(self) -> bool:
        """Enter if nobody in this process or in any other is inside; never wait."""
        if not self._thread_lock.acquire(blocking=False):
            return False
        with self._releasing_on_error():
            return self._kept(self._store.try_lock())

    def enter(self, wait: bool, ready: Ready | None) -> bool:
        """Enter, waiting up to the lock timeout when `wait`; LockTimeoutError if that runs out."""
        if not wait:
            return self.try_enter()
        if not self._thread_lock.acquire(timeout=self._timeout):
            raise self._timed_out()
        try:
            # Poll the store lock rather than block on it: between polls `ready()` re-reads the
            # store, so N waiting processes adopt the new token together instead of queueing for
            # the lock one by one after the holder is done.
            for delay, attempt in _polls(self._timeout, ready is not None):
                if ready is not None and ready(self._store.load(self._key)):
                    break
                if attempt and self._store.try_lock():
                    return True
                time.sleep(delay)
            else:
                raise self._timed_out()
        except BaseException:
            self._thread_lock.release()
            raise
        self._thread_lock.release()
        return False

    def exit(self) -> None:
        try:
            self._store.unlock()
        except TokenStoreError as exc:
            _unlock_failed(self._store, exc)
        finally:
            self._thread_lock.release()

    async def aenter(self, wait: bool, ready: Ready | None) -> bool:
        """`enter` for coroutines: never blocks the event loop; cancellation leaves nothing held."""
        loop_lock = self._admission.loop_lock()
        if not wait and loop_lock.locked():
            return False
        # Tasks of one loop queue here without polling; only the first polls the locks below.
        await loop_lock.acquire()
        try:
            for delay, attempt in _polls(self._timeout, ready is not None):
                if attempt and await self._atry_enter():
                    return True
                if not wait or (ready is not None and ready(await self._astore.aload(self._key))):
                    break
                await asyncio.sleep(delay)
            else:
                raise self._timed_out()
        except BaseException:
            loop_lock.release()
            raise
        loop_lock.release()
        return False

    async def _atry_enter(self) -> bool:
        if not self._thread_lock.acquire(blocking=False):
            return False
        # Cancelled mid-call, a networked store may have granted the lock anyway: its lease bounds
        # how long that lock outlives us.
        with self._releasing_on_error():
            return self._kept(await self._astore.atry_lock())

    @contextlib.contextmanager
    def _releasing_on_error(self) -> Iterator[None]:
        try:
            yield
        except BaseException:
            self._thread_lock.release()
            raise

    def _kept(self, entered: bool) -> bool:
        """Keep the thread lock only if the store lock was taken too."""
        if not entered:
            self._thread_lock.release()
        return entered

    async def aexit(self) -> None:
        try:
            await self._astore.aunlock()
        except TokenStoreError as exc:
            _unlock_failed(self._store, exc)
        finally:
            self._thread_lock.release()
            self._admission.loop_lock().release()

    def _timed_out(self) -> LockTimeoutError:
        return LockTimeoutError(
            f"Waited {self._timeout:g} s for the token lock of {self._store!r}: another thread or process "
            "is still logging in. Check that the Koyeb API answers, or raise lock_timeout."
        )


def _unlock_failed(store: TokenStore, exc: TokenStoreError) -> None:
    # Whatever the flow produced stands; a lock we could not release ends with its lease.
    log.warning("Could not release the token lock of %r (%s); it ends when its lease runs out", store, exc)


def _polls(timeout: float, spaced: bool) -> Iterator[tuple[float, bool]]:
    """For each poll until `timeout` has passed: the sleep after it, and whether it tries the lock.

    When the store can be looked at instead (`spaced`: a stat while it is unchanged), that is done
    on every poll, and the lock, which costs far more to try, is tried on the first poll and then
    every _LOCK_RETRY. With 32 waiting processes on 2 cores, that keeps the wait from being
    CPU-bound.
    """
    every = _LOCK_RETRY if spaced else 0.0
    deadline, delay, next_attempt = time.monotonic() + timeout, 0.001, 0.0
    while True:
        now = time.monotonic()
        attempt = now >= next_attempt
        if attempt:
            next_attempt = now + every
        yield delay, attempt
        if time.monotonic() >= deadline:
            return
        delay = min(delay * 2, _MAX_POLL)


def _reset_after_fork() -> None:
    # A lock held by a thread of the parent would never be released in the child: start afresh.
    for gate in list(_gates):
        gate._admission.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
