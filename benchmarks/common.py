"""Helpers shared by the benchmarks: timing, statistics, markdown tables, workers."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from koyeb_auth.testing import FakeKoyebAPI

API_URL = "https://app.koyeb.com"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def median_us(run: Callable[[], None], count: int, rounds: int) -> list[float]:
    """Per-call microseconds of `run`, one figure per round."""
    figures = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            run()
        figures.append((time.perf_counter() - start) / count * 1e6)
    return figures


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q / 100 * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def ok_handler(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"{}")


class CannedAdapter(BaseAdapter):
    """A requests adapter that answers 200 `{}` without a socket: the requests twin of MockTransport."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        response = requests.Response()
        response.status_code, response._content, response.request = 200, b"{}", request
        response.url = request.url or ""
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json"})
        response.connection = self  # type: ignore[attr-defined]
        return response

    def close(self) -> None:
        pass


def canned_session(auth: Any) -> requests.Session:
    session = requests.Session()
    session.mount("https://", CannedAdapter())
    session.auth = auth
    return session


def spawn(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


def wait_ready(procs: Sequence[subprocess.Popen[str]]) -> None:
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"


def go(procs: Sequence[subprocess.Popen[str]]) -> float:
    """Release every ready worker; returns the wall-clock time of the release."""
    started = time.time()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    return started


def results(procs: Sequence[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    out = []
    for proc in procs:
        stdout, _ = proc.communicate(timeout=120)
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# The login latency of the cold-start benchmarks.
LOGIN_DELAY = 0.1


def release(fake: FakeKoyebAPI, mode: str, size: int, cache: Path,
            env: dict[str, str]) -> tuple[float, list[dict[str, Any]]]:
    """`size` fanout workers in `mode`, released at once on a cold store (the cache file `cache`, or a
    Redis namespace of their own) after the fake API's counts are reset: when, and their reports."""
    fake.reset_stats()
    run_env = {**env, "BENCH_NAMESPACE": uuid.uuid4().hex}
    procs = [spawn("benchmarks.fanout_worker", mode, str(cache), fake.url, env=run_env) for _ in range(size)]
    wait_ready(procs)
    started = go(procs)
    return started, results(procs)


def sessions_opened(fake: FakeKoyebAPI) -> int:
    """The sessions the fake API opened since its counts were reset: logins, or exchanges of a personal token."""
    return sum(fake.stats.get(action, 0) for action in ("login", "access_token", "switch"))


def cold_starts(
    sizes: tuple[int, ...], variants: dict[str, tuple[str, dict[str, str]]], directory: Path, rounds: int = 1
) -> tuple[str, dict[str, float]]:
    """For each fleet size, for each variant (its label: a fanout worker mode and its environment),
    that many workers released at once: the logins (or token exchanges) the fake API saw, and the
    ms until the last held a token, the median of `rounds` (variants alternate within a round). A
    markdown table, and the figures by `label_size_logins` / `label_size_ms`."""
    with FakeKoyebAPI(login_delay=LOGIN_DELAY) as fake:

        def start(name: str, size: int, run: int) -> tuple[int, float]:
            mode, env = variants[name]
            started, reports = release(fake, mode, size, directory / f"{name}-{size}-{run}.json", env)
            return sessions_opened(fake), (max(r["ready_at"] for r in reports) - started) * 1000

        rows, summary = rounds_of(start, list(variants), sizes, rounds)
    headers = ["processes"] + [f"{label} {figure}" for label in variants for figure in ("logins", "ms")]
    text = (f"Login and exchange latency {LOGIN_DELAY * 1000:.0f} ms. Wall time from the release of the ready "
            "processes until the last one holds a token" + (f", median of {rounds} rounds (logins: the most in "
            "a round)" if rounds > 1 else "") + ".\n\n" + table(headers, rows))
    return text, summary


def rounds_of(start: Callable[[str, int, int], tuple[int, float]], names: list[str], sizes: tuple[int, ...],
              rounds: int) -> tuple[list[list[object]], dict[str, float]]:
    """`start(name, size, round)` (sessions opened, ms) for each, `rounds` times: a table's rows, of the
    most sessions and the median ms, and the same by `name_size_logins` / `name_size_ms`."""
    rows, summary = [], {}
    for size in sizes:
        row: list[object] = [size]
        runs = [{name: start(name, size, run) for name in names} for run in range(rounds)]
        for name in names:
            logins, wall = max(run[name][0] for run in runs), median([run[name][1] for run in runs])
            row += [logins, f"{wall:.0f}"]
            summary[f"{name}_{size}_logins"], summary[f"{name}_{size}_ms"] = logins, wall
        rows.append(row)
    return rows, summary
