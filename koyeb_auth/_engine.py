"""The effects a token flow asks for, and the drivers that carry them out: locks, store, network.

A flow (see `_manager`) is a generator that yields what it needs done: `Enter` (take the
in-process and cross-process locks), `Load`, `Save` or `Delete` (the shared store), or a `Call`
(send a session request), and gets each outcome back. `run` does the steps blocking, `arun` with
awaits, in the style of httpx's sans-I/O auth flows, so a store with a network round trip (Redis)
never blocks an event loop. The locks a flow entered are released when it ends, whatever ended it,
cancellation included.

Entering is admission to the renewal critical section: one caller per process, then one process
per store. Order matters: the in-process lock first, then the store's lock. Threads and tasks of
one process then queue in memory instead of all polling the lock file, and the store lock is only
ever held by one caller of the process, so it needs no per-thread bookkeeping.

The in-process locks (`Admission`) belong to the store object, not to a gate: KoyebAuth objects
that share a store share them too. (A filelock object is reentrant within a process: two gates
with locks of their own would both get in.) Every wait has a deadline, so the in-process queue and
the store's lock together never take longer than `lock_timeout`.

A `Gate` entry says what it found: `INSIDE` (the caller holds both locks until the block ends),
`BUSY` (someone else is inside and the caller did not want to wait), or `Seen(token)` (while
waiting, the store's token changed, or this process's own did while the caller queued for its
turn: the caller decides whether that is what it was waiting for). The wait itself is written
once, as a plan of probes that a blocking and an async driver carry out.
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
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _session_api as api
from ._logs import logger
from ._token import Token
from .errors import Hint, LockTimeoutError, StoreUnavailableError, TokenStoreError
from .stores._protocol import TokenStore, async_face

if TYPE_CHECKING:
    from anyio.lowlevel import RunVar

    from ._transport import SessionClient


# --- the in-process locks of a store --------------------------------------------------------------

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


# --- the gate: in-process lock, then the store's --------------------------------------------------

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
Admitted = Seen | str

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


def _plan(how: Wait, waiting_for: str) -> Generator[str | float, Any, Admitted | None]:
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
    def entry(self, how: Wait) -> Iterator[Admitted]:
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
    async def aentry(self, how: Wait) -> AsyncIterator[Admitted]:
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

    def _carry_out(self, how: Wait, seen: int) -> Admitted:
        """The wait, holding thread_lock; `seen`: the store failures counted when the caller came."""
        plan, answer = _plan(how, self._waiting_for), None  # type: Generator[str | float, Any, Admitted | None], Any
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

    async def _acarry_out(self, how: Wait, seen: int) -> Admitted:
        plan, answer = _plan(how, self._waiting_for), None  # type: Generator[str | float, Any, Admitted | None], Any
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

    def _admission_or_timeout(self, outcome: Admitted | None) -> Admitted:
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


# --- the steps a flow yields, and the drivers -----------------------------------------------------

T = TypeVar("T")


@dataclass(frozen=True)
class Enter:
    """Take the locks as `how` says; the outcome is a `Admitted`."""

    how: Wait


@dataclass(frozen=True)
class Load:
    """The token the store holds, or None."""


@dataclass(frozen=True)
class Save:
    token: Token


@dataclass(frozen=True)
class Delete:
    pass


Step = Enter | Load | Save | Delete | api.Call
Flow = Generator[Step, Any, T]


class Driver:
    """Carries out the steps of the flows of one token (`key` in `store`)."""

    def __init__(self, store: TokenStore, key: str, gate: Gate, session: SessionClient) -> None:
        self._store = store
        self._astore = async_face(store)
        self._key = key
        self._gate = gate
        self._session = session

    def run(self, flow: Flow[T]) -> T:
        steps = _Steps(flow)
        with contextlib.ExitStack() as held:
            for step in steps:
                try:
                    if isinstance(step, Enter):
                        steps.done(held.enter_context(self._gate.entry(step.how)))
                    elif isinstance(step, api.Call):
                        steps.done(self._session.send(step))
                    elif isinstance(step, Load):
                        steps.done(self._store.load(self._key))
                    elif isinstance(step, Save):
                        self._store.save(self._key, step.token)
                        steps.done(None)
                    else:
                        self._store.delete(self._key)
                        steps.done(None)
                except BaseException as exc:
                    steps.failed(exc)
        return steps.result

    async def arun(self, flow: Flow[T]) -> T:
        """`run` with awaits. Under asyncio, a flow whose caller is cancelled once it has sent a
        session call runs on in a task of its own until it has saved the result: a refresh the API
        carried out has revoked the old token, and the new one must not be lost. The locks are left
        when the caller is cancelled, not when that task ends: a loop that is not run again (a
        `run_until_complete` given a `wait_for`) would otherwise hold them for good."""
        if not on_asyncio():
            return await self._arun(flow, [], contextlib.AsyncExitStack())
        sent: list[bool] = []
        held = contextlib.AsyncExitStack()
        task = asyncio.ensure_future(self._arun(flow, sent, held))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if sent:
                _finishing.add(task)
                task.add_done_callback(_finished)
                # Peers may renew meanwhile: the late save only replaces a token with another valid one.
                await held.aclose()
            else:
                task.cancel()
                await asyncio.wait([task])  # released what it held, as the caller's cancellation expects
            raise

    async def _arun(self, flow: Flow[T], sent: list[bool], held: contextlib.AsyncExitStack) -> T:
        steps = _Steps(flow)
        async with held:
            for step in steps:
                try:
                    if isinstance(step, Enter):
                        steps.done(await held.enter_async_context(self._gate.aentry(step.how)))
                    elif isinstance(step, api.Call):
                        sent.append(True)
                        steps.done(await self._session.asend(step))
                    elif isinstance(step, Load):
                        steps.done(await self._astore.aload(self._key))
                    elif isinstance(step, Save):
                        await self._astore.asave(self._key, step.token)
                        steps.done(None)
                    else:
                        await self._astore.adelete(self._key)
                        steps.done(None)
                except BaseException as exc:  # CancelledError too: the flow decides, then we release
                    steps.failed(exc)
        return steps.result


# The flows finishing for a cancelled caller: the loop holds only weak references to its tasks.
_finishing: set[asyncio.Future[Any]] = set()


def _finished(task: asyncio.Future[Any]) -> None:
    _finishing.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: the flow has logged and reported its failure; no one awaits it


class _Steps(Generic[T]):
    """Iterates over the steps a flow asks for, feeding each one's outcome back into the flow."""

    def __init__(self, flow: Flow[T]) -> None:
        self._flow = flow
        self._outcome: tuple[bool, Any] = (True, None)
        self.result: T

    def __iter__(self) -> Iterator[Step]:
        try:
            while True:
                succeeded, value = self._outcome
                try:
                    step = self._flow.send(value) if succeeded else self._flow.throw(value)
                except StopIteration as stop:
                    self.result = stop.value
                    return
                yield step
        finally:
            self._flow.close()

    def done(self, value: object) -> None:
        self._outcome = (True, value)

    def failed(self, error: BaseException) -> None:
        self._outcome = (False, error)
