"""The single-flight state machine: memory, then the shared store, then the network.

The decisions are written once, as generators that yield what they need done: `Enter` (take the
in-process and cross-process locks), `Load`, `Save` or `Delete` (the shared store), or an
`api.Call` (send a session request). Two small drivers run them, one blocking and one async, in
the style of httpx's sans-I/O auth flows, so a store with a network round trip (Redis) never
blocks an event loop. The driver that entered the locks releases them when the flow ends,
whatever ended it, cancellation included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from . import api, transport
from .backoff import Backoff
from .errors import InvalidCredentialsError, KoyebAuthError, TokenStoreError
from .gate import Gate, Ready
from .sources import Source
from .store import AsyncTokenStore, TokenStore, async_face
from .token import Token

log = logging.getLogger("koyeb_auth")

T = TypeVar("T")

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


@dataclass(frozen=True)
class Enter:
    """Take the locks (waiting if `wait`); True once inside. While waiting, stop early (False) once
    `ready(the store's token)` is true."""

    wait: bool
    ready: Ready | None = None


@dataclass(frozen=True)
class Load:
    """The token the store holds, or None."""

    def run(self, store: TokenStore, key: str) -> Token | None:
        return store.load(key)

    async def arun(self, store: AsyncTokenStore, key: str) -> Token | None:
        return await store.aload(key)


@dataclass(frozen=True)
class Save:
    token: Token

    def run(self, store: TokenStore, key: str) -> None:
        store.save(key, self.token)

    async def arun(self, store: AsyncTokenStore, key: str) -> None:
        await store.asave(key, self.token)


@dataclass(frozen=True)
class Delete:
    def run(self, store: TokenStore, key: str) -> None:
        store.delete(key)

    async def arun(self, store: AsyncTokenStore, key: str) -> None:
        await store.adelete(key)


Step = Enter | Load | Save | Delete | api.Call
Flow = Generator[Step, Any, T]


def _now() -> float:
    # Looked up at call time so that freezegun can move it.
    return time.time()


class TokenProvider(Protocol):
    """What KoyebAuth needs from whatever supplies its tokens."""

    def fresh(self) -> str | None:
        """The token if it can be used as is, without locks or I/O; None if anything is due."""
        ...

    def get_token(self) -> str: ...

    async def aget_token(self) -> str: ...

    def renew_rejected(self, rejected: str) -> str | None: ...

    async def arenew_rejected(self, rejected: str) -> str | None: ...

    def suspect(self, renewed: str) -> None:
        """Note that a request retried with the renewed token got a 401 again."""
        ...

    def logout(self) -> None: ...

    async def alogout(self) -> None: ...

    def cached(self) -> Token | None: ...


class StaticToken:
    """A personal access token used as is: nothing to renew, nothing to cache."""

    def __init__(self, value: str) -> None:
        self._value = value

    def fresh(self) -> str | None:
        return self._value

    def get_token(self) -> str:
        return self._value

    async def aget_token(self) -> str:
        return self._value

    def renew_rejected(self, rejected: str) -> str | None:
        return None

    async def arenew_rejected(self, rejected: str) -> str | None:
        return None

    def suspect(self, renewed: str) -> None:
        pass  # never renewed, so never retried

    def logout(self) -> None:
        # Logging out would end nothing: a personal access token is revoked in the console.
        log.info("Nothing to log out: a personal access token stays valid until revoked in the Koyeb console")

    async def alogout(self) -> None:
        self.logout()

    def cached(self) -> Token | None:
        return Token(self._value, obtained_at=0.0)


class TokenManager:
    """Session tokens from `source`, shared through `store`, renewed by one caller at a time."""

    def __init__(
        self, source: Source, store: TokenStore, *, refresh_margin: float, timeout: float, lock_timeout: float
    ) -> None:
        self._source = source
        self._store = store
        self._key = source.key
        self._margin = refresh_margin
        self._timeout = timeout
        self._astore = async_face(store)
        self._gate = Gate(store, self._key, lock_timeout)
        self._backoff = Backoff()
        self._token: Token | None = None
        # The hot path reads this one tuple: the token's value and when it falls due. Replaced as a
        # whole, so a thread never pairs one token's value with another's deadline.
        self._hot: tuple[str, float] = ("", float("-inf"))
        self._suspect = ("", float("-inf"))
        self._look_again_at = float("-inf")

    # --- public: the hot path stays in memory ---------------------------------------------------

    def fresh(self) -> str | None:
        """The token in memory if it needs nothing done, else None: no lock, no I/O."""
        value, fresh_until = self._hot
        return value if time.time() < fresh_until else None

    def get_token(self) -> str:
        return self.fresh() or self._run(self._token_flow())

    async def aget_token(self) -> str:
        value = self.fresh()
        return value if value is not None else await self._arun(self._token_flow())

    def renew_rejected(self, rejected: str) -> str | None:
        return self._run(self._rejection_flow(rejected))

    async def arenew_rejected(self, rejected: str) -> str | None:
        return await self._arun(self._rejection_flow(rejected))

    def suspect(self, renewed: str) -> None:
        self._suspect = (renewed, _now())

    def logout(self) -> None:
        self._run(self._logout_flow())

    async def alogout(self) -> None:
        await self._arun(self._logout_flow())

    def _remember(self, token: Token | None) -> None:
        self._token = token
        self._hot = (token.value, token.fresh_until(self._margin)) if token else ("", float("-inf"))

    def cached(self) -> Token | None:
        """The token this process would use now, from memory or the store, with no network call."""
        token = self._token or self._store.load(self._key)
        return None if token is None or token.expired(_now()) else token

    # --- the flows ------------------------------------------------------------------------------

    def _token_flow(self) -> Flow[str]:
        now = _now()
        held = self._token
        if held is None or held.expired(now):
            # A process that has no token yet adopts a peer's without any lock: the store is
            # replaced atomically, so this read never sees half a token.
            held = self._usable((yield Load()), now)
            self._remember(held)
            if held is not None and not held.due(now, self._margin):
                return held.value
        elif self._backoff.active(now) or now < self._look_again_at:
            return held.value  # a renewal failed moments ago, or a peer is refreshing: still good
        try:
            return (yield from self._renew_due(held))
        except KoyebAuthError as exc:
            if held is None or held.expired(_now()):
                raise
            self._look_again_at = _now() + RETRY_AFTER_FAILURE
            log.warning("Refreshing the Koyeb token %s failed, keeping it until it expires: %s",
                        held.fingerprint, exc)
            return held.value

    def _renew_due(self, held: Token | None) -> Flow[str]:
        # A valid token that is due: one caller refreshes, the rest go on with it (no waiting).
        # No valid token: everyone waits for the one caller that fetches it.
        if not (yield Enter(wait=held is None, ready=lambda stored: self._adopt_fresh(stored) is not None)):
            if held is not None:  # a peer holds the lock to refresh: go on with the valid token
                self._look_again_at = _now() + PEER_REFRESH_POLL
            token = held or self._token  # else a peer's fresh token, adopted while waiting
            assert token is not None
            return token.value
        # Re-check under the lock: a thread or process that held it before us may have renewed.
        fresh = self._adopt_fresh((yield Load()))
        if fresh is not None:
            return fresh.value
        return (yield from self._network(held)).value

    def _rejection_flow(self, rejected: str) -> Flow[str | None]:
        # No early exit while waiting: whoever holds the lock may be refreshing the very token the
        # store holds now, and a server that revokes on refresh would refuse the retry with it.
        yield Enter(wait=True)
        stored = yield Load()
        # Compare-and-renew: if a peer already replaced the refused token, retry with theirs.
        if (token := self._adopt_fresh(stored, refused=rejected)) is not None:
            return token.value
        now = _now()
        suspect, since = self._suspect
        if rejected == suspect and now - since < SUSPECT_INTERVAL:
            return None
        # Renew a peer's token that is due rather than retry with it (its refresh would revoke
        # it under the retry), else the refused one: refresh, or log in if that is refused too.
        valid = [t for t in (stored, self._token) if t and not t.expired(now)]
        current = next((t for t in valid if t.value != rejected), valid[0] if valid else None)
        log.info("The API refused a token; renewing %s", current.fingerprint if current else "with a login")
        return (yield from self._network(current)).value

    def _logout_flow(self) -> Flow[None]:
        yield Enter(wait=True)
        token = self._usable(self._token or (yield Load()), _now())
        if token is not None:
            call = api.logout(self._source.api_url, token.value)
            api.check_logout(call, (yield call))
        self._remember(None)
        yield Delete()

    # --- steps, run with the gate held ------------------------------------------------------------

    def _adopt_fresh(self, stored: Token | None, refused: str = "") -> Token | None:
        """A token that needs no renewal (and is not `refused`), made the one in use.

        The store's first: it holds the newest token, while memory may hold one already replaced.
        """
        now = _now()
        for candidate in (stored, self._token):
            if candidate is not None and candidate.value != refused and not candidate.due(now, self._margin):
                self._remember(candidate)
                return candidate
        return None

    def _network(self, current: Token | None) -> Flow[Token]:
        """Renew `current` (or open a new session), then share the result."""
        now = _now()
        self._backoff.check(now)
        try:
            token = yield from self._fetch(current)
        except KoyebAuthError as exc:
            self._backoff.failed(now, exc)
            raise
        self._backoff.succeeded()
        self._remember(token)
        try:
            yield Save(token)
        except (OSError, TokenStoreError) as exc:
            # The token is good; only sharing it failed. Keep working from memory.
            log.warning("Could not share the token through %r (%s); other processes will renew themselves",
                        self._store, exc)
        log.info("Obtained Koyeb token %s", token.fingerprint)
        return token

    def _fetch(self, current: Token | None) -> Flow[Token]:
        renewal = self._source.renew(current) if current is not None else None
        if renewal is not None:
            try:
                return api.token_from(renewal, (yield renewal), _now())
            except InvalidCredentialsError:
                log.info("The API refused to refresh token %s; logging in again",
                         current.fingerprint if current else "")
        call = self._source.obtain()
        return api.token_from(call, (yield call), _now())

    @staticmethod
    def _usable(token: Token | None, now: float) -> Token | None:
        return None if token is None or token.expired(now) else token

    # --- drivers --------------------------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        steps, entered = _Steps(flow), False
        try:
            for step in steps:
                try:
                    if isinstance(step, Enter):
                        entered = self._gate.enter(step.wait, step.ready)
                        steps.done(entered)
                    elif isinstance(step, api.Call):
                        steps.done(transport.send(step, self._timeout))
                    else:
                        steps.done(step.run(self._store, self._key))
                except BaseException as exc:
                    steps.failed(exc)
        finally:
            if entered:
                self._gate.exit()
        return steps.result

    async def _arun(self, flow: Flow[T]) -> T:
        steps, entered = _Steps(flow), False
        try:
            for step in steps:
                try:
                    if isinstance(step, Enter):
                        entered = await self._gate.aenter(step.wait, step.ready)
                        steps.done(entered)
                    elif isinstance(step, api.Call):
                        steps.done(await transport.asend(step, self._timeout))
                    else:
                        steps.done(await step.arun(self._astore, self._key))
                except BaseException as exc:  # CancelledError too: the flow decides, then we release
                    steps.failed(exc)
        finally:
            if entered:
                await self._gate.aexit()
        return steps.result


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
