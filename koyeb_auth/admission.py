"""The in-process locks of a store: one thread at a time, and one task at a time per event loop.

They belong to the store object, not to a gate: KoyebAuth objects that share a store share them
too. (A filelock object is reentrant within a process: two gates with locks of their own would
both get in.) Every wait has a deadline, so the in-process queue and the store's lock together
never take longer than `lock_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING

from .errors import LockTimeoutError, StoreUnavailableError
from .store import TokenStore

if TYPE_CHECKING:
    from anyio.lowlevel import RunVar


def on_asyncio() -> bool:
    """True in a coroutine run by asyncio; False under another library (trio, through anyio)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


async def pause(seconds: float) -> None:
    if on_asyncio():
        await asyncio.sleep(seconds)
    else:
        import anyio  # noqa: PLC0415 - httpx's own dependency, loaded only off asyncio

        await anyio.sleep(seconds)


class RunQueue:
    """`LoopQueue` for the other async libraries httpx runs on (trio), through anyio.

    Its lock is fair and hands no turn to a cancelled waiter, so it needs no bpo-42130 workaround.
    """

    def __init__(self) -> None:
        import anyio  # noqa: PLC0415

        self._lock = anyio.Lock()

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    async def acquire(self, deadline: float) -> bool:
        import anyio  # noqa: PLC0415

        with anyio.move_on_after(max(deadline - time.monotonic(), 0.0)):
            await self._lock.acquire()
            return True
        return False

    def release(self) -> None:
        self._lock.release()


class LoopQueue:
    """One task at a time on one event loop, first come first served, each waiter with a deadline.

    The turn is handed from task to task, so a waiter cancelled at the moment it is handed the
    turn passes it on (an asyncio.Lock under wait_for can lose it that way: bpo-42130).
    """

    def __init__(self) -> None:
        self.busy = False
        self._waiters: deque[asyncio.Future[bool]] = deque()

    async def acquire(self, deadline: float) -> bool:
        """Take the turn; False if `deadline` passes first."""
        if not self.busy:
            self.busy = True
            return True
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[bool] = loop.create_future()
        self._waiters.append(turn)
        timer = loop.call_later(max(deadline - time.monotonic(), 0.0), _expire, turn)
        try:
            granted = await turn
        except BaseException:
            if turn.done() and not turn.cancelled() and turn.result():
                self.release()  # handed the turn while being cancelled: pass it on
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(turn)
        return granted

    def release(self) -> None:
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(True)
                return
        self.busy = False


def _expire(turn: asyncio.Future[bool]) -> None:
    if not turn.done():
        turn.set_result(False)


class Admission:
    """The in-process locks of one store: one thread at a time, and one task at a time per loop."""

    def __init__(self) -> None:
        self.reset()
        _every.add(self)

    def reset(self) -> None:
        self.thread_lock = threading.Lock()
        # The thread whose caller holds thread_lock (a thread's, or a task's of its event loop).
        self.holder: int | None = None
        # How many times a caller holding the locks found the store unavailable, and the last error.
        self.failures = 0
        self.last_failure: StoreUnavailableError | None = None
        # One queue per event loop: its futures belong to the loop that waits on them.
        self.loop_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopQueue] = (
            weakref.WeakKeyDictionary()
        )
        self.run_queues: RunVar[RunQueue] | None = None  # made on first use off asyncio

    def take(self, timeout: float | None) -> bool:
        """Take thread_lock, waiting up to `timeout` seconds (None: not at all)."""
        me = threading.get_ident()
        if timeout is not None and self.holder == me:
            # Only a task of this thread's event loop (or a hook called inside the renewal) can hold
            # it: blocking here stops the very holder we would wait for, until lock_timeout.
            raise LockTimeoutError(
                "A blocking call needed the Koyeb token while a task on this thread's event loop is "
                "renewing it: waiting would freeze the loop, and with it that renewal. In async code, "
                "use the async client (httpx.AsyncClient) or aget_token(), or run the blocking call in a "
                "thread (asyncio.to_thread)."
            )
        if not self.thread_lock.acquire(blocking=timeout is not None, timeout=-1 if timeout is None else timeout):
            return False
        self.holder = me
        return True

    def give(self) -> None:
        self.holder = None
        self.thread_lock.release()

    def store_failed(self, error: StoreUnavailableError) -> None:
        """The caller holding the locks found the store unavailable: those queued behind it fail too."""
        self.last_failure = error
        self.failures += 1

    def check_store(self, seen: int) -> None:
        """Raise the store's failure if a caller ahead found it unavailable since `seen` failures.

        Otherwise each queued caller would try the dead store in turn, and the n-th would get its
        error only after n store timeouts (or its lock_timeout), far beyond its own deadline.
        """
        failure = self.last_failure
        if self.failures != seen and failure is not None:
            raise copy.copy(failure)  # a fresh error: not the other caller's traceback

    def loop_queue(self) -> LoopQueue | RunQueue:
        if not on_asyncio():
            return self._run_queue()
        loop = asyncio.get_running_loop()
        queue = self.loop_queues.get(loop)
        if queue is None:
            queue = self.loop_queues.setdefault(loop, LoopQueue())
        return queue

    def _run_queue(self) -> RunQueue:
        # One per run of the event loop, as for asyncio: a trio lock belongs to the run that made it.
        from anyio.lowlevel import RunVar  # noqa: PLC0415

        queues = self.run_queues
        if queues is None:
            queues = self.run_queues = RunVar("koyeb_auth.admission")
        queue = queues.get(None)
        if queue is None:
            queue = RunQueue()
            queues.set(queue)
        return queue


# By the identity of the store (stores need not be hashable), dropped when the store is collected.
_admissions: dict[int, Admission] = {}
_every: weakref.WeakSet[Admission] = weakref.WeakSet()  # those of unhashable stores too, for fork
_admissions_lock = threading.Lock()


def admission_for(store: TokenStore) -> Admission:
    with _admissions_lock:
        admission = _admissions.get(id(store))
        if admission is None:
            admission = Admission()
            try:
                weakref.finalize(store, _admissions.pop, id(store), None)
            except TypeError:  # a store that cannot be weakly referenced: locks of this gate's own
                return admission
            _admissions[id(store)] = admission
        return admission


def _reset_after_fork() -> None:
    # A lock held by a thread of the parent would never be released in the child: start afresh.
    for admission in list(_every):
        admission.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
