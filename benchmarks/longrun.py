"""4. A long-running worker: a million warm requests and a thousand refreshes, memory and fds flat.

The requests are the auth layer's own work: each drives KoyebAuth's httpx flow over one request and
a 200 response, exactly as a client would between its own steps (going through a whole client at
~200 µs a request would take most of an hour). The clock is moved on every REQUESTS / REFRESHES
requests so that the token falls due; each refresh is a real call to the fake API over loopback
and a real atomic rewrite of the cache file.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import time
from pathlib import Path

import httpx

from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

from .common import table

REQUESTS, REFRESHES, TTL = 1_000_000, 1000, 600.0


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def measure() -> tuple[str, dict[str, float]]:
    real_time, offset = time.time, [0.0]
    time.time = lambda: real_time() + offset[0]  # one clock for the library and the fake API
    try:
        with FakeKoyebAPI(ttl=TTL) as fake, tempfile.TemporaryDirectory() as tmp:
            auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=Path(tmp) / "tokens.json")
            request = httpx.Request("GET", fake.url + "/v1/apps")
            response = httpx.Response(200)
            every = REQUESTS // REFRESHES
            _drive(auth, request, response, every)  # warm-up: login, imports, first cache write
            gc.collect()
            marks = [("start", _rss_kib(), _open_fds())]
            started = time.perf_counter()
            for done in range(1, REFRESHES + 1):
                offset[0] += TTL * 0.6  # past the refresh window (min(300, 600 / 2) before expiry)
                _drive(auth, request, response, every)
                if done == REFRESHES // 2:
                    marks.append(("half way", _rss_kib(), _open_fds()))
            elapsed = time.perf_counter() - started
            gc.collect()
            marks.append(("end", _rss_kib(), _open_fds()))
            stats = fake.stats
    finally:
        time.time = real_time
    rows = [[name, f"{rss / 1024:.1f}", fds] for name, rss, fds in marks]
    text = (f"{REQUESTS:,} warm requests and {stats.get('refresh', 0)} refreshes ({stats.get('login', 0)} login) in "
            f"{elapsed:.1f} s: {elapsed / REQUESTS * 1e6:.2f} µs a request for the auth layer, refreshes included.\n\n"
            + table(["", "RSS MiB", "open fds"], rows))
    return text, {"rss_growth_kib": marks[-1][1] - marks[0][1], "fd_growth": marks[-1][2] - marks[0][2],
                  "refreshes": stats.get("refresh", 0)}


def _drive(auth: KoyebAuth, request: httpx.Request, response: httpx.Response, count: int) -> None:
    for _ in range(count):
        flow = auth.sync_auth_flow(request)
        next(flow)
        with contextlib.suppress(StopIteration):
            flow.send(response)


if __name__ == "__main__":
    print(measure()[0])
