"""2. Cold-start fan-out: N processes start at once against an API whose login (or token exchange)
takes 100 ms: a personal access token with an organization (the recommended path), a password, and
each one's naive twin, where every process asks for itself. Then N workers of a multiprocessing
pool given one KoyebAuth (the password path), for each start method."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from koyeb_auth import FileTokenStore, KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

from .common import LOGIN_DELAY, cold_starts, rounds_of, sessions_opened, table
from .fanout_profile import scrypt_alone

SIZES = (1, 2, 4, 8, 16, 32)
POOL_METHODS = ("spawn", "forkserver", "fork")
ROUNDS = 3  # the machine is shared: one round can swing 2x

# A pool worker's barriers, given at its start (a barrier cannot travel with a task).
_barriers: tuple[Any, Any] | None = None


def measure(sizes: tuple[int, ...] = SIZES, rounds: int = ROUNDS) -> tuple[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"token": ("token", {}), "naive token": ("naive-token", {}),
                    "password": ("koyeb", {}), "naive password": ("naive", {}), "hash alone": ("hash", {})}
        text, summary = cold_starts(sizes, variants, Path(tmp), rounds)
        pools, pool_summary = pool_starts(sizes, Path(tmp), rounds)
    hash_ms = scrypt_alone()[0]
    cores = os.cpu_count() or 1
    floors = {size: max(LOGIN_DELAY * 1000, size * hash_ms / cores) for size in sizes}
    summary |= pool_summary | {f"floor_{size}_ms": floor for size, floor in floors.items()}
    measured = {size: max(LOGIN_DELAY * 1000, summary[f"hash alone_{size}_ms"]) for size in sizes}
    rows = [[size, f"{floors[size]:.0f}", f"{summary[f'password_{size}_ms'] / floors[size]:.2f}x",
             f"{measured[size]:.0f}", f"{summary[f'password_{size}_ms'] / measured[size]:.2f}x"] for size in sizes]
    text += (f"\n\n`hash alone`: processes started and released the same way that only derive the password's "
             "hash (scrypt, 16 MiB), with no koyeb-auth call and no login. The password path against two "
             f"floors: `max(login, N x hash / cores)`, with one hash alone {hash_ms:.0f} ms on {cores} cores, "
             "and `max(login, hash alone)`, what N hashes at once measurably take here:\n\n"
             + table(["processes", "max(login, N x hash / cores) ms", "password / it",
                      "max(login, hash alone) ms", "password / it"], rows) + "\n\n" + pools)
    return text, summary


def pool_starts(sizes: tuple[int, ...], directory: Path, rounds: int = ROUNDS) -> tuple[str, dict[str, float]]:
    """For each size and start method, a pool of that many workers each given the parent's KoyebAuth."""
    with FakeKoyebAPI(login_delay=LOGIN_DELAY) as fake:

        def start(name: str, size: int, run: int) -> tuple[int, float]:
            method = name.removeprefix("pool ")
            return _pool_start(fake, method, size, directory / f"pool-{method}-{size}-{run}.json")

        rows, summary = rounds_of(start, [f"pool {method}" for method in POOL_METHODS], sizes, rounds)
    headers = ["workers"] + [f"pool {method} {figure}" for method in POOL_METHODS for figure in ("logins", "ms")]
    text = (f"**A pool** (`multiprocessing.get_context(method).Pool(N)`, the password path): the parent checks "
            "its credentials with one `get_token()`, which derives the password's hash, then its token is "
            "dropped from the cache, so that the workers start cold and one of them logs in. Wall time from "
            "`pool.map` of N tasks, each given the parent's KoyebAuth, until the last worker holds a token; "
            f"the workers have started and imported koyeb-auth before. Median of {rounds} rounds (logins: the "
            "most in a round).\n\n" + table(headers, rows))
    return text, summary


def _pool_start(fake: FakeKoyebAPI, method: str, size: int, cache: Path) -> tuple[int, float]:
    context = multiprocessing.get_context(method)
    started, done = context.Barrier(size + 1), context.Barrier(size)
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, store=FileTokenStore(cache))
    auth.get_token()  # as an application that checks its credentials before it starts its pool
    cache.unlink()
    fake.reset_stats()
    with context.Pool(size, initializer=_worker_started, initargs=(started, done)) as pool:
        started.wait()
        began = time.time()
        held = pool.map(_hold_token, [auth] * size, chunksize=1)
    return sessions_opened(fake), (max(held) - began) * 1000


def _worker_started(started: Any, done: Any) -> None:
    global _barriers
    import koyeb_auth.auth  # noqa: F401 - what a worker that has built its clients has loaded

    _barriers = (started, done)
    started.wait()


def _hold_token(auth: KoyebAuth) -> float:
    """A pool task: get a token; when. Each worker then waits for the others, so each takes one task."""
    auth.get_token()
    held = time.time()
    assert _barriers is not None
    _barriers[1].wait()
    return held


if __name__ == "__main__":
    print(measure()[0])
