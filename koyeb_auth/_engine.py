"""The effects a token flow asks for, the wait for the token lock, and the drivers that carry them out.

A flow (the decisions, see `_manager`) is a generator of effects. `outcome = yield from Load()`
hands the effect to a driver, which carries it out and puts its outcome in the effect: an
`Effect[T]` gives its flow a `T` (`Load` a `Token | None`, `TryLock` a `bool`), so a flow is typed
end to end. There is one protocol level: the wait for the lock (`enter`) is a flow too, which the
decisions `yield from`. `Driver.run` carries the effects out blocking, `Driver.arun` with awaits,
in the style of httpx's sans-I/O auth flows, so a store with a network round trip (Redis) never
blocks an event loop. A driver tracks what the flow holds (this process's turn, the store's lock)
and releases it when the flow ends, whatever ended it, cancellation included.

The lock is taken in two parts, in this order: this process's turn (`Queue`: one thread at a time,
and one task at a time per event loop), then the store's lock (`TryLock`, polled). Threads and
tasks of one process then queue in memory instead of all polling the lock file, and the store's
lock is only ever held by one caller of the process, so it needs no per-thread bookkeeping.

The turns (`Admission`) belong to the store object, not to a flow's owner: KoyebAuth objects that
share a store share them too. (A filelock object is reentrant within a process: two owners with
turns of their own would both get in.) Every wait has one deadline, so the in-process queue and
the store's lock together never take longer than `lock_timeout`.
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
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from enum import Enum, auto
from functools import cached_property
from typing import TYPE_CHECKING, Generic, TypeVar

from . import _session_api as api
from ._logs import logger
from ._token import Token
from .errors import Hint, LockTimeoutError, StoreUnavailableError, TokenStoreError
from .stores._protocol import AsyncTokenStore, TokenStore, async_face

if TYPE_CHECKING:
    from anyio import CancelScope
    from anyio.lowlevel import RunVar

    from ._transport import SessionClient


T_co = TypeVar("T_co", covariant=True)
R = TypeVar("R")


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


async def in_thread(work: Callable[[], R]) -> R:
    if on_asyncio():
        return await asyncio.to_thread(work)
    import anyio  # noqa: PLC0415 - see pause

    return await anyio.to_thread.run_sync(work)


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


@dataclass(eq=False)
class Admission:
    """The in-process locks of one store: one thread at a time, and one task at a time per loop."""

    thread_lock: threading.Lock = field(default_factory=threading.Lock)
    # The thread whose caller holds thread_lock (a thread's, or a task's of its event loop).
    holder: int | None = None
    # How many times a caller holding the locks found the store unavailable, and the last error.
    failures: int = 0
    last_failure: StoreUnavailableError | None = None
    # One queue per event loop: its futures belong to the loop that waits on them.
    loop_queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopQueue] = field(
        default_factory=weakref.WeakKeyDictionary)
    run_queues: RunVar[RunQueue] | None = None  # made on first use off asyncio

    def reset(self) -> None:
        """Start afresh: in a forked child, a lock held by a thread of the parent is never released."""
        vars(self).update(vars(Admission()))

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
        """Raise the store's failure if a caller ahead found it unavailable since `seen` failures
        (call it when `failures` is no longer `seen`).

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
            _every.add(admission)
            try:
                weakref.finalize(store, _admissions.pop, id(store), None)
            except TypeError:  # a store that cannot be weakly referenced: turns of this driver's own
                return admission
            _admissions[id(store)] = admission
        return admission


def _reset_after_fork() -> None:
    # A lock held by a thread of the parent would never be released in the child: start afresh.
    for admission in list(_every):
        admission.reset()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


# --- the effects ----------------------------------------------------------------------------------

class Effect(Generic[T_co]):
    """Something a flow needs done: `outcome = yield from effect` has the driver do it.

    The driver puts the outcome in the effect before the flow resumes: the generator protocol's
    `send` has one type for every yield, while each effect has an outcome of its own type.
    """

    outcome: T_co

    def __iter__(self) -> Generator[Effect[object], None, T_co]:
        yield self
        return self.outcome


class _Done(Effect[None]):
    """An effect that has no outcome: its flow only needs it done."""

    outcome = None


# A flow: effects out, nothing sent in (see Effect), an R returned. Effects with fields are
# dataclasses (eq=False: each is one request, compared by identity).
Flow = Generator[Effect[object], None, R]


@dataclass(eq=False)
class Queue(Effect[bool]):
    """Take this process's turn: one thread at a time, one task at a time per event loop. Wait for
    it until `deadline` (time.monotonic()) if `block`, else take it only if it is free. False if not
    taken."""

    deadline: float
    block: bool


class TryLock(Effect[bool]):
    """Try the store's lock, once (holding the turn): True if taken."""


class Look(Effect["Token | None"]):
    """The store's token, read while waiting for its lock, to see whether a peer changed it."""


@dataclass(eq=False)
class Sleep(_Done):
    """Wait this long (time.sleep, or the event loop's sleep)."""

    seconds: float


class Unlock(_Done):
    """Release what the flow holds: the store's lock, then the turn."""


class Load(Effect["Token | None"]):
    """The token the store holds, or None."""


@dataclass(eq=False)
class Save(_Done):
    """Replace the store's token with this one (holding the lock)."""

    token: Token


class Delete(_Done):
    """Delete the store's token."""


@dataclass(eq=False)
class Derive(Effect[R]):
    """Run `work`, slow code that releases the GIL (a password's hash); the outcome is what it
    returns. Coroutines run it in a thread, so that the event loop goes on meanwhile, unless
    `ready` says it would not wait (the hash is known): a worker of the loop's executor is not
    to be waited for while the store's lock is held."""

    work: Callable[[], R]
    ready: Callable[[], bool]


@dataclass(eq=False)
class Send(Effect["api.Reply"]):
    """Send a session call; the outcome is its reply."""

    call: api.Call


# --- the wait for the lock, a flow ----------------------------------------------------------------

log = logger()
# One INFO record per wait that lasts longer than a moment, on a logger of its own so that an
# application (the `koyeb-auth` command on a terminal) can show these without every INFO record.
wait_log = logger("koyeb_auth.wait")
A_MOMENT = 1.0

# Waiters poll the store lock. In async code a blocking flock() would stall the event loop, and a
# helper thread could still win the lock after its task was cancelled. Polls back off to this.
_MAX_POLL = 0.02
# When the store is watched (a stat of the cache file while it is unchanged), that is done on
# every poll, and the lock, which costs far more to try, is tried on the first poll and then every
# _LOCK_RETRY. With 32 waiting processes on 2 cores, that keeps the wait from being CPU-bound.
_LOCK_RETRY = 0.1


class Entry(Enum):
    """How an `enter` ended, when it did not see the store's token change (`Seen`)."""

    INSIDE = auto()  # the caller holds the turn and the store's lock until its flow ends
    BUSY = auto()  # someone else holds the turn or the lock, and the caller did not want to wait


@dataclass(frozen=True)
class Seen:
    """While waiting, the token became this one (None: the store lost its token)."""

    token: Token | None


@dataclass(frozen=True)
class Lock:
    """The token lock of `store`, and how long a caller waits for it."""

    store: TokenStore
    timeout: float

    @property
    def name(self) -> str:
        return f"the token lock of {self.store!r}"

    def timed_out(self) -> LockTimeoutError:
        return LockTimeoutError(
            f"Waited {self.timeout:g} s for {self.name}: another thread or process is still logging "
            "in. Check that the Koyeb API answers.", Hint.LOCK_TIMEOUT
        )


def enter(
    lock: Lock, deadline: float, *, block: bool = True, watch: bool = False, known: Token | None = None,
    mine: Callable[[], Token | None] | None = None,
) -> Flow[Entry | Seen]:
    """Take the turn, then the store's lock; LockTimeoutError at `deadline`.

    Entry.INSIDE: both are held until the flow ends. Entry.BUSY (not `block`): someone else holds
    one of them. Seen(token), holding nothing: while waiting (`watch`), the store's token stopped
    being `known`; or, with `mine` (the token this process holds), this process's token was no
    longer `known` when the caller's turn came: a caller queued behind the one that replaced it
    learns it without a store round trip. A wait that outlasts A_MOMENT is logged once (INFO on
    `koyeb_auth.wait`).
    """
    if not (yield from Queue(deadline, block)):
        if block:
            raise lock.timed_out()
        return Entry.BUSY
    known_value = known.value if known is not None else None
    if mine is not None and _value(moved := mine()) != known_value:
        yield from Unlock()
        return Seen(moved)
    outcome: Entry | Seen | None = None
    announce_at, next_try, delay = time.monotonic() + A_MOMENT, 0.0, 0.001
    while outcome is None:
        if time.monotonic() >= next_try:
            next_try = time.monotonic() + (_LOCK_RETRY if watch else 0.0)
            if (yield from TryLock()):
                return Entry.INSIDE
        if not block:
            outcome = Entry.BUSY
        elif watch and _value(stored := (yield from Look())) != known_value:
            outcome = Seen(stored)
        elif time.monotonic() >= deadline:
            yield from Unlock()
            raise lock.timed_out()
        else:
            if time.monotonic() >= announce_at:
                announce_at = float("inf")
                wait_log.info("Waiting for %s, up to %.0f s more: another thread or process is logging in "
                              "or refreshing", lock.name, max(deadline - time.monotonic(), 0.0))
            yield from Sleep(delay)
            delay = min(delay * 2, _MAX_POLL, max(deadline - time.monotonic(), 0.0))
    yield from Unlock()
    return outcome


def _value(token: Token | None) -> str | None:
    return token.value if token is not None else None


# --- the drivers ------------------------------------------------------------------------------------

@dataclass
class Held:
    """What a flow holds, for its driver to release: this process's turn (blocking code: the thread
    lock; async code: its loop's queue), the store's lock (async code: with the thread lock, taken
    with it), and what the driver notes on the way."""

    turn: bool = False
    queue: LoopQueue | RunQueue | None = None
    store: bool = False
    seen: int = 0  # the store failures counted when the caller queued (see Admission.check_store)
    sent: bool = False  # a session call has gone out
    scope: CancelScope | None = None  # off asyncio: shielded once a session call has gone out


@dataclass
class Driver:
    """Carries out the effects of the flows of one token: `key` in `store`, renewed through `session`."""

    store: TokenStore
    key: str
    session: SessionClient | None
    admission: Admission

    @cached_property
    def astore(self) -> AsyncTokenStore:
        return async_face(self.store)

    def run(self, flow: Flow[R], held: Held | None = None) -> R:
        """Carry out `flow`'s effects, blocking, and return what it returns. What it holds is released
        when it ends, unless the caller passes `held`: then the caller releases it (see `locked`)."""
        mine = held is None
        held = held or Held()
        try:
            effect = next(flow)
            while True:
                try:
                    self._carry_out(effect, held)
                except BaseException as exc:  # the flow decides, then what is held is released
                    effect = flow.throw(exc)
                else:
                    effect = next(flow)
        except StopIteration as stop:
            result: R = stop.value  # what the flow returned: an R, as its type says
            return result
        except StoreUnavailableError as exc:
            if held.store:
                self.admission.store_failed(exc)
            raise
        finally:
            flow.close()
            if mine:
                self.release(held)

    def _carry_out(self, effect: Effect[object], held: Held) -> None:  # noqa: PLR0912 - a branch per effect
        store, admission = self.store, self.admission
        if isinstance(effect, Load):
            effect.outcome = store.load(self.key)
        elif isinstance(effect, Send):
            held.sent = True
            assert self.session is not None, "a flow that sends runs on a driver with a session"
            effect.outcome = self.session.send(effect.call)
        elif isinstance(effect, Save):
            store.save(self.key, effect.token)
        elif isinstance(effect, Delete):
            store.delete(self.key)
        elif isinstance(effect, Queue):
            held.seen = admission.failures
            held.turn = effect.outcome = admission.take(
                max(effect.deadline - time.monotonic(), 0.0) if effect.block else None)
        elif isinstance(effect, TryLock | Look):
            if admission.failures != held.seen:
                admission.check_store(held.seen)
            try:
                if isinstance(effect, TryLock):
                    held.store = effect.outcome = store.try_lock()
                else:
                    effect.outcome = store.load(self.key)
            except StoreUnavailableError as exc:
                admission.store_failed(exc)
                raise
        elif isinstance(effect, Sleep):
            time.sleep(effect.seconds)
        elif isinstance(effect, Unlock):
            self.release(held)
        elif isinstance(effect, Derive):
            effect.outcome = effect.work()

    def release(self, held: Held) -> None:
        try:
            if held.store:
                held.store = False
                self.store.unlock()
        except TokenStoreError as exc:
            _unlock_failed(self.store, exc)
        finally:
            if held.turn:
                held.turn = False
                self.admission.give()

    async def arun(self, flow: Flow[R]) -> R:
        """`run` with awaits. Under asyncio, a flow whose caller is cancelled once it has sent a
        session call runs on in a task of its own until it has saved the result: a refresh the API
        carried out has revoked the old token, and the new one must not be lost. What it holds is
        released when the caller is cancelled, not when that task ends: a loop that is not run again
        (a `run_until_complete` given a `wait_for`) would otherwise hold the locks for good. Under
        trio, the caller's cancellation waits for such a flow to end."""
        held = Held()
        if not on_asyncio():
            import anyio  # noqa: PLC0415 - see pause

            # No task of its own there: once its call has gone out, the flow is shielded from the
            # caller's cancellation until it has saved what the API answered (the call's timeout
            # bounds that), and the caller is cancelled then.
            with anyio.CancelScope() as held.scope:
                return await self._arun(flow, held)
        task = asyncio.ensure_future(self._arun(flow, held))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if held.sent:
                _finishing.add(task)
                task.add_done_callback(_finished)
                # Peers may renew meanwhile: the late save only replaces a token with another valid one.
                await self._arelease(held)
            else:
                task.cancel()
                await asyncio.wait([task])  # released what it held, as the caller's cancellation expects
            raise

    async def _arun(self, flow: Flow[R], held: Held) -> R:
        try:
            effect = next(flow)
            while True:
                try:
                    await self._acarry_out(effect, held)
                except BaseException as exc:  # CancelledError too: the flow decides, then we release
                    effect = flow.throw(exc)
                else:
                    effect = next(flow)
        except StopIteration as stop:
            result: R = stop.value  # what the flow returned: an R, as its type says
            return result
        except StoreUnavailableError as exc:
            if held.store:
                self.admission.store_failed(exc)
            raise
        finally:
            flow.close()
            await self._arelease(held)

    async def _acarry_out(self, effect: Effect[object], held: Held) -> None:  # noqa: PLR0912 - a branch per effect
        astore, admission = self.astore, self.admission
        if isinstance(effect, Load):
            effect.outcome = await astore.aload(self.key)
        elif isinstance(effect, Send):
            if held.scope is not None:
                from anyio.lowlevel import checkpoint_if_cancelled  # noqa: PLC0415 - see pause

                # A cancellation that came while none could be taken (a hash derived in a thread,
                # which trio does not abandon) is taken now, before the call goes out: the shield
                # would hold it back until the flow ends, and send a call its caller gave up on.
                await checkpoint_if_cancelled()
                held.scope.shield = True
            held.sent = True
            assert self.session is not None, "a flow that sends runs on a driver with a session"
            effect.outcome = await self.session.asend(effect.call)
        elif isinstance(effect, Save):
            await astore.asave(self.key, effect.token)
        elif isinstance(effect, Delete):
            await astore.adelete(self.key)
        elif isinstance(effect, Queue):
            queue = admission.loop_queue()
            held.seen = admission.failures
            # Tasks of one loop queue here without polling; only the first polls the store's lock.
            effect.outcome = (effect.block or not queue.busy) and await queue.acquire(effect.deadline)
            held.queue = queue if effect.outcome else None
        elif isinstance(effect, TryLock):
            if admission.failures != held.seen:
                admission.check_store(held.seen)
            held.store = effect.outcome = await self._atry_lock()
        elif isinstance(effect, Look):
            if admission.failures != held.seen:
                admission.check_store(held.seen)
            try:
                effect.outcome = await astore.aload(self.key)
            except StoreUnavailableError as exc:
                admission.store_failed(exc)
                raise
        elif isinstance(effect, Sleep):
            await pause(effect.seconds)
        elif isinstance(effect, Unlock):
            await self._arelease(held)
        elif isinstance(effect, Derive):
            effect.outcome = effect.work() if effect.ready() else await in_thread(effect.work)

    async def _atry_lock(self) -> bool:
        # Threads of this process take the thread lock by blocking; tasks try it, so as never to
        # block the loop, and hold it with the store's lock.
        admission = self.admission
        if not admission.take(None):
            return False
        try:
            # Cancelled mid-call, a networked store may have granted the lock anyway: releasing
            # what a failed attempt may have taken is the store's job (see RedisTokenStore).
            entered = await self.astore.atry_lock()
        except BaseException as exc:
            admission.give()
            if isinstance(exc, StoreUnavailableError):
                admission.store_failed(exc)
            raise
        if not entered:
            admission.give()
        return entered

    async def _arelease(self, held: Held) -> None:
        try:
            if held.store:
                held.store = False
                try:
                    await self.astore.aunlock()
                except TokenStoreError as exc:
                    _unlock_failed(self.store, exc)
                finally:
                    self.admission.give()
        finally:
            if (queue := held.queue) is not None:
                held.queue = None
                queue.release()


def _unlock_failed(store: TokenStore, exc: TokenStoreError) -> None:
    # Whatever the flow produced stands; a lock we could not release ends with its lease.
    log.warning("Could not release the token lock of %r (%s); it ends when its lease runs out", store, exc)


# The flows finishing for a cancelled caller: the loop holds only weak references to its tasks.
_finishing: set[object] = set()


def _finished(task: asyncio.Future[R]) -> None:
    _finishing.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: the flow has logged and reported its failure; no one awaits it


@contextlib.contextmanager
def locked(store: TokenStore, lock_timeout: float) -> Iterator[None]:
    """Hold `store`'s token lock (this process's turn, then the store's) for the block, blocking:
    what every writer of the cache takes. LockTimeoutError after `lock_timeout` seconds."""
    driver = Driver(store, "", None, admission_for(store))
    held = Held()
    try:
        driver.run(enter(Lock(store, lock_timeout), time.monotonic() + lock_timeout), held)
        try:
            yield
        except StoreUnavailableError as exc:  # those queued behind fail too (Admission.check_store)
            driver.admission.store_failed(exc)
            raise
    finally:
        driver.release(held)
