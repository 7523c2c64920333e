"""3. Refresh storm: 1000 tasks, 32 threads and 8 processes while the token enters its refresh window.

Requests go through MockTransport, so their latency is the auth layer's (plus the GIL's); only
the session calls reach the fake API, whose refresh takes REFRESH_DELAY. Latencies of requests
that started while the refresh was in flight are compared with all the others.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

from .common import go, ok_handler, percentile, results, spawn, table, wait_ready

TTL = 4.0  # refresh window: min(300 s, 4 s / 2) = 2 s before expiry, i.e. 2 s after login
REFRESH_DELAY = 0.3
RUN = 3.5
TASKS, THREADS, PROCESSES = 1000, 32, 8

Sample = tuple[float, float]  # (start, latency), monotonic seconds


def measure(runs: int = 3) -> tuple[str, dict[str, Any]]:
    """The table as markdown; the refreshes per run, and the last run's `samples` and `refreshed` (when
    each refresh ended), in seconds after its first request, for the chart (benchmarks/charts.py)."""
    rows, logins, refreshes, total = [], 0, 0, 0
    samples: list[Sample] = []
    refreshed: list[float] = []
    for run in range(1, runs + 1):
        samples, refreshed, stats, requests = _storm()
        logins, refreshes, total = logins + stats.get("login", 0), refreshes + stats.get("refresh", 0), total + requests
        inside = [lat for start, lat in samples if any(end - REFRESH_DELAY <= start <= end for end in refreshed)]
        outside = [lat for start, lat in samples if not any(end - REFRESH_DELAY <= start <= end for end in refreshed)]
        rows += [[run, stats.get("refresh", 0), "outside the refresh", len(outside), *_ms(outside)],
                 [run, "", "during the refresh", len(inside), *_ms(inside)]]
    text = (f"{TASKS} asyncio tasks and {THREADS} threads in one process, plus {PROCESSES - 1} more processes, "
            f"sharing one cache; token lifetime {TTL:g} s, refresh takes {REFRESH_DELAY * 1000:.0f} ms; {runs} runs. "
            f"Server saw **{logins} logins and {refreshes} refreshes in {runs} runs** for {total} requests. The "
            "latencies are the main process's (the p99 is mostly 1000 tasks and 32 threads sharing one GIL).\n\n"
            + table(["run", "refreshes", "requests", "count", "p50 ms", "p99 ms"], rows))
    first = min((start for start, _ in samples), default=0.0)
    return text, {"refreshes_per_run": refreshes / runs, "samples": [(start - first, lat) for start, lat in samples],
                  "refreshed": [end - first for end in refreshed]}


def _storm() -> tuple[list[Sample], list[float], dict[str, int], int]:
    """One run: the samples of the main process, when refreshes ended, the server's counts, all requests."""
    with FakeKoyebAPI(ttl=TTL, refresh_delay=REFRESH_DELAY) as fake, tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "tokens.json")
        helpers = [spawn("benchmarks.storm_worker", cache, fake.url, str(RUN)) for _ in range(PROCESSES - 1)]
        wait_ready(helpers)
        auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache)
        auth.get_token()  # the login: the refresh window opens TTL / 2 from now
        deadline = time.monotonic() + RUN
        go(helpers)
        samples: list[Sample] = []
        threads = [threading.Thread(target=_thread_loop, args=(auth, fake.url, deadline, samples))
                   for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        asyncio.run(_tasks(auth, fake.url, deadline, samples))
        for thread in threads:
            thread.join()
        helper_requests = sum(r["requests"] for r in results(helpers))
        return samples, [t for t, name in fake.events if name == "refresh"], fake.stats, len(samples) + helper_requests


def _ms(latencies: list[float]) -> list[str]:
    if not latencies:  # no request of this process fell inside that refresh (another process made it)
        return ["-", "-"]
    return [f"{percentile(latencies, 50) * 1000:.2f}", f"{percentile(latencies, 99) * 1000:.2f}"]


def _thread_loop(auth: KoyebAuth, url: str, deadline: float, samples: list[Sample]) -> None:
    with httpx.Client(transport=httpx.MockTransport(ok_handler), auth=auth) as client:
        while (start := time.monotonic()) < deadline:
            client.get(url + "/v1/apps")
            samples.append((start, time.monotonic() - start))


async def _tasks(auth: KoyebAuth, url: str, deadline: float, samples: list[Sample]) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(ok_handler), auth=auth) as client:
        async def task() -> None:
            while (start := time.monotonic()) < deadline:
                await client.get(url + "/v1/apps")
                samples.append((start, time.monotonic() - start))

        await asyncio.gather(*(task() for _ in range(TASKS)))


if __name__ == "__main__":
    print(measure()[0])
