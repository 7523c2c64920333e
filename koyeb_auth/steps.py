"""The steps a token flow asks for, and the two drivers that carry them out.

A flow (see `manager`) is a generator that yields what it needs done: `Enter` (take the
in-process and cross-process locks), `Load`, `Save` or `Delete` (the shared store), or an
`api.Call` (send a session request), and gets each outcome back. `run` does the steps blocking,
`arun` with awaits, in the style of httpx's sans-I/O auth flows, so a store with a network round
trip (Redis) never blocks an event loop. The locks a flow entered are released when it ends,
whatever ended it, cancellation included.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import api
from .admission import on_asyncio
from .gate import Gate, Wait
from .store import TokenStore, async_face
from .token import Token
from .transport import SessionClient

T = TypeVar("T")


@dataclass(frozen=True)
class Enter:
    """Take the locks as `how` says; the outcome is a `gate.Admission`."""

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
