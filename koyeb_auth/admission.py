"""The in-process locks of a store: one thread at a time, and one task at a time per event loop.

They belong to the store object, not to a gate: KoyebAuth objects that share a store share them
too. (A filelock object is reentrant within a process: two gates with locks of their own would
both get in.) Every wait has a deadline, so the in-process queue and the store's lock together
never take longer than `lock_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import weakref
from collections import deque

from .store import TokenStore


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
        # One queue per event loop: its futures belong to the loop that waits on them.
        self.loop_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopQueue] = (
            weakref.WeakKeyDictionary()
        )

    def loop_queue(self) -> LoopQueue:
        loop = asyncio.get_running_loop()
        queue = self.loop_queues.get(loop)
        if queue is None:
            queue = self.loop_queues.setdefault(loop, LoopQueue())
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
