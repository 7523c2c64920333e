"""Every wait is bounded: the lock wait as a whole, planted FIFOs, and a fork during first use."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from koyeb_auth import CacheFileError, FileTokenStore, KoyebAuth, LockTimeoutError
from koyeb_auth._config import Config, Credentials, Settings
from koyeb_auth.testing import FakeKoyebAPI

from .conftest import loop_blocked

LOCK_TIMEOUT = 0.5


def _waits_of(auth: KoyebAuth, tasks: int, threads: int) -> list[float]:
    """How long each of `tasks` asyncio tasks, then each of `threads` threads, waited for its LockTimeoutError."""

    async def task() -> float:
        started = time.monotonic()
        with pytest.raises(LockTimeoutError):
            await auth.aget_token()
        return time.monotonic() - started

    async def all_tasks() -> list[float]:
        return list(await asyncio.gather(*(task() for _ in range(tasks))))

    barrier = threading.Barrier(threads) if threads else None

    def thread(_: int) -> float:
        assert barrier is not None
        barrier.wait()
        started = time.monotonic()
        with pytest.raises(LockTimeoutError):
            auth.get_token()
        return time.monotonic() - started

    waits = asyncio.run(all_tasks()) if tasks else []
    with ThreadPoolExecutor(max(threads, 1)) as pool:
        return waits + list(pool.map(thread, range(threads)))


@pytest.mark.parametrize(("tasks", "threads"), [(10, 0), (0, 8)])
def test_every_queued_caller_fails_within_one_lock_timeout_of_its_start(
    fake: FakeKoyebAPI, cache_path: Path, tasks: int, threads: int
) -> None:
    # One deadline covers the in-process queue and the lock file together: waiters queued behind
    # the first must not each get a lock_timeout of their own (the n-th failing at n x lock_timeout).
    holder = FileTokenStore(cache_path)  # stands in for another process stuck inside the lock
    assert holder.try_lock()
    try:
        auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path,
                         lock_timeout=LOCK_TIMEOUT)
        waits = _waits_of(auth, tasks, threads)
    finally:
        holder.unlock()
    assert len(waits) == tasks + threads
    assert min(waits) >= LOCK_TIMEOUT - 0.05, waits  # each really waited
    # The last one too: about lock_timeout, not 2, 4, 6 ... x lock_timeout.
    assert max(waits) < LOCK_TIMEOUT + 0.4, waits
    assert fake.stats == {}


# --- a FIFO planted at the cache path or at the lock path -------------------------------------------


def _bounded(call: Callable[[], Any], fifo: Path, timeout: float = 10.0) -> tuple[float, Any]:
    """Run `call` on a thread; (seconds it took, its result or exception). A call still stuck in
    open() after `timeout` (the bug) is freed by opening the FIFO's write end, and fails the test."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # handed to the test, which checks it
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    took = time.monotonic() - started
    if thread.is_alive():
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # the stuck reader gets EOF
        thread.join(5)
        pytest.fail(f"the caller was still waiting after {took:.1f} s: opening the FIFO blocked it")
    return took, outcome[0]


def _fifo(path: Path) -> Path:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.mkfifo(path, 0o600)
    return path


def _aget_token_with_heartbeat(auth: KoyebAuth) -> tuple[str, float]:
    async def run() -> tuple[str, float]:
        async with loop_blocked() as blocked:
            token = await auth.aget_token()
        return token, max(blocked)

    return asyncio.run(run())


@pytest.mark.parametrize("client", ["sync", "async"])
def test_a_fifo_at_the_cache_path_hangs_no_caller_and_is_replaced_by_the_cache(
    client: str, fake: FakeKoyebAPI, cache_path: Path
) -> None:
    fifo = _fifo(cache_path)
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path)
    call = auth.get_token if client == "sync" else lambda: _aget_token_with_heartbeat(auth)
    _, outcome = _bounded(call, fifo)
    assert not isinstance(outcome, BaseException), outcome  # an error: it holds no token
    if client == "async":
        worst_gap = outcome[1]
        assert worst_gap < 0.1  # the event loop never froze
    assert fake.stats == {"login": 1}
    # The FIFO was a miss, replaced by the cache file: the next process adopts the token.
    assert cache_path.is_file()
    assert KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path).get_token()
    assert fake.stats == {"login": 1}


@pytest.mark.parametrize("client", ["sync", "async"])
@pytest.mark.parametrize("kind", ["a FIFO", "a directory", "a symlink"])
def test_a_lock_file_that_is_not_a_regular_file_is_refused_before_any_login(
    client: str, kind: str, fake: FakeKoyebAPI, cache_path: Path
) -> None:
    lock_path = cache_path.with_name(cache_path.name + ".lock")
    if kind == "a FIFO":
        _fifo(lock_path)
    elif kind == "a directory":
        lock_path.mkdir(parents=True)
    else:
        lock_path.parent.mkdir(parents=True)
        lock_path.symlink_to(cache_path.parent / "elsewhere")
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path)
    call = auth.get_token if client == "sync" else lambda: _aget_token_with_heartbeat(auth)
    took, outcome = _bounded(call, lock_path)
    refused = isinstance(outcome, CacheFileError)
    assert refused, type(outcome).__name__  # only its type: the outcome may be a token
    message = str(outcome)
    assert str(lock_path) in message and f"is {kind}, not a regular file" in message and "Remove it" in message
    assert took < 5  # at once, not after lock_timeout
    assert fake.stats == {}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown a file")
def test_a_lock_file_of_another_user_is_refused(fake: FakeKoyebAPI, cache_path: Path) -> None:
    lock_path = cache_path.with_name(cache_path.name + ".lock")
    lock_path.parent.mkdir(parents=True)
    lock_path.touch(0o600)
    os.chown(lock_path, 12345, 12345)
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path)
    with pytest.raises(CacheFileError, match="another user"):
        auth.get_token()
    assert fake.stats == {}


# --- fork() during first use -------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
# Python 3.12+ warns about forking with threads running: that is the case this test proves safe.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_fork_while_a_thread_sets_up_does_not_deadlock_the_child(
    fake: FakeKoyebAPI, cache_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent, inside, release = os.getpid(), threading.Event(), threading.Event()
    real_settings = Config.settings

    def slow_settings(self: Config, given: Credentials) -> Settings:
        if os.getpid() == parent:  # the parent's thread stays inside its setup, holding the setup lock
            inside.set()
            release.wait(30)
        return real_settings(self, given)

    monkeypatch.setattr(Config, "settings", slow_settings)
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path)
    setup = threading.Thread(target=auth.get_token)
    setup.start()
    try:
        assert inside.wait(10)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: no setup thread here, so the lock it inherited would never be released
            try:
                os.write(write, b"ok" if auth.get_token() else b"no")
            finally:
                os._exit(0)
        os.close(write)
        answered, _, _ = select.select([read], [], [], 10)
        if not answered:
            os.kill(pid, signal.SIGKILL)  # deadlocked
        answer = os.read(read, 2) if answered else b""
        os.waitpid(pid, 0)
    finally:
        release.set()
        setup.join(10)
    assert answer == b"ok"  # the child got its token
    assert fake.stats == {"login": 1}  # the child's login; the parent's thread then adopted its token
