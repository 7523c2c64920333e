from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from koyeb_auth import KoyebAuth, RedisTokenStore
from koyeb_auth._token import fingerprint
from koyeb_auth.testing import FakeKoyebAPI

from .redis_server import start_redis_server

WORKER = Path(__file__).with_name("worker.py")


# Fixtures that start a server: every test that uses one (directly or through another fixture) is
# slow. Tests that start processes or servers of their own say so with @pytest.mark.slow.
SERVERS = {"fake", "redis_url"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVERS & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's Koyeb settings or writes to their cache."""
    for name in list(os.environ):
        if name.startswith("KOYEB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def fake() -> Iterator[FakeKoyebAPI]:
    """The fake API; every test using it also proves that no secret reached a log record."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    root = logging.getLogger()
    level, root.level = root.level, logging.DEBUG
    root.addHandler(handler)
    try:
        with FakeKoyebAPI(ttl=3600) as api:
            yield api
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    secrets = {*api.issued, *api.users.values(), api.PERSONAL_TOKEN}
    text = "\n".join(_record_text(record) for record in records)
    leaked = [fingerprint(secret) for secret in secrets if secret in text]
    assert leaked == [], "a token or password reached a log record (fingerprints shown)"


def _record_text(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        text += "\n" + "".join(traceback.format_exception(record.exc_info[1]))
    return text


def shown_by_a_traceback(error: BaseException) -> str:
    """The repr of every local of every frame the error's traceback (and its chain's) holds, below
    the test's own frame (which holds the secrets it planted): what Sentry and friends record."""
    shown: list[str] = []
    seen: BaseException | None = error
    traceback_ = error.__traceback__.tb_next if error.__traceback__ else None
    while seen is not None:
        while traceback_ is not None:
            shown += [f"{name}={_repr(value)}" for name, value in traceback_.tb_frame.f_locals.items()]
            traceback_ = traceback_.tb_next
        seen = seen.__cause__ or seen.__context__
        traceback_ = seen.__traceback__ if seen is not None else None
        shown += [str(seen), repr(seen)] if seen is not None else []
    return "\n".join(shown)


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # an object its constructor failed to finish (as tracebacks render it)
        return "<unrepresentable>"


@pytest.fixture
def cache_path(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "tokens.json"


@pytest.fixture
def make_auth(fake: FakeKoyebAPI, cache_path: Path) -> Callable[..., KoyebAuth]:
    def make(**options: Any) -> KoyebAuth:
        options.setdefault("email", FakeKoyebAPI.EMAIL)
        options.setdefault("password", FakeKoyebAPI.PASSWORD)
        options.setdefault("api_url", fake.url)
        if "store" not in options:
            options.setdefault("cache_path", cache_path)
        return KoyebAuth(**options)

    return make


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: the one .ci/run started (REDIS_TEST_URL), else one of our own."""
    if url := os.environ.get("REDIS_TEST_URL"):
        yield url
        return
    with start_redis_server() as server:
        yield server.url


@pytest.fixture
def namespace() -> str:
    """A Redis namespace of the test's own, so that tests sharing one server never meet."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def redis_store(redis_url: str, namespace: str) -> Iterator[Callable[..., RedisTokenStore]]:
    """Builds stores on the test's namespace (one per simulated host), closed at teardown."""
    stores: list[RedisTokenStore] = []

    def make(**options: Any) -> RedisTokenStore:
        options.setdefault("namespace", namespace)
        stores.append(RedisTokenStore(options.pop("url", redis_url), **options))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


_SCHEDSTAT = Path("/proc/thread-self/schedstat")


def _asleep() -> float:
    """Seconds this thread has spent neither on a CPU nor waiting for one: blocked in the kernel.

    Linux's schedstat splits a thread's time into running and waiting on a run queue; the rest of
    the wall clock is time it chose to wait (a lock, a sleep, a read). A busy machine adds to the
    run-queue wait only, so this measure of blocking does not grow with the load.
    """
    running, queued = (int(field) for field in _SCHEDSTAT.read_text().split()[:2])
    return time.monotonic() - (running + queued) / 1e9


@contextlib.asynccontextmanager
async def loop_blocked() -> AsyncIterator[list[float]]:
    """How long each callback of the running event loop blocked its thread, while the block runs.

    Every step of every task is a callback (`asyncio.Handle._run`); one that waits on a lock or a
    sleep instead of awaiting blocks the loop for that long. Where the kernel does not report
    schedstat (not Linux), the callback's wall time stands in, which a busy machine can inflate.
    """
    blocked = [0.0]
    measure = _asleep if _SCHEDSTAT.exists() else time.monotonic
    original = asyncio.events.Handle._run
    step_began = measure()  # the step that leaves this block is still running when it does

    def timed(handle: asyncio.Handle) -> None:
        nonlocal step_began
        step_began = measure()
        try:
            original(handle)
        finally:
            blocked.append(measure() - step_began)

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]
    try:
        yield blocked
    finally:
        asyncio.events.Handle._run = original  # type: ignore[method-assign]
        blocked.append(measure() - step_began)


def start_workers(count: int, env: dict[str, str], *args: str, code: str | None = None) -> list[subprocess.Popen[str]]:
    """Start worker processes (tests/worker.py with `args`, or the program `code`) and return once
    every one of them is ready to go."""
    full_env = {**os.environ, **env}
    program = ["-c", code] if code is not None else [str(WORKER), *args]
    workers = [
        subprocess.Popen(
            [sys.executable, *program],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env,
        )
        for _ in range(count)
    ]
    for worker in workers:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert line.strip() == "ready", (line, worker.stderr.read() if worker.stderr else "")
    return workers


def release_workers(workers: list[subprocess.Popen[str]], timeout: float = 60) -> list[dict[str, Any]]:
    """Let every ready worker go at once, then collect what each one reported."""
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=timeout)
        assert worker.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results
