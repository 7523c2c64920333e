"""5. The Redis store: its warm path and its cold start, next to the file store in the same run."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

import httpx
import redis

from koyeb_auth import FileTokenStore, RedisTokenStore
from koyeb_auth.testing import RedisServer

from .common import cold_starts, median, ok_handler, table
from .warm import FLOOR, URL, ConstantHeader, _alternate, warm_auth


def measure(
    count: int = 300, rounds: int = 41, sizes: tuple[int, ...] = (1, 4, 16, 32)
) -> tuple[str, dict[str, float]]:
    try:
        server = RedisServer()
    except FileNotFoundError as exc:
        return f"Not measured: {exc}.", {}
    with server, tempfile.TemporaryDirectory() as tmp:
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
    variants = {"file store": ("koyeb", {}), "Redis": ("koyeb", {"BENCH_REDIS": url})}
    text, summary = cold_starts(sizes, variants, directory)
    return f"**Cold start.** {text}", summary


if __name__ == "__main__":
    print(measure()[0])
