"""Single flight, proven with real threads, real asyncio tasks and real processes."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import trio
from freezegun import freeze_time

from koyeb_auth import FileTokenStore, KoyebAuth, LockTimeoutError, MemoryTokenStore, _sources
from koyeb_auth.testing import FakeKoyebAPI

from .conftest import release_workers, start_workers


def test_fifty_concurrent_asyncio_requests_at_cold_start_cause_one_login(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.login_delay = 0.2  # every task arrives while the login is in flight
    auth = make_auth()

    async def run() -> list[int]:
        async with httpx.AsyncClient(auth=auth, base_url=fake.url) as client:
            responses = await asyncio.gather(*(client.get("/v1/apps") for _ in range(50)))
        return [r.status_code for r in responses]

    assert asyncio.run(run()) == [200] * 50
    assert fake.stats == {"login": 1, "api": 50}


@pytest.mark.parametrize("client", ["httpx", "requests"])
def test_sixteen_threads_at_cold_start_cause_one_login(
    client: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.login_delay = 0.2
    auth = make_auth()
    barrier = threading.Barrier(16)

    def work(_: int) -> int:
        barrier.wait()
        if client == "httpx":
            return httpx.get(fake.url + "/v1/apps", auth=auth).status_code
        return requests.get(fake.url + "/v1/apps", auth=auth, timeout=10).status_code

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(work, range(16))) == [200] * 16
    assert fake.stats == {"login": 1, "api": 16}


def test_threads_in_the_refresh_window_cause_one_refresh_and_no_401(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    # The other threads keep sending the current token while one refreshes it. A server that revokes
    # it on refresh would answer them 401 (then they adopt the new one: see the demo test); this
    # one keeps it valid until it expires, so any 401 here would be the library's fault.
    fake.revoke_on_refresh = False
    fake.ttl = 600
    auth = make_auth(refresh_margin=300)
    barrier = threading.Barrier(16)

    def work(_: int) -> int:
        barrier.wait()
        return httpx.get(fake.url + "/v1/apps", auth=auth).status_code

    with freeze_time(tick=True) as clock:
        auth.get_token()
        clock.tick(400)
        fake.login_delay = 0.0
        with ThreadPoolExecutor(16) as pool:
            assert list(pool.map(work, range(16))) == [200] * 16
    assert fake.stats == {"login": 1, "refresh": 1, "api": 16}


def test_tasks_and_threads_of_two_auth_objects_sharing_a_file_cause_one_login(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.login_delay = 0.2
    first, second = make_auth(), make_auth()

    async def tasks() -> list[int]:
        async with httpx.AsyncClient(auth=first) as client:
            responses = await asyncio.gather(*(client.get(fake.url + "/v1/apps") for _ in range(20)))
        return [r.status_code for r in responses]

    with ThreadPoolExecutor(9) as pool:
        async_run = pool.submit(asyncio.run, tasks())
        sync_runs = [pool.submit(second.get_token) for _ in range(8)]
        assert async_run.result() == [200] * 20
        assert len({run.result() for run in sync_runs}) == 1
    assert fake.stats == {"login": 1, "api": 20}


@pytest.mark.parametrize("client", ["httpx", "async", "requests"])
def test_twelve_processes_at_cold_start_cause_one_login_and_a_later_one_none(
    client: str, fake: FakeKoyebAPI, cache_path: Path
) -> None:
    fake.login_delay = 0.3
    env = {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD,
           "WORKER_CACHE": str(cache_path)}
    results = release_workers(start_workers(12, env, client, "3"))
    assert len({r["pid"] for r in results}) == 12
    assert all(r["statuses"] == [200] * 3 for r in results)
    assert fake.stats == {"login": 1, "api": 36}
    later = release_workers(start_workers(1, env, client, "2"))
    assert later[0]["statuses"] == [200, 200]
    assert fake.stats == {"login": 1, "api": 38}


def test_a_lock_held_too_long_is_a_clear_lock_timeout(fake: FakeKoyebAPI, cache_path: Path) -> None:
    holder = FileTokenStore(cache_path)  # stands in for another process stuck inside the lock
    assert holder.try_lock()
    try:
        auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path, lock_timeout=0.3)
        with pytest.raises(LockTimeoutError, match=str(cache_path)):
            auth.get_token()
        with pytest.raises(LockTimeoutError):
            asyncio.run(auth.aget_token())
    finally:
        holder.unlock()
    assert fake.stats == {}


def test_a_cancelled_waiter_leaves_no_lock_held(fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth],
                                                cache_path: Path) -> None:
    holder = FileTokenStore(cache_path)
    auth = make_auth()

    async def run() -> str:
        assert holder.try_lock()
        waiter = asyncio.create_task(auth.aget_token())
        await asyncio.sleep(0.2)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        holder.unlock()
        return await asyncio.wait_for(auth.aget_token(), timeout=5)

    assert asyncio.run(run())
    assert fake.stats == {"login": 1}


def test_a_refresh_whose_caller_is_cancelled_is_finished_and_saved(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    # The API revokes the old token when it refreshes: a new token thrown away with the cancelled
    # caller would leave the next one a refused refresh and a login.
    fake.ttl = 600
    auth = make_auth(refresh_margin=300)

    async def run() -> int:
        refresh = asyncio.create_task(auth.aget_token())
        await asyncio.sleep(0.5)  # half-way through the refresh
        refresh.cancel()
        with pytest.raises(asyncio.CancelledError):
            await refresh
        await asyncio.sleep(1.0)  # the API has answered the refresh (the loop must still run then)
        async with httpx.AsyncClient(auth=auth) as client:
            return (await client.get(fake.url + "/v1/apps")).status_code

    with freeze_time(tick=True) as clock:
        auth.get_token()
        clock.tick(400)  # in the refresh window
        fake.refresh_delay = 1.0
        assert asyncio.run(run()) == 200
        stored = make_auth(refresh_margin=300).cached_token()  # a new object: read from the store
    assert fake.stats["login"] == 1 and fake.stats["refresh"] == 1 and "refresh_refused" not in fake.stats
    assert stored is not None and stored.value == fake.issued[-1]  # the refresh's token, saved


def test_a_refresh_whose_trio_caller_is_cancelled_is_finished_and_saved(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    # As under asyncio: trio cancelled the refresh's HTTP call, the API refreshed anyway (revoking
    # the old token), and the next request got a 401, a refused refresh and a login.
    fake.ttl = 4  # falls due after 2 s: refresh_margin is capped at half the lifetime
    auth = make_auth(refresh_margin=300)
    auth.get_token()
    time.sleep(2.2)
    fake.refresh_delay = 1.0

    async def run() -> int:
        with trio.move_on_after(0.5):  # half-way through the refresh
            await auth.aget_token()
        async with httpx.AsyncClient(auth=auth) as client:
            return (await client.get(fake.url + "/v1/apps")).status_code

    assert trio.run(run) == 200
    stored = make_auth(refresh_margin=300).cached_token()  # a new object: read from the store
    assert fake.stats["login"] == 1 and fake.stats["refresh"] == 1 and "refresh_refused" not in fake.stats
    assert stored is not None and stored.value == fake.issued[-1]  # the refresh's token, saved


def test_a_trio_caller_cancelled_before_its_session_call_goes_out_sends_none(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], monkeypatch: pytest.MonkeyPatch
) -> None:
    # trio does not abandon a thread: a cancellation that arrives while the password's hash is
    # derived in one is delivered at the next checkpoint. The shield raised for the session call
    # came first: the logout the caller had given up on went out, and the caller waited for it.
    make_auth().get_token()  # a session in the store
    monkeypatch.setattr(_sources, "_hashes", {})  # a new process: its hash not derived yet
    scrypt = hashlib.scrypt

    def slow_scrypt(*args: Any, **kwargs: Any) -> bytes:
        time.sleep(0.5)
        return scrypt(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", slow_scrypt)
    auth = make_auth()

    async def run() -> None:
        with trio.move_on_after(0.1):  # while the hash is derived
            await auth.alogout()

    trio.run(run)
    assert "logout" not in fake.stats
    assert make_auth().cached_token() is not None  # the session is still there


def test_arefresh_runs_under_trio(fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]) -> None:
    # arefresh read the store through asyncio.to_thread: under trio, a RuntimeError (no running
    # event loop) escaped with its traceback.
    auth = make_auth()
    first = auth.get_token()
    assert trio.run(auth.arefresh) != first
    assert fake.stats == {"login": 1, "refresh": 1}


def test_ten_trio_tasks_at_cold_start_cause_one_login(fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]) -> None:
    # httpx runs on trio too: the async path must not assume asyncio.
    fake.login_delay = 0.3  # every task arrives while the login is in flight
    auth = make_auth()
    statuses: list[int] = []

    async def run() -> None:
        async with httpx.AsyncClient(auth=auth) as client, trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(lambda: get(client))

    async def get(client: httpx.AsyncClient) -> None:
        statuses.append((await client.get(fake.url + "/v1/apps")).status_code)

    trio.run(run)
    assert statuses == [200] * 10
    assert fake.stats == {"login": 1, "api": 10}


def test_trio_tasks_queued_behind_a_lock_held_elsewhere_time_out_at_lock_timeout(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], cache_path: Path
) -> None:
    auth = make_auth(lock_timeout=0.5)
    waited: list[float] = []

    async def wait() -> None:
        started = time.monotonic()
        with pytest.raises(LockTimeoutError):
            await auth.aget_token()
        waited.append(time.monotonic() - started)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(wait)

    holder = FileTokenStore(cache_path)
    assert holder.try_lock()
    trio.run(run)
    holder.unlock()
    assert len(waited) == 3 and max(waited) < 0.5 + 2.0  # lock_timeout, with slack for a busy machine
    assert trio.run(auth.aget_token)  # and the lock, once free, is taken
    assert fake.stats == {"login": 1}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
# Python 3.12+ warns about forking with threads running (here the fake API's): that is the case
# this test proves safe for the library's own locks.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_blocking_call_on_the_loop_of_the_task_renewing_fails_at_once(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    # requests in a coroutine while a task of the same loop holds the renewal: waiting for it would
    # block the loop that task needs, until lock_timeout, and fail both.
    fake.login_delay = 1.0
    auth = make_auth(lock_timeout=5)

    async def run() -> tuple[float, str]:
        renewal = asyncio.create_task(auth.aget_token())
        await asyncio.sleep(0.2)  # the task is in, waiting for the login
        started = time.monotonic()
        with pytest.raises(LockTimeoutError, match=r"aget_token\(\)") as raised:
            requests.get(fake.url + "/v1/apps", auth=auth, timeout=10)
        assert raised.value.__context__ is None
        return time.monotonic() - started, await renewal

    failed_after, token = asyncio.run(run())
    assert failed_after < 2.5  # at once, with slack for a busy machine: before, lock_timeout (5 s)
    assert token == auth.get_token()  # the renewal went on unharmed
    assert fake.stats["login"] == 1


def test_a_forked_child_uses_the_cached_token_without_deadlock(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()
    token = auth.get_token()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own locks, the parent's token
        ok = auth.get_token() == token and httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200
        os.write(write, b"ok" if ok else b"no")
        os._exit(0)
    os.close(write)
    assert os.read(read, 2) == b"ok"
    os.waitpid(pid, 0)
    assert fake.stats == {"login": 1, "api": 1}


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_koyeb_auth_objects_sharing_one_store_object_share_one_login(
    kind: str, fake: FakeKoyebAPI, tmp_path: Path
) -> None:
    # A filelock object is reentrant within a process: the in-process lock must belong to the
    # store, or two KoyebAuth objects on one store would both get in and both log in.
    fake.login_delay = 0.2

    def pair() -> list[KoyebAuth]:
        store = FileTokenStore(tmp_path / f"{len(fake.issued)}.json") if kind == "file" else MemoryTokenStore()
        return [KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, store=store) for _ in range(2)]

    threaded, barrier = pair(), threading.Barrier(8)

    def work(i: int) -> str:
        barrier.wait()
        return threaded[i % 2].get_token()

    with ThreadPoolExecutor(8) as pool:
        assert len(set(pool.map(work, range(8)))) == 1
    assert fake.stats == {"login": 1}

    async def tasks(auths: list[KoyebAuth]) -> set[str]:
        return set(await asyncio.gather(*(auths[i % 2].aget_token() for i in range(20))))

    assert len(asyncio.run(tasks(pair()))) == 1  # a new store: cold again
    assert fake.stats == {"login": 2}


def test_a_cancelled_renewal_on_a_loop_that_stops_leaves_no_lock_held(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], cache_path: Path
) -> None:
    # A sync wrapper around async code: the loop runs only while it is given something to run.
    fake.login_delay = 0.5
    auth = make_auth(lock_timeout=2)
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(asyncio.TimeoutError):
            loop.run_until_complete(asyncio.wait_for(auth.aget_token(), 0.1))  # cancelled after the call went out
        time.sleep(1.0)  # the login has been answered; the loop that would finish it is not running
        other = make_auth(lock_timeout=2)  # another process, as far as the lock file is concerned
        holder = FileTokenStore(cache_path)
        # The lock file stays taken by this process, so every other process of the fleet times out.
        assert holder.try_lock(), "the lock file is still held by the stopped loop's task"
        holder.unlock()
        assert other.get_token()
    finally:
        loop.close()
