"""The single-flight engine on its own: `TokenManager` and `Authorization` driven with scripted
outcomes, in milliseconds, with no socket, no process and no sleep in a test.

The API is an `httpx.MockTransport` whose replies each test scripts and whose calls it counts; the
store is `ScriptedStore` below (busy, failing, or holding a peer's token on cue, and recording every
call); the wall and monotonic clocks are injected (`Clock`), so expiry and backoff move only when a
test moves them. Only the lock waits run on the real monotonic clock (`enter`'s deadlines), with
short `lock_timeout`s, except where a test drives `enter` by hand on a clock of its own.

The rules of docs/how-it-works.md covered here, in its order:

- Memory first: construction does no I/O; a fresh token costs no store and no network call; a
  process with no token adopts the store's without taking the lock.
- Refresh window: due at `min(refresh_margin, lifetime / 2)` before expiry (a 1-hour and a 2-minute
  token), never every call; under a second left (a tenth of a short lifetime) counts as expired,
  and an expired token is never sent nor refreshed: a login replaces it.
- One caller renews: with a due token, one thread refreshes and the others go on with the valid
  one without waiting; a busy store (a peer refreshing) returns the valid token at once and is
  looked at again only after PEER_REFRESH_POLL; a failed refresh keeps the token (logged) and is
  tried again after RETRY_AFTER_FAILURE, not per call, and never past its expiry; a token that
  expires while its caller tries the lock is neither returned nor refreshed; without a valid
  token, threads and asyncio tasks wait for the one login; the store is re-read under the lock
  and a peer's token adopted with no network call; a caller waiting for a peer's lock adopts the
  token the peer saves; lock_timeout bounds the wait (a peer's lock, or a thread of the process).
- The wait for the lock (`enter`, driven by hand, effect by effect, on a clock its `Sleep`s move):
  this process's turn first, then the store's lock; polls back off to _MAX_POLL, the lock tried
  every _LOCK_RETRY while the store is watched; one deadline, never slept past; one wait log
  after A_MOMENT; a caller that does not wait is BUSY at the first lock it finds held; a waiter
  stops when the store's token changes, or, its turn come, when its process already replaced it.
- The drivers release what a flow holds whatever ends it: callers queued behind one that found
  the store unavailable fail without trying it; a task cancelled while waiting leaves nothing
  held; one cancelled with its login in flight releases the locks at once and the login is saved.
- 401: a token the store already replaced is adopted with no network call (threads and tasks);
  callers refused together cause one renewal and one store read (threads and tasks); a peer's
  token that is due is refreshed rather than retried with (after a resend too); a refused refresh
  falls back to a login; a resend refused after a peer renewed is sent again with the peer's
  token, at most MAX_RESENDS times; a renewed token refused again with nobody replacing it is
  suspect for SUSPECT_INTERVAL; `Token rejected` is never renewed; a 401 counts only for the
  token the request carried to the API's origin; a failed renewal is raised, reported and backed off.
- Backoff (`_manager.Backoff`): no tight loop after a failure; doubling with jitter, capped at
  MAX_DELAY; a 429's reset honoured and capped at an hour; a stepped wall clock neither stretches nor cuts it,
  while expiry follows the wall clock.
- Withdrawn endpoints: a withdrawn refresh or organization switch costs one call, and peers that
  adopt the token skip it too.
- A store that cannot be read is a failure like any other; a token that cannot be saved is kept
  in memory; `save` and `delete` come only with the lock held, and every lock is released
  (checked after every test).
- Logout calls the endpoint with the token and deletes it (a withdrawn logout still deletes).
- Events: obtained, refreshed, rejected, failed (kept or raised), per outcome.

Not here, because they need a socket, a file or a process: the cache and lock files, fork,
pickling, redirects and body replay (the adapters' side of the 401 rule); see test_store.py,
test_concurrency.py, test_pickle.py and test_clients.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import random
import threading
import time
import uuid
import warnings
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from koyeb_auth import Token, _sources
from koyeb_auth._authorization import MAX_RESENDS, Authorization
from koyeb_auth._engine import Effect, Entry, Flow, Lock, Look, Queue, Seen, Sleep, TryLock, enter
from koyeb_auth._manager import (
    MAX_DELAY,
    PEER_REFRESH_POLL,
    RETRY_AFTER_FAILURE,
    SUSPECT_INTERVAL,
    Timing,
    TokenManager,
)
from koyeb_auth._origin import Origin
from koyeb_auth._session_api import MAX_RETRY_AFTER
from koyeb_auth._sources import OrganizationToken, PasswordLogin, Source
from koyeb_auth._token import format_timestamp
from koyeb_auth._transport import Network
from koyeb_auth.cli._state import LastLogin
from koyeb_auth.errors import (
    APIError,
    InvalidCredentialsError,
    LockTimeoutError,
    RateLimitedError,
    StoreUnavailableError,
    TokenStoreError,
)
from koyeb_auth.events import TokenEvent

API_URL = "https://koyeb.test"
T0 = 1_700_000_000.0  # the wall clock at the start of each test
M0 = 5_000.0  # the monotonic clock at the start of each test
HOUR = 3600.0
MARGIN = 300.0
JOIN = 10.0  # seconds a thread or a scripted hold may take before the test gives up on it
UNAUTHENTICATED = b'{"code": "unauthenticated", "message": "Unauthorized"}'
TOKEN_REJECTED = b'{"code": "unauthenticated", "message": "Token rejected"}'


# --- the scripted world ---------------------------------------------------------------------------


class Clock:
    """The wall clock (expiries) and the monotonic one (intervals), moved only by the test."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = M0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@dataclass(frozen=True)
class Sent:
    action: str
    bearer: str | None  # the token the call carried


Reply = Callable[[], httpx.Response]


def koyeb_error(status: int, message: str = "Scripted failure", **headers: str) -> Reply:
    return lambda: httpx.Response(status, json={"code": "scripted", "message": message}, headers=headers)


GONE = koyeb_error(404, "Not Found")


class ScriptedAPI:
    """The session endpoints: each call answers the next reply scripted for its action, else a new token."""

    def __init__(self, clock: Clock, ttl: float = HOUR) -> None:
        self.clock = clock
        self.ttl = ttl
        self.sent: list[Sent] = []
        self.script: defaultdict[str, deque[Reply]] = defaultdict(deque)
        self.numbers = itertools.count(1)
        self.entered = threading.Event()  # set by the first call
        self.hold: threading.Event | None = None  # when set, calls wait for it (a call in flight)
        self.ahold: asyncio.Event | None = None  # the same for async calls

    @contextlib.contextmanager
    def calls_held(self) -> Iterator[threading.Event]:
        """Session calls wait (in flight) until the event is set, or the block ends, failed or not."""
        self.hold = threading.Event()
        try:
            yield self.hold
        finally:
            self.hold.set()

    @contextlib.asynccontextmanager
    async def acalls_held(self) -> AsyncIterator[asyncio.Event]:
        """`calls_held` for async calls; the block returns once a call is in flight."""
        self.ahold = asyncio.Event()
        try:
            deadline = time.monotonic() + JOIN
            while not self.sent:
                assert time.monotonic() < deadline, "no session call was made"
                await asyncio.sleep(0)
            for _ in range(20):  # the other tasks run up to their wait
                await asyncio.sleep(0)
            yield self.ahold
        finally:
            self.ahold.set()

    def then(self, action: str, *replies: Reply) -> None:
        self.script[action].extend(replies)

    def actions(self) -> list[str]:
        return [sent.action for sent in self.sent]

    def handle(self, request: httpx.Request) -> httpx.Response:
        reply = self._record(request)
        if self.hold is not None:
            assert self.hold.wait(JOIN)
        return reply()

    async def ahandle(self, request: httpx.Request) -> httpx.Response:
        reply = self._record(request)
        if self.ahold is not None:
            await asyncio.wait_for(self.ahold.wait(), JOIN)
        return reply()

    def _record(self, request: httpx.Request) -> Reply:
        action = _action(request)
        bearer = request.headers.get("authorization")
        self.sent.append(Sent(action, bearer.removeprefix("Bearer ") if bearer else None))
        self.entered.set()
        queue = self.script[action]
        return queue.popleft() if queue else lambda: self._issue(action)

    def _issue(self, action: str) -> httpx.Response:
        if action == "logout":
            return httpx.Response(200, json={})
        value = f"tok-{next(self.numbers)}"
        if action == "access_token":
            return httpx.Response(200, json={"token": value})
        return httpx.Response(200, json={"token": {"id": value, "expires_at": format_timestamp(self.clock.wall
                                                                                              + self.ttl)}})


def _action(request: httpx.Request) -> str:
    path = request.url.path
    for suffix, action in (("/login", "login"), ("/refresh", "refresh"), ("/logout", "logout"),
                           ("/switch", "switch"), ("/access_token", "access_token")):
        if path.endswith(suffix):
            return action
    raise AssertionError(f"not a session endpoint: {request.method} {path}")


class ScriptedStore:
    """A TokenStore for one account that records its calls, and can be busy (a peer holds the
    lock), fail, or have a peer's token appear just before its n-th call of some kind."""

    def __init__(self) -> None:
        self.token: Token | None = None
        self.calls: list[str] = []
        self.busy = False
        self.load_error: type[TokenStoreError] | None = None
        self.save_error: type[TokenStoreError] | None = None
        self.before: dict[tuple[str, int], Callable[[], None]] = {}  # (call, n): what a peer does first
        self.writes_without_lock = 0
        self.keys: set[str] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return "ScriptedStore()"

    def count(self, call: str) -> int:
        return self.calls.count(call)

    @property
    def locked(self) -> bool:
        return self._lock.locked()

    def _call(self, name: str, key: str | None = None) -> None:
        self.calls.append(name)
        if key is not None:
            self.keys.add(key)
        if (peer := self.before.pop((name, self.count(name)), None)) is not None:
            peer()

    def load(self, key: str) -> Token | None:
        self._call("load", key)
        if self.load_error is not None:
            raise self.load_error("scripted: the store does not answer")
        return self.token

    def save(self, key: str, token: Token) -> None:
        self._call("save", key)
        self.writes_without_lock += not self._lock.locked()
        if self.save_error is not None:
            raise self.save_error("scripted: the store cannot be written")
        self.token = token

    def delete(self, key: str) -> None:
        self._call("delete", key)
        self.writes_without_lock += not self._lock.locked()
        self.token = None

    def try_lock(self) -> bool:
        self._call("try_lock")
        return not self.busy and self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        self._call("unlock")
        self._lock.release()


@dataclass
class Rig:
    clock: Clock
    api: ScriptedAPI
    store: ScriptedStore
    manager: TokenManager
    source: Source
    events: list[TokenEvent] = field(default_factory=list)

    def token(self, value: str, *, ttl: float = HOUR, age: float = 0.0,
              withdrawn: frozenset[str] = frozenset()) -> Token:
        """A token of the rig's source (a peer's), obtained `age` seconds ago, valid `ttl` seconds from then."""
        obtained = self.clock.wall - age
        return self.source.opened(Token(value, obtained_at=obtained, expires_at=obtained + ttl, withdrawn=withdrawn))

    def holding(self, value: str, *, ttl: float = HOUR, due: bool = False) -> Token:
        """The manager holds this token in memory (adopted from the store), and the store too;
        `due`: the clocks have since moved into its refresh window (100 s left)."""
        token = self.store.token = self.token(value, ttl=ttl)
        assert self.manager.get_token() is token
        if due:
            self.clock.advance(ttl - 100)
        self.api.sent.clear()
        self.store.calls.clear()
        return token

    def kinds(self) -> list[tuple[str, str | None, bool]]:
        return [(event.kind, event.action, event.kept) for event in self.events]


PASSWORD_LOGIN = PasswordLogin(API_URL, "ops@example.com", "scripted-password")


def make_rig(source: Source = PASSWORD_LOGIN, *, lock_timeout: float = JOIN, ttl: float = HOUR,
             store: ScriptedStore | None = None, clock: Clock | None = None, api: ScriptedAPI | None = None) -> Rig:
    clock = clock or Clock()
    api = api or ScriptedAPI(clock, ttl)
    store = store or ScriptedStore()
    network = Network(transport=httpx.MockTransport(api.handle), async_transport=httpx.MockTransport(api.ahandle))
    events: list[TokenEvent] = []
    manager = TokenManager(source, store, Timing(MARGIN, timeout=JOIN, lock_timeout=lock_timeout), network,
                           clock=clock.time, monotonic=clock.monotonic, on_event=events.append)
    return Rig(clock, api, store, manager, source, events)


@pytest.fixture
def rig() -> Iterator[Rig]:
    made = make_rig()
    yield made
    assert not made.store.locked, "a flow left the store's lock held"
    assert made.store.writes_without_lock == 0, "save or delete was called without the lock"
    assert len(made.store.keys) <= 1


@pytest.fixture
def jitter_at_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backoff's jitter picks the longest wait it can, so a test knows when it ends."""
    monkeypatch.setattr(random, "uniform", lambda low, high: high)


def in_threads(count: int, call: Callable[[], Token | None]) -> list[Token | None]:
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(call) for _ in range(count)]
        return [future.result(JOIN) for future in futures]


def refused(authorization: Authorization) -> bool:
    return authorization.refused(401, f"{API_URL}/v1/apps", authorization.header)


# --- memory first ---------------------------------------------------------------------------------


def test_construction_does_no_io(rig: Rig) -> None:
    assert rig.manager.peek() is None
    assert (rig.store.calls, rig.api.sent, rig.events) == ([], [], [])


def test_a_fresh_token_is_served_from_memory_with_no_store_or_network_call(rig: Rig) -> None:
    token = rig.manager.get_token()
    assert rig.api.actions() == ["login"]
    rig.store.calls.clear()
    rig.clock.advance(HOUR - MARGIN - 1)  # the last second before the refresh window
    assert {rig.manager.get_token() for _ in range(1000)} == {token}
    assert asyncio.run(rig.manager.aget_token()) is token
    assert rig.manager.peek() is token
    assert (rig.store.calls, rig.api.actions()) == ([], ["login"])


def test_a_process_without_a_token_adopts_the_stores_without_taking_the_lock(rig: Rig) -> None:
    peer = rig.store.token = rig.token("peer")
    assert rig.manager.get_token() is peer
    assert (rig.store.calls, rig.api.sent) == (["load"], [])


# --- the refresh window -----------------------------------------------------------------------------


@pytest.mark.parametrize(("ttl", "due_after"), [(HOUR, HOUR - MARGIN), (120.0, 60.0)], ids=["1h", "2min"])
def test_a_token_falls_due_at_the_smaller_of_the_margin_and_half_its_lifetime(ttl: float, due_after: float) -> None:
    rig = make_rig(ttl=ttl)
    first = rig.manager.get_token()
    rig.clock.advance(due_after - 0.5)
    assert rig.manager.get_token() is first
    assert rig.api.actions() == ["login"]
    rig.clock.advance(1.0)
    renewed = rig.manager.get_token()
    assert renewed != first
    assert rig.api.sent[1:] == [Sent("refresh", first.value)]
    assert {rig.manager.get_token() for _ in range(100)} == {renewed}  # not every call
    assert rig.api.actions() == ["login", "refresh"]


@pytest.mark.parametrize(("ttl", "left"), [(HOUR, 0.9), (5.0, 0.4)], ids=["1h-under-a-second", "5s-under-a-tenth"])
def test_a_token_about_to_expire_is_never_sent_nor_refreshed_a_login_replaces_it(rig: Rig, ttl: float,
                                                                                 left: float) -> None:
    old = rig.holding("old", ttl=ttl)
    rig.clock.advance(ttl - left)
    assert rig.manager.peek() is None
    assert rig.manager.get_token().value == "tok-1"
    assert rig.api.sent == [Sent("login", None)]  # a refresh would have sent the expiring token
    assert old.value not in {sent.bearer for sent in rig.api.sent}


# --- one caller renews ------------------------------------------------------------------------------


def test_with_a_due_token_one_thread_refreshes_and_the_others_go_on_without_waiting(rig: Rig) -> None:
    due = rig.holding("due", due=True)
    with ThreadPoolExecutor(1) as refresher, rig.api.calls_held() as hold:
        refreshing = refresher.submit(rig.manager.get_token)
        assert rig.api.entered.wait(JOIN)
        # While the refresh is in flight (held), the others get the valid token at once.
        assert in_threads(6, rig.manager.get_token) == [due] * 6
        assert not refreshing.done()
        hold.set()
        renewed = refreshing.result(JOIN)
    assert renewed.value == "tok-1"
    assert rig.api.sent == [Sent("refresh", "due")]
    assert rig.store.count("try_lock") == 1  # the others did not even try the store's lock
    assert rig.manager.get_token() is renewed


def test_a_busy_store_returns_the_valid_token_at_once_and_is_looked_at_again_after_the_poll(rig: Rig) -> None:
    due = rig.holding("due", due=True)
    rig.store.busy = True  # a peer process holds the lock: it is refreshing
    assert [rig.manager.get_token() for _ in range(50)] == [due] * 50
    assert (rig.store.calls, rig.api.sent) == (["try_lock"], [])
    rig.clock.mono += PEER_REFRESH_POLL
    assert rig.manager.get_token() is due
    assert rig.store.calls == ["try_lock", "try_lock"]
    rig.store.busy = False
    rig.clock.mono += PEER_REFRESH_POLL
    assert rig.manager.get_token().value == "tok-1"
    assert rig.api.sent == [Sent("refresh", "due")]


def test_a_failed_refresh_keeps_the_valid_token_and_is_retried_after_a_while_not_per_call(
    rig: Rig, jitter_at_ceiling: None
) -> None:
    due = rig.holding("due", due=True)
    rig.api.then("refresh", koyeb_error(503))
    assert [rig.manager.get_token() for _ in range(50)] == [due] * 50
    assert rig.api.actions() == ["refresh"]
    assert rig.kinds() == [("failed", None, True)]
    rig.clock.mono += RETRY_AFTER_FAILURE - 0.01
    assert rig.manager.get_token() is due
    assert rig.api.actions() == ["refresh"]
    rig.clock.mono += 0.02
    assert rig.manager.get_token().value == "tok-1"
    assert rig.api.actions() == ["refresh", "refresh"]


def test_an_unreachable_store_during_a_refresh_keeps_the_token_and_is_not_tried_per_call(rig: Rig) -> None:
    due = rig.holding("due", due=True)
    rig.store.load_error = StoreUnavailableError
    assert [rig.manager.get_token() for _ in range(50)] == [due] * 50
    assert rig.store.calls == ["try_lock", "load", "unlock"]  # one attempt, not fifty
    assert [(event.kind, event.kept, type(event.error)) for event in rig.events] == [
        ("failed", True, StoreUnavailableError)]
    rig.store.load_error = None
    rig.clock.mono += RETRY_AFTER_FAILURE
    assert rig.manager.get_token().value == "tok-1"
    assert rig.api.actions() == ["refresh"]


def test_a_kept_token_is_never_returned_once_it_has_expired(rig: Rig) -> None:
    rig.holding("due", due=True)
    rig.api.then("refresh", koyeb_error(503))
    rig.api.then("login", koyeb_error(503))
    assert rig.manager.get_token().value == "due"
    rig.clock.advance(100)  # expired; the backoff (at most a second) is over too
    with pytest.raises(APIError):
        rig.manager.get_token()
    assert rig.api.actions() == ["refresh", "login"]


def test_without_a_valid_token_threads_wait_for_the_one_login(rig: Rig) -> None:
    rig.holding("old")
    rig.clock.advance(HOUR)
    with ThreadPoolExecutor(8) as pool, rig.api.calls_held() as hold:
        futures = [pool.submit(rig.manager.get_token) for _ in range(8)]
        assert rig.api.entered.wait(JOIN)
        assert not any(future.done() for future in futures)  # nobody got the expired token
        hold.set()
        tokens = {future.result(JOIN) for future in futures}
    assert [token.value for token in tokens] == ["tok-1"]
    assert rig.api.sent == [Sent("login", None)]


def test_asyncio_tasks_without_a_token_wait_for_the_one_login(rig: Rig) -> None:
    async def main() -> set[Token]:
        tasks = [asyncio.create_task(rig.manager.aget_token()) for _ in range(20)]
        async with rig.api.acalls_held():
            assert not any(task.done() for task in tasks)
        return set(await asyncio.gather(*tasks))

    assert [token.value for token in asyncio.run(main())] == ["tok-1"]
    assert rig.api.actions() == ["login"]


@pytest.mark.parametrize("memory", ["due", "none"])
def test_a_peers_token_found_under_the_lock_is_adopted_with_no_network_call(rig: Rig, memory: str) -> None:
    if memory == "due":
        rig.holding("due", due=True)
    peer = rig.token("peer")
    # The peer saved its token after this process last looked, just before it got the lock.
    rig.store.before[("try_lock", 1)] = lambda: setattr(rig.store, "token", peer)
    assert rig.manager.get_token() is peer
    assert rig.api.sent == []
    assert rig.store.calls[-3:] == ["try_lock", "load", "unlock"]
    assert rig.manager.peek() is peer


def test_a_token_that_expires_while_its_caller_tries_the_lock_is_not_refreshed_but_waited_for(rig: Rig) -> None:
    rig.holding("due", due=True)
    rig.store.busy = True
    # A slow store: the first attempt at the lock takes the token past its expiry, and fails.
    rig.store.before[("try_lock", 1)] = lambda: rig.clock.advance(100)
    rig.store.before[("try_lock", 2)] = lambda: setattr(rig.store, "busy", False)
    assert rig.manager.get_token().value == "tok-1"
    assert rig.api.sent == [Sent("login", None)]  # the expired token was neither returned nor sent


def test_a_caller_waiting_for_a_peers_lock_adopts_the_token_the_peer_saves(rig: Rig) -> None:
    rig.store.busy = True
    peer = rig.token("peer")
    rig.store.before[("load", 3)] = lambda: setattr(rig.store, "token", peer)  # the peer is done
    assert rig.manager.get_token() is peer
    assert rig.api.sent == []
    assert rig.store.count("load") == 3


def test_lock_timeout_bounds_the_wait_for_a_peers_lock() -> None:
    rig = make_rig(lock_timeout=0.05)
    rig.store.busy = True  # a peer holds the lock and never saves
    started = time.monotonic()
    with pytest.raises(LockTimeoutError):
        rig.manager.get_token()
    assert 0.05 <= time.monotonic() - started < JOIN
    assert rig.api.sent == []
    assert [(event.kind, type(event.error)) for event in rig.events] == [("failed", LockTimeoutError)]


def test_lock_timeout_bounds_the_wait_behind_a_thread_of_the_process() -> None:
    rig = make_rig(lock_timeout=0.05)
    with ThreadPoolExecutor(1) as pool, rig.api.calls_held() as hold:
        logging_in = pool.submit(rig.manager.get_token)
        assert rig.api.entered.wait(JOIN)
        with pytest.raises(LockTimeoutError):
            rig.manager.get_token()
        hold.set()
        assert logging_in.result(JOIN).value == "tok-1"
    assert rig.api.actions() == ["login"]


# --- the wait for the lock: `enter`'s effects, driven by hand ---------------------------------------


class ByHand:
    """Drives a flow without a driver: each effect's outcome from `outcomes` (by effect type), and a
    monotonic clock (patched in) that only the flow's `Sleep`s move."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, outcomes: dict[type, object]) -> None:
        self.now = M0
        self.outcomes = outcomes
        self.effects: list[Effect[object]] = []
        monkeypatch.setattr(time, "monotonic", lambda: self.now)

    def run(self, flow: Flow[Entry | Seen]) -> Entry | Seen:
        try:
            effect = next(flow)
            while True:
                self.effects.append(effect)
                if isinstance(effect, Sleep):
                    self.now += effect.seconds
                effect.outcome = self.outcomes.get(type(effect))
                effect = next(flow)
        except StopIteration as stop:
            entry: Entry | Seen = stop.value
            return entry

    def kinds(self) -> list[str]:
        return [type(effect).__name__ for effect in self.effects]

    def count(self, kind: type) -> int:
        return sum(isinstance(effect, kind) for effect in self.effects)


LOCK = Lock(ScriptedStore(), 2.0)


@pytest.mark.parametrize("watch", [True, False], ids=["watching-the-store", "lock-only"])
def test_the_wait_takes_the_turn_first_then_polls_the_store_backing_off_until_its_deadline(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, watch: bool
) -> None:
    by_hand = ByHand(monkeypatch, {Queue: True, TryLock: False, Look: None})
    with caplog.at_level(logging.INFO, "koyeb_auth.wait"), pytest.raises(LockTimeoutError):
        by_hand.run(enter(LOCK, by_hand.now + 2.0, watch=watch))
    kinds = by_hand.kinds()
    assert kinds[:3] == ["Queue", "TryLock", "Look" if watch else "Sleep"]  # this process's turn first
    assert kinds[-1] == "Unlock"  # the turn is given back before the LockTimeoutError
    sleeps = [effect.seconds for effect in by_hand.effects if isinstance(effect, Sleep)]
    assert sleeps[:6] == pytest.approx([0.001, 0.002, 0.004, 0.008, 0.016, 0.02])
    assert max(sleeps) == pytest.approx(0.02)
    assert sum(sleeps) == pytest.approx(2.0)  # the deadline, never slept past
    if watch:  # the cheap look on every poll, the lock every _LOCK_RETRY (0.1 s): 20 in 2 s
        assert by_hand.count(Look) == len(sleeps) + 1 and 19 <= by_hand.count(TryLock) <= 21
    else:
        assert by_hand.count(TryLock) == len(sleeps) + 1
    waits = [record.getMessage() for record in caplog.records if record.name == "koyeb_auth.wait"]
    assert len(waits) == 1 and "ScriptedStore()" in waits[0]  # once, after A_MOMENT


def test_a_caller_that_does_not_wait_is_busy_at_the_first_lock_it_finds_held(monkeypatch: pytest.MonkeyPatch) -> None:
    turn_taken = ByHand(monkeypatch, {Queue: False})
    assert turn_taken.run(enter(LOCK, turn_taken.now + 2.0, block=False, watch=True)) is Entry.BUSY
    assert turn_taken.kinds() == ["Queue"]
    store_locked = ByHand(monkeypatch, {Queue: True, TryLock: False})
    assert store_locked.run(enter(LOCK, store_locked.now + 2.0, block=False, watch=True)) is Entry.BUSY
    assert store_locked.kinds() == ["Queue", "TryLock", "Unlock"]


def test_a_blocking_caller_whose_turn_does_not_come_times_out_holding_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    by_hand = ByHand(monkeypatch, {Queue: False})
    with pytest.raises(LockTimeoutError):
        by_hand.run(enter(LOCK, by_hand.now + 2.0))
    assert by_hand.kinds() == ["Queue"]


def test_a_waiter_that_sees_the_stores_token_change_stops_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    peer = Token("peer", obtained_at=T0, expires_at=T0 + HOUR)
    by_hand = ByHand(monkeypatch, {Queue: True, TryLock: False, Look: peer})
    known = Token("known", obtained_at=T0, expires_at=T0 + HOUR)
    assert by_hand.run(enter(LOCK, by_hand.now + 2.0, watch=True, known=known)) == Seen(peer)
    assert by_hand.kinds() == ["Queue", "TryLock", "Look", "Unlock"]


def test_a_caller_whose_turn_comes_after_its_process_replaced_the_token_learns_it_with_no_store_call(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    replaced = Token("replaced", obtained_at=T0, expires_at=T0 + HOUR)
    renewed = Token("renewed", obtained_at=T0, expires_at=T0 + HOUR)
    by_hand = ByHand(monkeypatch, {Queue: True})
    assert by_hand.run(enter(LOCK, by_hand.now + 2.0, known=replaced, mine=lambda: renewed)) == Seen(renewed)
    assert by_hand.kinds() == ["Queue", "Unlock"]
    unchanged = ByHand(monkeypatch, {Queue: True, TryLock: True})
    assert unchanged.run(enter(LOCK, unchanged.now + 2.0, known=replaced, mine=lambda: replaced)) is Entry.INSIDE
    assert unchanged.kinds() == ["Queue", "TryLock"]


# --- the drivers: what a flow holds is released, whatever ends it -----------------------------------


def test_callers_queued_behind_one_that_found_the_store_unavailable_fail_without_trying_it() -> None:
    rig = make_rig()
    rig.store.busy = True  # a peer process holds the lock: the first task polls it, the second queues
    # The first task's second look at the store (the 4th load) finds it gone.
    rig.store.before[("load", 4)] = lambda: setattr(rig.store, "load_error", StoreUnavailableError)

    async def main() -> list[Token | BaseException]:
        tasks = [asyncio.create_task(rig.manager.aget_token()) for _ in range(2)]
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(outcome) for outcome in outcomes] == [StoreUnavailableError] * 2
    # After the failing look, the second task did not call the store: it got the first one's error.
    assert (rig.store.count("load"), rig.store.calls[-1]) == (4, "load")
    assert not rig.store.locked


def test_a_caller_cancelled_while_waiting_for_the_lock_leaves_nothing_held() -> None:
    rig = make_rig(lock_timeout=1.0)
    rig.store.busy = True

    async def main() -> Token:
        caller = asyncio.create_task(rig.manager.aget_token())
        while rig.store.count("try_lock") == 0:
            await asyncio.sleep(0)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        rig.store.busy = False
        return await rig.manager.aget_token()  # the turn is free: no LockTimeoutError

    assert asyncio.run(main()).value == "tok-1"
    assert not rig.store.locked and rig.api.actions() == ["login"]


def test_a_caller_cancelled_while_its_login_is_in_flight_releases_the_locks_and_the_login_is_saved() -> None:
    rig = make_rig()

    async def main() -> None:
        caller = asyncio.create_task(rig.manager.aget_token())
        async with rig.api.acalls_held():
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            assert not rig.store.locked  # released at the cancel, not when the login ends
        for _ in range(1000):  # the login finishes in a task of its own
            if rig.store.token is not None:
                break
            await asyncio.sleep(0)

    asyncio.run(main())
    assert rig.store.token is not None and rig.store.token.value == "tok-1"
    assert rig.manager.peek() == rig.store.token
    assert rig.api.actions() == ["login"]


# --- 401 --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("driver", ["threads", "asyncio"])
def test_a_401_with_a_token_the_store_already_replaced_adopts_it_with_no_network_call(rig: Rig, driver: str) -> None:
    refused_token = rig.holding("refused")
    peer = rig.store.token = rig.token("peer")
    if driver == "threads":
        assert rig.manager.renew_rejected(refused_token) is peer
    else:
        assert asyncio.run(rig.manager.arenew_rejected(refused_token)) is peer
    assert rig.api.sent == []
    assert rig.manager.peek() is peer
    assert rig.events == []


def test_threads_refused_together_cause_one_renewal_and_one_store_read(rig: Rig) -> None:
    refused_token = rig.holding("refused")
    renewed = in_threads(8, lambda: rig.manager.renew_rejected(refused_token))
    assert {token.value for token in renewed if token} == {"tok-1"} and None not in renewed
    assert rig.api.sent == [Sent("refresh", "refused")]
    assert Counter(rig.store.calls) == {"try_lock": 1, "load": 1, "save": 1, "unlock": 1}


def test_tasks_refused_together_cause_one_renewal(rig: Rig) -> None:
    refused_token = rig.holding("refused")

    async def main() -> list[Token | None]:
        tasks = [asyncio.create_task(rig.manager.arenew_rejected(refused_token)) for _ in range(8)]
        async with rig.api.acalls_held():
            assert not any(task.done() for task in tasks)  # they wait for the one renewal
        return await asyncio.gather(*tasks)

    renewed = asyncio.run(main())
    assert {token.value for token in renewed if token} == {"tok-1"} and None not in renewed
    assert rig.api.sent == [Sent("refresh", "refused")]
    assert rig.store.count("load") == 1


def test_a_refused_refresh_falls_back_to_a_login(rig: Rig) -> None:
    refused_token = rig.holding("refused")
    rig.api.then("refresh", koyeb_error(401))
    renewed = rig.manager.renew_rejected(refused_token)
    assert renewed is not None and renewed.value == "tok-1"
    assert rig.api.sent == [Sent("refresh", "refused"), Sent("login", None)]
    assert rig.kinds() == [("rejected", None, False), ("obtained", "login", False)]


@pytest.mark.parametrize("resent", [False, True], ids=["first-401", "401-to-a-resend"])
def test_a_401_renews_a_peers_due_token_rather_than_retrying_with_it(rig: Rig, resent: bool) -> None:
    refused_token = rig.holding("refused")
    # A peer's, already due: retrying with it would race its refresh, which revokes it. For a resend,
    # the peer's renewal explains the 401: not a reason to suspect the token.
    rig.store.token = rig.token("peer", age=HOUR - 100)
    renewed = rig.manager.renew_rejected(refused_token, resent=resent)
    assert renewed is not None and renewed.value == "tok-1"
    assert rig.api.sent == [Sent("refresh", "peer")]


def test_a_resend_refused_after_a_peer_renewed_is_sent_again_up_to_max_resends(rig: Rig) -> None:
    authorization = Authorization(rig.holding("first"), rig.manager, Origin(API_URL))
    sends = 0
    while True:
        sends += 1  # the request goes out with authorization.token, and gets a 401...
        rig.store.token = rig.token(f"peer-{sends}")  # ...because a peer's refresh revoked it meanwhile
        if not refused(authorization):
            break
        renewed = authorization.renew(UNAUTHENTICATED)
        assert renewed is not None and renewed.token.value == f"peer-{sends}"
        authorization = renewed
    assert sends == 1 + 3 == 1 + MAX_RESENDS
    assert rig.api.sent == []
    # The last token is now suspect: the next request refused with it gets its 401 back as is.
    rig.store.token = authorization.token
    assert rig.manager.renew_rejected(authorization.token) is None
    assert rig.api.sent == []


def test_a_renewed_token_refused_again_with_nobody_replacing_it_is_suspect_for_a_while(rig: Rig) -> None:
    first = Authorization(rig.holding("first"), rig.manager, Origin(API_URL))
    assert refused(first)
    resend = first.renew(UNAUTHENTICATED)
    assert resend is not None and resend.token.value == "tok-1"
    assert refused(resend)
    assert resend.renew(UNAUTHENTICATED) is None  # the 401 is not about the token
    assert rig.api.actions() == ["refresh"]
    rig.clock.wall += 60  # a stepped wall clock does not end the suspicion: it runs on the monotonic one
    rig.clock.mono += SUSPECT_INTERVAL - 0.01
    for _ in range(20):  # later requests refused with it: no renewal each
        assert rig.manager.renew_rejected(resend.token) is None
    assert rig.api.actions() == ["refresh"]
    rig.clock.mono += 0.02
    renewed = rig.manager.renew_rejected(resend.token)
    assert renewed is not None and renewed.value == "tok-2"
    assert rig.api.actions() == ["refresh", "refresh"]


def test_token_rejected_is_never_renewed(rig: Rig) -> None:
    authorization = Authorization(rig.holding("current"), rig.manager, Origin(API_URL))
    assert refused(authorization)
    assert authorization.renew(TOKEN_REJECTED) is None
    assert asyncio.run(authorization.arenew(TOKEN_REJECTED)) is None
    assert (rig.api.sent, rig.store.calls, rig.events) == ([], [], [])


@pytest.mark.parametrize(("status", "url", "carried"), [
    (401, "https://elsewhere.test/v1/apps", "current"),  # redirected to another origin
    (401, "http://koyeb.test/v1/apps", "current"),  # another scheme
    (401, f"{API_URL}/v1/apps", "other"),  # the request carried another token
    (403, f"{API_URL}/v1/apps", "current"),
])
def test_a_401_counts_only_for_the_token_the_request_carried_to_the_api(rig: Rig, status: int, url: str,
                                                                         carried: str) -> None:
    authorization = Authorization(rig.holding("current"), rig.manager, Origin(API_URL))
    assert not authorization.refused(status, url, f"Bearer {carried}")
    assert authorization.refused(401, f"{API_URL}/v1/apps", "Bearer current")


def test_a_failed_renewal_after_a_401_is_raised_and_reported(rig: Rig, jitter_at_ceiling: None) -> None:
    refused_token = rig.holding("refused")
    rig.api.then("refresh", koyeb_error(401))
    rig.api.then("login", koyeb_error(401))
    with pytest.raises(InvalidCredentialsError):
        rig.manager.renew_rejected(refused_token)
    assert rig.kinds() == [("rejected", None, False), ("failed", None, False)]
    with pytest.raises(InvalidCredentialsError):  # the backoff: the same answer with no call
        rig.manager.renew_rejected(refused_token)
    assert rig.api.actions() == ["refresh", "login"]


# --- backoff ----------------------------------------------------------------------------------------


def test_a_failed_login_is_not_retried_per_call(rig: Rig, jitter_at_ceiling: None) -> None:
    rig.api.then("login", koyeb_error(503))
    for _ in range(50):
        with pytest.raises(APIError):
            rig.manager.get_token()
    assert rig.api.actions() == ["login"]
    rig.clock.mono += 1.0  # the first backoff: a second at most
    assert rig.manager.get_token().value == "tok-1"
    assert rig.api.actions() == ["login", "login"]


def test_the_backoff_doubles_up_to_its_cap(rig: Rig, jitter_at_ceiling: None) -> None:
    rig.api.then("login", *[koyeb_error(503)] * 11)
    with pytest.raises(APIError):
        rig.manager.get_token()
    waits = []
    for _ in range(10):
        calls, wait = len(rig.api.sent), 0.0
        while len(rig.api.sent) == calls and wait < 2 * MAX_DELAY:  # a caller every quarter second
            rig.clock.mono += 0.25
            wait += 0.25
            with pytest.raises(APIError):
                rig.manager.get_token()
        waits.append(wait)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0] + [MAX_DELAY] * 4


@pytest.mark.parametrize(("reset", "wait"), [("120", 120.0), ("100000", MAX_RETRY_AFTER)])
def test_a_429_keeps_callers_away_as_long_as_it_says_at_most_an_hour(rig: Rig, reset: str, wait: float) -> None:
    rig.api.then("login", koyeb_error(429, **{"x-ratelimit-reset": reset}))
    with pytest.raises(RateLimitedError):
        rig.manager.get_token()
    rig.clock.advance(wait - 0.01)
    with pytest.raises(RateLimitedError):
        rig.manager.get_token()
    assert rig.api.actions() == ["login"]
    rig.clock.advance(0.02)
    assert rig.manager.get_token().value == "tok-1"
    assert rig.api.actions() == ["login", "login"]


@pytest.mark.parametrize("step", [-HOUR, HOUR], ids=["wall-stepped-back", "wall-stepped-forward"])
def test_a_stepped_wall_clock_neither_stretches_nor_cuts_a_backoff(rig: Rig, jitter_at_ceiling: None,
                                                                   step: float) -> None:
    rig.api.then("login", koyeb_error(503))
    with pytest.raises(APIError):
        rig.manager.get_token()
    rig.clock.wall += step
    with pytest.raises(APIError):
        rig.manager.get_token()
    assert rig.api.actions() == ["login"]
    rig.clock.mono += 1.0
    assert rig.manager.get_token().value == "tok-1"
    assert rig.api.actions() == ["login", "login"]


def test_expiry_follows_the_wall_clock_not_the_monotonic_one(rig: Rig) -> None:
    token = rig.manager.get_token()
    rig.clock.mono += 10 * HOUR
    assert rig.manager.get_token() is token
    rig.clock.wall += HOUR - MARGIN
    assert rig.manager.get_token() is not token
    assert rig.api.actions() == ["login", "refresh"]


# --- withdrawn endpoints ----------------------------------------------------------------------------


def test_a_withdrawn_refresh_costs_one_call_here_and_none_in_a_peer(rig: Rig) -> None:
    rig.holding("due", due=True)
    rig.api.then("refresh", GONE)
    renewed = rig.manager.get_token()
    assert renewed.value == "tok-1" and renewed.withdrawn == {"refresh"}
    assert rig.api.actions() == ["refresh", "login"]
    rig.clock.advance(HOUR - 100)
    assert rig.manager.get_token().value == "tok-2"
    assert rig.api.actions() == ["refresh", "login", "login"]
    # A peer (another process) adopts the token from the store, and with it what is withdrawn.
    rig.clock.advance(HOUR - 100)
    peer = make_rig(store=rig.store, clock=rig.clock, api=rig.api)
    assert peer.manager.get_token().value == "tok-3"
    assert rig.api.actions() == ["refresh", "login", "login", "login"]


def test_a_withdrawn_organization_switch_costs_one_call() -> None:
    rig = make_rig(OrganizationToken(API_URL, "personal-token", "org-1"))
    rig.api.then("switch", GONE)
    first = rig.manager.get_token()
    assert rig.api.actions() == ["switch", "access_token"]
    assert rig.api.sent[0].bearer == "personal-token"
    rig.clock.advance(HOUR - MARGIN)
    assert rig.manager.get_token() != first
    assert rig.api.actions() == ["switch", "access_token", "access_token"]


class _CountingExecutor(ThreadPoolExecutor):
    """A loop's default executor that counts the work given to it."""

    submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.mark.parametrize("source", [OrganizationToken(API_URL, "personal-token", "org-1"), PASSWORD_LOGIN],
                         ids=["organization-token", "password-hash-known"])
def test_a_coroutine_that_opens_a_session_needing_no_hash_takes_no_worker_thread(source: Source) -> None:
    """Every new session's `opened` went to a worker of the loop's default executor, the store's
    lock held meanwhile: an organization token (no hash at all) or a password whose hash was known
    waited behind whatever else the application ran there, and every peer waiting for the lock too."""
    source.prepare(wait=True)
    rig = make_rig(source)
    executor = _CountingExecutor(1)

    async def main() -> Token:
        asyncio.get_running_loop().set_default_executor(executor)
        return await rig.manager.aget_token()

    assert asyncio.run(main()) == rig.store.token
    assert rig.api.actions()[-1] in ("login", "switch") and executor.submitted == 0


# --- a password's sessions ----------------------------------------------------------------------------


def test_a_session_another_password_opened_is_not_adopted_and_the_login_saves_its_own() -> None:
    rig = make_rig()
    other = PasswordLogin(API_URL, "ops@example.com", "another password")
    rig.store.token = other.opened(Token("opened-by-another", obtained_at=T0, expires_at=T0 + HOUR))
    token = rig.manager.get_token()
    assert token.value != "opened-by-another"
    assert rig.api.actions() == ["login"]
    assert rig.store.token == token and PASSWORD_LOGIN.owns(token) and not other.owns(token)
    # A session with no hash at all (planted, or older than the hash) is no one's either.
    rig = make_rig()
    rig.store.token = Token("no-hash", obtained_at=T0, expires_at=T0 + HOUR)
    assert rig.manager.get_token().value != "no-hash"


def test_the_password_is_hashed_while_the_login_is_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold process logs in at once, and derives its password's hash (needed to save the session,
    or to adopt a peer's) meanwhile, in a thread: 32 processes on 2 cores that each hashed before
    logging in would queue the fleet's one login behind 32 hashes."""
    clock = Clock()
    api = ScriptedAPI(clock, HOUR)
    scrypt = hashlib.scrypt
    sent_when_hashing_began: list[list[str]] = []

    def hashing(*args: Any, **kwargs: Any) -> bytes:
        deadline = time.monotonic() + 10
        while "login" not in api.actions() and time.monotonic() < deadline:
            time.sleep(0.001)
        sent_when_hashing_began.append(api.actions())
        return scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", hashing)
    source = PasswordLogin(API_URL, "ops@example.com", f"password {uuid.uuid4()}")
    rig = make_rig(source, clock=clock, api=api)
    token = rig.manager.get_token()
    assert sent_when_hashing_began == [["login"]]
    assert rig.store.token == token and source.owns(token)


def test_a_caller_that_finds_a_peer_logging_in_hashes_before_it_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its hash is what adopts the peer's session: polling the store meanwhile only slows every
    other process's hash (32 processes on 2 cores)."""
    scrypt = hashlib.scrypt
    polls_while_hashing: list[list[str]] = []
    store = ScriptedStore()

    def slow(*args: Any, **kwargs: Any) -> bytes:
        time.sleep(0.2)
        polls_while_hashing.append(list(store.calls))
        return scrypt(*args, **kwargs)

    source = PasswordLogin(API_URL, "ops@example.com", f"password {uuid.uuid4()}")
    # The peer's session, opened with the same password (hashed here, not in this process's memo).
    peers_hash = _sources._scrypt(source.password or "", _sources.password_salt(API_URL, source.email))
    peer = Token("peer", obtained_at=T0, expires_at=T0 + HOUR, password_hash=peers_hash)
    monkeypatch.setattr(hashlib, "scrypt", slow)
    store.busy = True  # a peer holds the lock: it is logging in
    rig = make_rig(source, store=store)
    store.before[("load", 3)] = lambda: setattr(store, "token", peer)  # the peer is done
    assert rig.manager.get_token() is peer
    assert rig.api.sent == []
    # One look and one try, then nothing until the hash is derived.
    assert polls_while_hashing == [["load", "try_lock"]]


@pytest.mark.parametrize("peer_session", [False, True], ids=["logs in", "adopts a peer's session"])
def test_coroutines_wait_for_the_password_hash_off_the_event_loop(monkeypatch: pytest.MonkeyPatch,
                                                                   peer_session: bool) -> None:
    """A service that takes its users' passwords: each new one costs a scrypt, which must not stall
    every other request of the loop."""
    source = PasswordLogin(API_URL, "ops@example.com", f"password {uuid.uuid4()}")
    store = ScriptedStore()
    if peer_session:
        peers_hash = _sources._scrypt(source.password or "", _sources.password_salt(API_URL, source.email))
        store.token = Token("peer", obtained_at=T0, expires_at=T0 + HOUR, password_hash=peers_hash)
    scrypt = hashlib.scrypt

    def slow(*args: Any, **kwargs: Any) -> bytes:
        time.sleep(0.3)  # a scrypt on a busy machine
        return scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", slow)
    rig = make_rig(source, store=store)

    async def main() -> tuple[Token, float]:
        gaps, ticking = [], True

        async def heartbeat() -> None:
            last = time.monotonic()
            while ticking:
                await asyncio.sleep(0.01)
                gaps.append(time.monotonic() - last)
                last = time.monotonic()

        beating = asyncio.create_task(heartbeat())
        await asyncio.sleep(0.02)
        token = await rig.manager.aget_token()
        ticking = False
        await beating
        return token, max(gaps)

    token, longest_gap = asyncio.run(main())
    assert token.value == "peer" if peer_session else source.owns(token)
    assert rig.api.actions() == ([] if peer_session else ["login"])
    assert longest_gap < 0.15


def test_a_refreshed_session_keeps_the_hash_of_the_password_that_opened_it() -> None:
    """`koyeb-auth login` (a password) opens the session, a `KoyebAuth()` (its saved login, no
    password) refreshes it: processes given the password still adopt the refreshed one."""
    last_login = LastLogin(API_URL, "ops@example.com", None, PASSWORD_LOGIN.key)
    rig = make_rig(last_login)
    rig.store.token = PASSWORD_LOGIN.opened(rig.token("opened-by-login", ttl=HOUR))
    rig.manager.get_token()
    rig.clock.advance(HOUR - 100)
    refreshed = rig.manager.get_token()
    assert rig.api.actions() == ["refresh"]
    assert rig.store.token == refreshed and PASSWORD_LOGIN.owns(refreshed)


def test_logout_with_another_password_leaves_the_session_it_does_not_own() -> None:
    rig = make_rig()
    other = PasswordLogin(API_URL, "ops@example.com", "another password")
    kept = rig.store.token = other.opened(Token("opened-by-another", obtained_at=T0, expires_at=T0 + HOUR))
    assert rig.manager.logout() is False
    assert rig.store.token is kept and rig.api.actions() == []


def test_a_child_forked_while_the_parent_hashes_derives_the_hash_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    started, go_on = threading.Event(), threading.Event()
    scrypt = hashlib.scrypt

    def held(*args: Any, **kwargs: Any) -> bytes:
        started.set()
        go_on.wait(10)
        return scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", held)
    password, salt = f"password {uuid.uuid4()}", "https://koyeb.test\nops@example.com"
    _sources.password_hash(password, salt, wait=False)
    assert started.wait(10)  # the parent's thread is inside the hash
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with a thread running: the point
        child = os.fork()
    if child == 0:  # the child: the deriving thread is gone; the hash must not wait for it
        go_on.set()
        os.write(write, _sources.password_hash(password, salt).encode())
        os._exit(0)
    os.close(write)
    go_on.set()
    with os.fdopen(read) as pipe:
        derived = pipe.read()
    assert os.waitpid(child, 0)[1] == 0
    assert derived == _sources.password_hash(password, salt) == scrypt(
        password.encode(), salt=salt.encode(), n=1 << 14, r=8, p=1, maxmem=64 << 20, dklen=32).hex()


# --- the store --------------------------------------------------------------------------------------


def test_a_store_that_cannot_be_read_is_a_failure_raised_and_reported(rig: Rig) -> None:
    rig.store.load_error = StoreUnavailableError
    with pytest.raises(StoreUnavailableError):
        rig.manager.get_token()
    assert rig.api.sent == []
    assert [(event.kind, event.kept, type(event.error)) for event in rig.events] == [
        ("failed", False, StoreUnavailableError)]


def test_a_token_that_cannot_be_saved_is_kept_in_memory(rig: Rig) -> None:
    rig.store.save_error = TokenStoreError
    token = rig.manager.get_token()
    assert rig.store.token is None
    rig.store.calls.clear()
    assert [rig.manager.get_token() for _ in range(10)] == [token] * 10
    assert (rig.store.calls, rig.api.actions()) == ([], ["login"])


# --- logout -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [None, GONE], ids=["ok", "withdrawn"])
def test_logout_ends_the_session_with_its_token_and_deletes_it(rig: Rig, reply: Reply | None) -> None:
    rig.holding("current")
    if reply is not None:
        rig.api.then("logout", reply)
    assert rig.manager.logout() is True
    assert rig.api.sent == [Sent("logout", "current")]
    assert rig.store.token is None and "delete" in rig.store.calls
    assert rig.manager.peek() is None
    assert rig.manager.logout() is False  # nothing left to end: no call
    assert asyncio.run(rig.manager.alogout()) is False
    assert rig.api.sent == [Sent("logout", "current")]
    assert rig.manager.get_token().value == "tok-1"
    assert rig.api.actions() == ["logout", "login"]


# --- events -----------------------------------------------------------------------------------------


def test_each_outcome_is_one_event(rig: Rig, jitter_at_ceiling: None) -> None:
    obtained = rig.manager.get_token()
    rig.clock.advance(HOUR - MARGIN)
    refreshed = rig.manager.get_token()
    rejected = rig.manager.renew_rejected(refreshed)
    assert rejected is not None
    rig.clock.advance(HOUR - MARGIN)
    rig.api.then("refresh", koyeb_error(503))
    assert rig.manager.get_token() is rejected  # kept
    rig.clock.advance(MARGIN)  # expired; the backoff is over
    rig.api.then("login", koyeb_error(503))
    with pytest.raises(APIError):
        rig.manager.get_token()
    assert rig.kinds() == [
        ("obtained", "login", False),
        ("refreshed", "refresh", False),
        ("rejected", None, False),
        ("refreshed", "refresh", False),
        ("failed", None, True),
        ("failed", None, False),
    ]
    fingerprints = [event.fingerprint for event in rig.events]
    assert fingerprints == [obtained.fingerprint, refreshed.fingerprint, refreshed.fingerprint,
                            rejected.fingerprint, rejected.fingerprint, None]
    assert isinstance(rig.events[-1].error, APIError)
