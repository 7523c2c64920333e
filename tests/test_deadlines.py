"""Every wait is bounded: the lock wait as a whole, planted FIFOs, and a fork during first use."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from koyeb_auth import FileTokenStore, KoyebAuth, LockTimeoutError
from koyeb_auth.testing import FakeKoyebAPI

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
