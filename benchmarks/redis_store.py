"""5. The Redis store: its warm path and its cold start, next to the file store in the same run."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import httpx
import redis

from koyeb_auth import FileTokenStore, RedisTokenStore
from koyeb_auth.testing import FakeKoyebAPI, RedisServer

from .common import go, median, ok_handler, results, spawn, table, wait_ready
from .warm import FLOOR, URL, ConstantHeader, _alternate, warm_auth

LOGIN_DELAY = 0.1


def measure(
    count: int = 300, rounds: int = 41, sizes: tuple[int, ...] = (1, 4, 16, 32)
) -> tuple[str, dict[str, float]]:
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        warm_text, summary = _warm(server.url, Path(tmp), count, rounds)
        cold_text, cold = _cold(server.url, Path(tmp), sizes)
    return f"{warm_text}\n\n{cold_text}", {**summary, **cold}


def _warm(url: str, directory: Path, count: int, rounds: int) -> tuple[str, dict[str, float]]:
    mock = httpx.MockTransport(ok_handler)
    stores = {"KoyebAuth, file store": FileTokenStore(directory / "tokens.json"),
              "KoyebAuth, **Redis store**": RedisTokenStore(url, namespace=uuid.uuid4().hex)}
    clients = {FLOOR: httpx.Client(transport=mock, auth=ConstantHeader())}
    clients |= {name: httpx.Client(transport=mock, auth=warm_auth(store)) for name, store in stores.items()}
    admin = redis.Redis.from_url(url)
    admin.config_resetstat()
    figures = _alternate({name: (lambda c=c: c.get(URL)) for name, c in clients.items()}, count, rounds)
    commands = sum(v["calls"] for k, v in admin.info("commandstats").items() if "config" not in k)
    admin.close()
    floor = median(figures[FLOOR])
    rows = [[name, f"{median(v):.1f}", f"{median(v) / floor:.3f}x", f"{min(v):.1f}"] for name, v in figures.items()]
    text = (f"**Warm path, httpx.Client** (µs per request, median of {rounds} rounds of {count}; a valid token "
            "already in the store)\n\n" + table(["auth", "median µs", "vs floor", "best µs"], rows)
            + f"\n\nCommands Redis received during the {rounds * count + 1} warm requests through the Redis "
            f"store: **{commands}**.")
    return text, {"redis_warm_ratio": min(figures["KoyebAuth, **Redis store**"]) / min(figures[FLOOR])}


def _cold(url: str, directory: Path, sizes: tuple[int, ...]) -> tuple[str, dict[str, float]]:
    rows, summary = [], {}
    with FakeKoyebAPI(login_delay=LOGIN_DELAY) as fake:
        for size in sizes:
            row: list[object] = [size]
            for name, env in (("file", {}), ("redis", {"BENCH_REDIS": url, "BENCH_NAMESPACE": uuid.uuid4().hex})):
                fake.reset_stats()
                cache = str(directory / f"{name}-{size}.json")
                procs = [spawn("benchmarks.fanout_worker", "koyeb", cache, fake.url, env=env) for _ in range(size)]
                wait_ready(procs)
                started = go(procs)
                wall = max(r["ready_at"] for r in results(procs)) - started
                row += [fake.stats.get("login", 0), f"{wall * 1000:.0f}"]
                summary[f"{name}_{size}_ms"] = wall * 1000
            rows.append(row)
    text = (f"**Cold start** (login latency {LOGIN_DELAY * 1000:.0f} ms; wall time from the release of the ready "
            "processes until the last one holds a token)\n\n"
            + table(["processes", "file store logins", "file store ms", "Redis logins", "Redis ms"], rows))
    return text, summary


if __name__ == "__main__":
    print(measure()[0])
