"""The decisions: memory, then the shared store, then the network, as single-flight flows.

The decisions are written once, as flows: generators of the effects they need done (see
`_engine`: `token = yield from Load()`), run by a blocking or an async driver. The wait for the
token lock is a flow of `_engine`'s, `enter`, which these `yield from`. The hot path does not get
that far: it reads one tuple from memory.

Also here: what supplies KoyebAuth's tokens (the `TokenProvider` protocol, the personal access
token used as is, and the `Timing` a renewing provider runs on), and how long to stay away from the
API after a failed login or refresh (`Backoff`).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from . import _session_api as api
from ._engine import Delete, Derive, Driver, Entry, Flow, Load, Lock, Save, Send, admission_for, enter
from ._logs import logger
from ._sources import Source
from ._token import Token, TokenState
from ._transport import Network, SessionClient
from .errors import (
    ConfigurationError,
    EndpointWithdrawnError,
    InvalidCredentialsError,
    KoyebAuthError,
    RateLimitedError,
    TokenStoreError,
)
from .events import EventHook, emit
from .stores._protocol import TokenStore

log = logger()


# --- what supplies tokens -------------------------------------------------------------------------

def wall_clock() -> float:
    # Looked up at call time so that freezegun can move it.
    return time.time()


def monotonic_clock() -> float:
    """time.monotonic(), looked up at each call so that freezegun can move it in tests."""
    return time.monotonic()


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


# --- how long to stay away from the API after a failed login or refresh ----------------------------

# Exponential with jitter, so a fleet whose API went down does not come back in lockstep, and never
# shorter than what a 429 asked for (`_session_api.retry_after` caps that at an hour). Every interval
# runs on a monotonic clock: a wall clock stepped back (NTP, a resumed VM, a user) cannot stretch a
# backoff, nor a step forward cut it short.
BASE_DELAY = 1.0
MAX_DELAY = 60.0
# 2 ** 6 > MAX_DELAY: the exponent stops there, so a long outage cannot overflow the float.
_MAX_DOUBLINGS = 6


@dataclass
class Backoff:
    """The last failure and how long it keeps callers away, on `clock` (monotonic seconds)."""

    clock: Callable[[], float] = monotonic_clock
    failures: int = 0
    not_before: float = 0.0
    error: KoyebAuthError | None = None

    def active(self) -> bool:
        return self.error is not None and self.clock() < self.not_before

    @contextmanager
    def attempt(self) -> Iterator[None]:
        """Around a call to the API: while the backoff lasts, raise the last failure again instead;
        else record how the call went."""
        if self.error is not None and self.active():
            raise self.error.with_traceback(None)
        try:
            yield
        except KoyebAuthError as exc:
            self.failed(exc)
            raise
        self.failures, self.not_before, self.error = 0, 0.0, None

    def failed(self, error: KoyebAuthError) -> None:
        self.failures += 1
        ceiling = min(BASE_DELAY * 2 ** min(self.failures - 1, _MAX_DOUBLINGS), MAX_DELAY)
        delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311  # jitter, not a secret
        if isinstance(error, RateLimitedError):
            delay = max(delay, error.retry_after)
        self.not_before, self.error = self.clock() + delay, error


# --- the decisions --------------------------------------------------------------------------------

# A token renewed because of a 401 whose retry got a 401 too: the 401 is not about the token (a
# permission, a proxy). For this long, further 401s with it go back to the caller unrenewed, so a
# persistent 401 cannot turn into a login per request.
SUSPECT_INTERVAL = 10.0
# While a peer refreshes a token that is due but valid, look again this often rather than on every
# request: each look costs a lock attempt on the lock file.
PEER_REFRESH_POLL = 0.05
# After a renewal of a still-valid token failed, keep it this long before trying again, so an
# unreachable store costs one timeout per second rather than one per request. (The network has
# its own backoff.)
RETRY_AFTER_FAILURE = 1.0


class TokenManager:
    """Session tokens from `source`, shared through `store`, renewed by one caller at a time."""

    def __init__(
        self,
        source: Source,
        store: TokenStore,
        timing: Timing,
        network: Network,
        *,
        clock: Callable[[], float] = wall_clock,
        monotonic: Callable[[], float] = monotonic_clock,
        on_event: EventHook | None = None,
    ) -> None:
        self._source = source
        self._store = store
        self._key = source.key
        source.prepare()  # a password's hash, derived while this process waits for the lock or logs in
        self._timing = timing
        self._clock = clock  # expiries: the wall clock, which every process shares
        self._monotonic = monotonic  # intervals: a stepped wall clock must not stretch them
        self._on_event = on_event
        self._lock = Lock(store, timing.lock_timeout)
        self._driver = Driver(store, self._key, SessionClient(network, timing.timeout), admission_for(store))
        self._backoff = Backoff(monotonic)
        self._token: Token | None = None
        # The hot path reads this one tuple: the token and when it falls due. Replaced as a whole,
        # so a thread never pairs one token with another's deadline.
        self._hot: tuple[Token | None, float] = (None, float("-inf"))
        self._suspect: tuple[Token | None, float] = (None, float("-inf"))
        self._look_again_at = float("-inf")
        # The session endpoints found withdrawn, here or by a peer whose token we adopted: skipped
        # from then on, so a gone endpoint costs one call, not one per renewal.
        self._withdrawn: set[str] = set()

    # --- public: the hot path stays in memory ---------------------------------------------------

    def peek(self) -> Token | None:
        """The token in memory if it is fresh, else None: no lock, no I/O."""
        token, due_at = self._hot
        return token if self._clock() < due_at else None

    def get_token(self) -> Token:
        """The token in memory if it is fresh (what `peek` reads), else one adopted, renewed or kept."""
        token, due_at = self._hot
        if token is not None and self._clock() < due_at:
            return token
        return self._driver.run(self._token_to_send())

    async def aget_token(self) -> Token:
        token = self.peek()
        return token if token is not None else await self._driver.arun(self._token_to_send())

    def renew_rejected(self, rejected: Token, *, resent: bool = False) -> Token | None:
        return self._driver.run(self._reported(self._replace_rejected(rejected, resent), rejected))

    async def arenew_rejected(self, rejected: Token, *, resent: bool = False) -> Token | None:
        return await self._driver.arun(self._reported(self._replace_rejected(rejected, resent), rejected))

    def suspect(self, renewed: Token) -> None:
        self._suspect = (renewed, self._monotonic())

    def logout(self) -> bool:
        return self._driver.run(self._end_session())

    async def alogout(self) -> bool:
        return await self._driver.arun(self._end_session())

    def cached(self) -> Token | None:
        """The token this process would use now, from memory or the store, with no network call."""
        return self._usable(self._token) or self._driver.run(self._ours(self._store.load(self._key)))

    # --- the flows ------------------------------------------------------------------------------

    def _token_to_send(self) -> Flow[Token]:
        """The token a request carries, when memory has no fresh one: adopted, renewed or kept."""
        held = self._usable(self._token)
        known = held
        if held is None:
            # A process that has no token yet adopts a peer's without any lock: the store is
            # replaced atomically, so this read never sees half a token.
            try:
                known = yield from Load()
            except KoyebAuthError as exc:  # a store that cannot be read: a failure like any other
                if self._on_event is not None:
                    emit(self._on_event, "failed", None, error=exc)
                raise
            held = yield from self._ours(known)
            if held is not None:
                # Not a miss: another thread may have obtained a token since this one looked, and a
                # store that holds nothing (one that cannot be written) must not make it forgotten.
                self._remember(held)
                if self._state(held) is TokenState.FRESH:
                    return held
        elif self._backoff.active() or self._monotonic() < self._look_again_at:
            return held  # a renewal failed moments ago, or a peer is refreshing: still good
        try:
            return (yield from self._renew_or_adopt(held, known))
        except KoyebAuthError as exc:
            if held is None or self._usable(held) is None:
                if self._on_event is not None:
                    emit(self._on_event, "failed", held, error=exc)
                raise
            self._look_again_at = self._monotonic() + RETRY_AFTER_FAILURE
            log.warning("Refreshing the Koyeb token %s failed, keeping it until it expires: %s",
                        held.fingerprint, exc)
            if self._on_event is not None:
                emit(self._on_event, "failed", held, error=exc, kept=True)
            return held

    def _renew_or_adopt(self, held: Token | None, known: Token | None) -> Flow[Token]:
        """Under the lock, a peer's fresh token or a renewed one; without it, a peer's or `held`."""
        # A valid token that is due: one caller refreshes, the rest go on with it (no waiting).
        # No valid token: everyone waits for the one caller that fetches it, or for a peer's.
        block, deadline = False, time.monotonic() + self._timing.lock_timeout
        while True:
            outcome = yield from enter(self._lock, deadline, block=block, watch=True, known=known)
            if outcome is Entry.INSIDE:
                break
            if outcome is Entry.BUSY:
                # A peer holds the lock to refresh: go on with the valid token, if it still is one
                # (a slow store may have taken the attempt past its expiry: then wait like everyone).
                if (still := self._usable(held)) is not None:
                    self._look_again_at = self._monotonic() + PEER_REFRESH_POLL
                    return still
                # A password's hash first (a peer logs in meanwhile): the token it saves is adopted
                # only with it, and 32 processes polling the store while they hash on 2 cores slow
                # every hash.
                yield from self._derived()
                block = True
            elif (adopted := self._adopt((yield from self._ours(outcome.token)))) is not None:
                return adopted  # Seen: a peer's token, fresh
            else:
                known = outcome.token  # Seen, but not fresh: wait on for the one after it
        # Re-check under the lock: a thread or process that held it before us may have renewed.
        # A token that expired while we waited is not refreshed (that would send it): log in.
        stored = yield from self._ours((yield from Load()))
        return self._adopt(stored) or (yield from self._renew_and_share(self._usable(held)))

    def _replace_rejected(self, rejected: Token, resent: bool) -> Flow[Token | None]:
        """The token to send a refused request again with, or None to return the 401."""
        # Threads that sent the refused token together get their 401s together: the first renews
        # or adopts a token, the others retry with it, with no store round trip.
        deadline = time.monotonic() + self._timing.lock_timeout
        if (yield from enter(self._lock, deadline, known=rejected, mine=lambda: self._token)) is not Entry.INSIDE:
            if (adopted := self._adopt(None, refused=rejected)) is not None:
                return adopted
            # No early exit while waiting: whoever holds the lock may be refreshing the very token
            # the store holds now, and a server that revokes on refresh would refuse the retry with it.
            yield from enter(self._lock, deadline)
        stored = yield from self._ours((yield from Load()))
        # Compare-and-renew: if a peer already replaced the refused token, retry with theirs.
        if (token := self._adopt(stored, refused=rejected)) is not None:
            return token
        suspect, since = self._suspect
        if suspect is not None and rejected.value == suspect.value and self._monotonic() - since < SUSPECT_INTERVAL:
            return None
        # Renew a peer's token that is due rather than retry with it (its refresh would revoke
        # it under the retry), else the refused one: refresh, or log in if that is refused too.
        valid = [t for t in (self._usable(stored), self._usable(self._token)) if t is not None]
        current = next((t for t in valid if t.value != rejected.value), None)
        if resent and current is None:
            # The token just renewed was refused and no peer has replaced it since: the 401 is not
            # about the token. Had a peer replaced it, its refresh would explain the 401.
            self.suspect(rejected)
            return None
        current = current or (valid[0] if valid else None)
        log.info("The API refused a token; renewing %s", current.fingerprint if current else "with a login")
        if self._on_event is not None:
            emit(self._on_event, "rejected", rejected)
        return (yield from self._renew_and_share(current))

    def _reported(self, flow: Flow[Token | None], renewing: Token) -> Flow[Token | None]:
        """`flow`, whose failure is reported as a "failed" event on its way to the caller."""
        try:
            return (yield from flow)
        except KoyebAuthError as exc:
            if self._on_event is not None:
                emit(self._on_event, "failed", renewing, error=exc)
            raise

    def _end_session(self) -> Flow[bool]:
        """Log out: end the session of the token in use, if any, and delete it from the store."""
        yield from enter(self._lock, time.monotonic() + self._timing.lock_timeout)
        stored = yield from Load()
        # Another password's session (the same account, the same key) is not this caller's to end.
        if stored is not None:
            yield from self._derived()
        mine = stored is not None and self._source.owns(stored)
        token = self._usable(self._token) or (self._usable(stored) if mine else None)
        if token is not None:
            call = api.logout(self._source.api_url, token.value)
            try:
                api.check_logout(call, (yield from Send(call)))
            except EndpointWithdrawnError as exc:
                log.warning("Could not end the session of token %s: %s", token.fingerprint, exc)
        self._remember(None)
        if mine:
            yield from Delete()
        return token is not None

    # --- decisions --------------------------------------------------------------------------------

    def _state(self, token: Token) -> TokenState:
        return token.state(self._clock(), self._timing.refresh_margin)

    def _usable(self, token: Token | None) -> Token | None:
        return token if token is not None and token.usable(self._clock()) else None

    def _ours(self, stored: Token | None) -> Flow[Token | None]:
        """A token read from the store, if it can be sent and this source owns it (a password
        session: the same password opened it). Checked in that order: the password's hash, which
        `owns` needs, is waited for only to adopt a live session."""
        if stored is None or self._usable(stored) is None:
            return None
        yield from self._derived()
        return stored if self._source.owns(stored) else None

    def _derived(self) -> Flow[None]:
        """What `owns` needs, derived: a password's hash (for coroutines, in a thread unless it is known)."""
        yield from Derive(functools.partial(self._source.prepare, wait=True), ready=self._source.prepare)

    def _remember(self, token: Token | None) -> None:
        self._token = token
        if token is not None:
            self._withdrawn.update(token.withdrawn)
        self._hot = (token, token.due_at(self._timing.refresh_margin)) if token else (None, float("-inf"))

    def _adopt(self, stored: Token | None, refused: Token | None = None) -> Token | None:
        """A fresh token (not `refused`), made the one in use; None if there is none.

        The store's first: it holds the newest token, while memory may hold one already replaced.
        """
        for candidate in (stored, self._token):
            if candidate is None or (refused is not None and candidate.value == refused.value):
                continue
            if self._state(candidate) is TokenState.FRESH:
                self._remember(candidate)
                return candidate
        return None

    def _renew_and_share(self, current: Token | None) -> Flow[Token]:
        """Renew `current` (or open a new session) unless backed off; then remember, save and
        announce the new token."""
        with self._backoff.attempt():
            token, action = yield from self._fetch_token(current)
        self._remember(token)
        try:
            yield from Save(token)
        except (OSError, TokenStoreError) as exc:
            # The token is good; only sharing it failed. Keep working from memory.
            log.warning("Could not share the token through %r (%s); other processes will renew themselves",
                        self._store, exc)
        if log.isEnabledFor(logging.INFO):  # the fingerprint is a hash: not for a record no one sees
            log.info("Obtained Koyeb token %s", token.fingerprint)
        if self._on_event is not None:
            emit(self._on_event, "refreshed" if action == "refresh" else "obtained", token, action=action)
        return token

    def _fetch_token(self, current: Token | None) -> Flow[tuple[Token, api.Action]]:
        """A token from the first session call that answers, and which call gave it: the renewal of
        `current` (refused: log in again), then the calls that open a session."""
        renewal = self._source.renew(current, self._withdrawn) if current is not None else None
        if renewal is not None:
            try:
                return (yield from self._token_from(renewal, current)), renewal.action
            except InvalidCredentialsError:
                log.info("The API refused to refresh token %s; logging in again",
                         current.fingerprint if current else "")
            except EndpointWithdrawnError as exc:
                self._withdraw(exc)
        *others, last = self._source.obtain(self._withdrawn)
        for call in others:
            try:
                return (yield from self._token_from(call)), call.action
            except EndpointWithdrawnError as exc:
                self._withdraw(exc)
        try:
            return (yield from self._token_from(last)), last.action
        except InvalidCredentialsError:
            email = (last.body or {}).get("email", "")
            if last.action != "login" or not (yield from self._signs_in_through_workos(email)):
                raise
        raise api.workos_account(email)  # outside the handler: the plain refusal is no context of it

    def _signs_in_through_workos(self, email: str) -> Flow[bool]:
        """Whether the API says `email` signs in through WorkOS; False if it cannot tell."""
        try:
            return api.signs_in_through_workos((yield from Send(api.login_method(self._source.api_url, email))))
        except KoyebAuthError:  # unreachable, or the endpoint gone: the refusal stands as it is
            return False

    def _token_from(self, call: api.Call, renewing: Token | None = None) -> Flow[Token]:
        """Send a session call; the token its reply carries, as the store keeps it: a renewal of
        `renewing` carries what it did (the hash of the password that opened the session), a new
        session what its source gives it."""
        sent = self._clock()
        token = api.token_from(call, (yield from Send(call)), sent, self._clock())
        if renewing is not None:
            token = token.replace(password_hash=renewing.password_hash)
        else:  # may derive a password's hash: for coroutines, in a thread, unless it is known
            token = yield from Derive(functools.partial(self._source.opened, token), ready=self._source.prepare)
        # The token carries what we know is gone, so the peers that adopt it skip it too.
        return token.replace(withdrawn=frozenset(self._withdrawn)) if self._withdrawn else token

    def _withdraw(self, gone: EndpointWithdrawnError) -> None:
        self._withdrawn.add(gone.endpoint)
        log.warning("%s", gone)
