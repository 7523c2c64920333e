"""Where the password fan-out's time goes: each phase of a cold start, per process, over rounds.

    python -m benchmarks.fanout_profile [processes] [rounds]

Every worker notes (see fanout_worker's BENCH_PHASES) when it read "go", when its password's hash
began and ended and the CPU it took, its store calls, and when it held a token; the fake API notes
when the one login ended. Times are ms after the release, the median over the processes of each
round, then the median of the rounds (the slowest process is given too).
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from koyeb_auth.testing import FakeKoyebAPI

from .common import LOGIN_DELAY, median, release, table

# The phases, as (label, what a report gives, in ms after the release).
_PHASES: list[tuple[str, str]] = [
    ("read `go`", "go_at"),
    ("hash began", "_scrypt_start"),
    ("hash ended", "_scrypt_end"),
    ("first lock try", "try_lock_start"),
    ("held a token", "ready_at"),
]


def scrypt_alone(rounds: int = 9) -> tuple[float, float]:
    """One password hash as koyeb_auth._sources makes it, alone on an idle core: (wall ms, CPU ms)."""
    walls, cpus = [], []
    for number in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        hashlib.scrypt(f"password {number}".encode(), salt=b"salt", n=1 << 14, r=8, p=1, maxmem=64 << 20, dklen=32)
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return median(walls), median(cpus)


def _round(fake: FakeKoyebAPI, size: int, cache: Path) -> dict[str, Any]:
    started, reports = release(fake, "koyeb", size, cache, {"BENCH_PHASES": "1"})
    to_wall = time.time() - time.monotonic()  # the fake API notes its events on the monotonic clock
    login_end = max(at for at, name in fake.events if name == "login") + to_wall
    figures: dict[str, Any] = {}
    for label, field in _PHASES:
        times = [(r[field] - started) * 1000 for r in reports if field in r]  # a late process never locks
        figures[label] = (median(times), max(times))
    figures["login ended"] = ((login_end - started) * 1000,) * 2
    winner = next(r for r in reports if "send_start" in r)
    figures["login began"] = ((winner["send_start"] - started) * 1000,) * 2
    waiters = [r for r in reports if r is not winner]

    def ms(values: list[float]) -> float:
        return median(values) * 1000

    figures |= {
        "hash CPU ms": ms([r["_scrypt_cpu"] for r in reports]),
        "hash wall ms": ms([r["_scrypt_end"] - r["_scrypt_start"] for r in reports]),
        "go to hash start ms": ms([r["_scrypt_start"] - r["go_at"] for r in reports]),
        "go to first lock try ms": ms([r["try_lock_start"] - r["go_at"] for r in reports if "try_lock_start" in r]),
        "processes that tried the lock": sum(1 for r in reports if "try_lock_start" in r),
        "login's process: login sent before its hash ended, ms": (winner["_scrypt_end"] - winner["send_start"]) * 1000,
        "login's process: lock held to login sent ms": (winner["send_start"] - winner["try_lock_end"]) * 1000,
        "login's process: HTTP client built in ms": (winner["_client_end"] - winner["_client_start"]) * 1000,
        "login's process: HTTP client CPU ms": winner["_client_cpu"] * 1000,
        "login's process: login call CPU ms": winner["send_cpu"] * 1000,
        "login's process: modules loaded after go": winner["modules_loaded"],
        "waiters: login end to token held ms": ms([r["ready_at"] - login_end for r in waiters]),
        "waiters: slowest, login end to token held ms": max(r["ready_at"] - login_end for r in waiters) * 1000,
        "CPU ms after go": ms([r["cpu"] for r in reports]),
        "lock tries": median([r.get("try_lock_calls", 0) for r in reports]),
        "store reads": median([r.get("load_calls", 0) for r in reports]),
        "logins": sum(1 for _, name in fake.events if name == "login"),
    }
    return figures


_PER_PROCESS = ("go to hash start ms", "hash CPU ms", "hash wall ms", "processes that tried the lock",
                "go to first lock try ms",
                "login's process: login sent before its hash ended, ms", "login's process: lock held to login sent ms",
                "login's process: HTTP client built in ms", "login's process: HTTP client CPU ms",
                "login's process: login call CPU ms", "login's process: modules loaded after go",
                "waiters: login end to token held ms",
                "waiters: slowest, login end to token held ms", "CPU ms after go", "lock tries", "store reads",
                "logins")


def profile(size: int = 32, rounds: int = 5) -> tuple[str, dict[str, Any]]:
    alone_wall, alone_cpu = scrypt_alone()
    with FakeKoyebAPI(login_delay=LOGIN_DELAY) as fake, tempfile.TemporaryDirectory() as tmp:
        runs = [_round(fake, size, Path(tmp) / f"round-{number}.json") for number in range(rounds)]
    rows: list[list[object]] = []
    for label in [label for label, _ in _PHASES] + ["login began", "login ended"]:
        rows.append([label, f"{median([r[label][0] for r in runs]):.0f}", f"{median([r[label][1] for r in runs]):.0f}"])
    rows.sort(key=lambda row: float(str(row[1])))
    per_process = [[name, f"{median([r[name] for r in runs]):.1f}"]
                   for name in _PER_PROCESS]
    text = (f"{size} password processes released at once, {rounds} rounds; login latency {LOGIN_DELAY * 1000:.0f} ms. "
            f"One scrypt alone: {alone_wall:.1f} ms wall, {alone_cpu:.1f} ms CPU.\n\n"
            + table(["phase", "median process, ms after release", "slowest process"], rows) + "\n\n"
            + table(["per process (median)", "figure"], per_process))
    return text, {"runs": runs, "scrypt_ms": alone_wall}


if __name__ == "__main__":
    print(profile(*(int(arg) for arg in sys.argv[1:3]))[0])
