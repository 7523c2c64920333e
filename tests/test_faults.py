"""Faults: killed lock holders and writers, a failing or slow API, rate limits, a busy event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from freezegun import freeze_time

from koyeb_auth import APIError, APIUnreachableError, FileTokenStore, KoyebAuth, RateLimitedError, Token
from koyeb_auth.testing import FakeKoyebAPI, Fault

from .conftest import loop_blocked, release_workers, start_workers

# Valid for a year from now: a stored token said to last longer than ten years is refused as absurd.
YEAR = 365 * 86400
OLD = Token("old-token", obtained_at=time.time(), expires_at=time.time() + YEAR)
NEW = Token("new-token", obtained_at=time.time() + 1, expires_at=time.time() + YEAR)


def test_a_lock_holder_killed_during_a_slow_login_does_not_block_the_others(
    fake: FakeKoyebAPI, cache_path: Path
) -> None:
    env = {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD,
           "WORKER_CACHE": str(cache_path)}
    fake.login_delay = 30.0  # the holder's login hangs
    holder = start_workers(1, env, "httpx", "1")[0]
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    probe = FileTokenStore(cache_path)
    deadline = time.monotonic() + 10
    while probe.try_lock():  # wait until the holder has the lock and is inside its login
        probe.unlock()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    waiters = start_workers(3, env, "httpx", "1")
    fake.login_delay = 0.0
    released = go_and_kill(waiters, holder)
    results = release_workers(waiters, timeout=30) if released else []
    assert [r["statuses"] for r in results] == [[200]] * 3
    assert time.monotonic() - released < 10  # the kernel freed the lock at once
    assert fake.stats.get("login", 0) == 1  # one of the waiters; the dead holder's login never finished


def go_and_kill(waiters: list[subprocess.Popen[str]], holder: subprocess.Popen[str]) -> float:
    time.sleep(0.3)  # the holder is now blocked in its login, holding the lock
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    return time.monotonic()


WRITER = textwrap.dedent("""
    import os, signal, sys, tempfile
    from koyeb_auth import FileTokenStore, Token
    step = sys.argv[2]
    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    real_replace = os.replace
    def replace_then_die(*args, **kwargs):
        real_replace(*args, **kwargs)
        die()
    if step == "before-temp-file":
        tempfile.mkstemp = die
    elif step == "after-write-before-fsync":
        os.fsync = die
    elif step == "before-rename":
        os.replace = die
    elif step == "after-rename":
        os.replace = replace_then_die
    FileTokenStore(sys.argv[1]).save("k", Token("new-token", obtained_at=float(sys.argv[3]),
                                                expires_at=float(sys.argv[4])))
""")


@pytest.mark.slow
@pytest.mark.parametrize("step", ["before-temp-file", "after-write-before-fsync", "before-rename", "after-rename"])
def test_a_writer_killed_at_any_step_leaves_the_old_or_the_new_cache_never_a_torn_one(
    tmp_path: Path, step: str
) -> None:
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save("k", OLD)
    writer = subprocess.run([sys.executable, "-c", WRITER, str(path), step, str(NEW.obtained_at), str(NEW.expires_at)],
                            check=False, timeout=30)
    assert writer.returncode == -signal.SIGKILL
    survivor = FileTokenStore(path).load("k")
    assert survivor == (NEW if step == "after-rename" else OLD)
    FileTokenStore(path).save("other", NEW)  # the next writer sweeps what the dead one left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]


def test_a_failing_api_during_refresh_keeps_the_valid_token_and_backs_off(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.ttl = 600
    auth = make_auth(refresh_margin=300, timeout=1.0)
    outages = [Fault(500), Fault(503), Fault(drop=True), Fault(delay=1.5)]  # 500, 503, cut connection, timeout
    fake.fail("refresh", outages[0], times=1000)
    with freeze_time(tick=True) as clock, httpx.Client(auth=auth, timeout=10) as client:
        assert client.get(fake.url + "/v1/apps").status_code == 200
        clock.tick(301)  # due, with 299 s of validity left
        statuses = []
        for second in range(290):
            if second % 75 == 0:  # vary the outage
                fake._faults["refresh"].clear()
                fake.fail("refresh", outages[second // 75], times=1000)
            statuses.append(client.get(fake.url + "/v1/apps").status_code)
            clock.tick(1)
        assert statuses == [200] * 290
        attempts = fake.stats["fault_refresh"]
        # Exponential backoff with jitter (1 s doubling to 60 s): a handful of tries in 290 s, not 290.
        assert 4 <= attempts <= 16
        clock.tick(20)  # expired; the API still fails: a clear error, not a loop
        fake.fail("login", Fault(503), times=1000)
        for _ in range(20):
            # The last failure again while its backoff lasts, else the failed login's: never a 200
            # with the expired token, never a burst of calls.
            with pytest.raises((APIError, APIUnreachableError)):
                client.get(fake.url + "/v1/apps")
    assert fake.stats.get("fault_login", 0) <= 2
    assert fake.stats["api"] == 291


def test_slow_and_dropped_session_calls_are_unreachable_errors(fake: FakeKoyebAPI, cache_path: Path) -> None:
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path, timeout=0.5)
    fake.fail("login", Fault(delay=2.0))
    with pytest.raises(APIUnreachableError, match="Timeout"):
        auth.get_token()
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path)
    fake.fail("login", Fault(drop=True))
    with pytest.raises(APIUnreachableError, match="Could not reach"):
        auth.get_token()


def test_rate_limiting_honours_x_ratelimit_reset_without_hammering(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    limited = Fault(429, {"status": 429, "code": "rate_limit_error", "message": "Rate limit exceeded"},
                    {"x-ratelimit-reset": "42"})
    fake.fail("login", limited)
    auth = make_auth()
    with freeze_time(tick=True) as clock:
        for _ in range(5):
            with pytest.raises(RateLimitedError) as caught:
                auth.get_token()
            assert caught.value.retry_after == 42
        assert fake.stats == {"fault_login": 1}  # five calls, one request
        clock.tick(43)
        assert auth.get_token()
    assert fake.stats == {"fault_login": 1, "login": 1}


@pytest.mark.slow
def test_the_loop_probe_sees_a_blocking_call_and_not_a_busy_machine() -> None:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]

    async def run() -> tuple[float, float]:
        async with loop_blocked() as busy:
            for _ in range(30):  # steps that compute while the hogs fight them for the CPUs
                sum(range(50_000))
                await asyncio.sleep(0.005)
        async with loop_blocked() as blocking:
            await asyncio.sleep(0.005)
            time.sleep(0.2)  # what a coroutine must never do
        return max(busy), max(blocking)

    try:
        busy, blocking = asyncio.run(run())
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert busy < 0.05
    assert blocking >= 0.15


def test_waiting_for_another_process_lock_keeps_the_event_loop_responsive(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], cache_path: Path
) -> None:
    holder_script = textwrap.dedent("""
        import sys, time
        from koyeb_auth import FileTokenStore
        store = FileTokenStore(sys.argv[1])
        assert store.lock(timeout=5)
        print("locked", flush=True)
        time.sleep(2)
        store.unlock()
    """)
    holder = subprocess.Popen([sys.executable, "-c", holder_script, str(cache_path)], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    auth = make_auth()

    async def run() -> float:
        started = time.monotonic()
        async with loop_blocked() as blocked:
            await auth.aget_token()
        assert time.monotonic() - started > 1.0  # it really waited for the other process
        return max(blocked)

    worst_gap = asyncio.run(run())
    holder.wait(timeout=10)
    assert worst_gap < 0.1
    assert fake.stats == {"login": 1}
