"""The offline demo: a fleet of worker processes against the fake API, sharing one token.

`koyeb-auth demo` starts the fake Koyeb API on loopback with short-lived tokens, then N worker
processes (httpx, httpx async and requests in turn) that make authenticated requests for a few
seconds. By default the workers hold a personal access token and an organization, as Koyeb
recommends: the fleet exchanges it for one organization token per token lifetime
(`POST /v1/organizations/{id}/access_token`), shared by every worker. With `--password`, they log
in with the fake's email and password (deprecated endpoints): one login for the whole fleet, one
refresh per token lifetime. Either way every request must be answered 200.

`--without ENDPOINT` rehearses Koyeb withdrawing deprecated session endpoints: without the switch
the token fleet asks the (deprecated) switch first and falls back to the access token; without
refresh a password fleet logs in once per token lifetime; without login, password login fails with
the message users will see, and the fleet runs on the access token path.

Ctrl-C stops the demo quietly: the workers run in a session of their own, so the terminal's
SIGINT reaches only the demo, which then terminates them (no worker prints a traceback).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx
import requests

from ..auth import KoyebAuth
from ..errors import KoyebAuthError
from ..testing import FakeKoyebAPI

CLIENTS = ("httpx", "async", "requests")
# Named outside WorkerReport, whose `requests` field would shadow the module in its body.
AnyResponse = httpx.Response | requests.Response
_REPORT_EVERY = 0.25


@dataclass
class WorkerReport:
    client: str
    requests: int = 0
    recovered_401s: int = 0
    errors: int = 0
    done: bool = False
    last_error: str = ""

    def count(self, response: AnyResponse) -> None:
        self.requests += 1
        if response.status_code != 200:
            self.failed(f"HTTP {response.status_code}")
        elif any(earlier.status_code == 401 for earlier in response.history):
            self.recovered_401s += 1

    def failed(self, reason: object) -> None:
        self.errors, self.last_error = self.errors + 1, str(reason)


def run_demo(
    workers: int, seconds: float, ttl: float, out: TextIO = sys.stdout, *, without: frozenset[str] = frozenset(),
    password: bool = False,
) -> int:
    if workers < 1 or seconds <= 0 or ttl <= 0:
        print("koyeb-auth: demo needs --workers >= 1, --seconds > 0 and --ttl > 0", file=sys.stderr)
        return 2
    with FakeKoyebAPI(ttl=ttl, without=without) as fake, \
            tempfile.TemporaryDirectory(prefix="koyeb-auth-demo-") as tmp:
        cache = Path(tmp) / "tokens.json"
        print(f"Fake Koyeb API at {fake.url}; tokens live {ttl:g} s; cache {cache}", file=out)
        mode = _credentials(fake, cache, out, password)
        print(f"Starting {workers} worker processes for {seconds:g} s ...", file=out, flush=True)
        reports = [WorkerReport(CLIENTS[i % len(CLIENTS)]) for i in range(workers)]
        procs: list[subprocess.Popen[str]] = []
        try:
            for report in reports:
                procs.append(_spawn(fake, cache, report.client, seconds, mode))
            started = _run(out, procs, reports, fake)
        except KeyboardInterrupt:
            _stop(procs)
            print(f"\nInterrupted: stopped {len(procs)} worker process(es).", file=out, flush=True)
            raise
        codes = [proc.wait() for proc in procs]
        elapsed = time.monotonic() - started
        _progress(out, elapsed, reports, fake.stats)
        print(file=out)
        return _summary(out, reports, fake.stats, codes, _lifetimes(fake, mode, elapsed))


def _run(out: TextIO, procs: list[subprocess.Popen[str]], reports: list[WorkerReport], fake: FakeKoyebAPI) -> float:
    """Release the workers together and show progress until they are done; when they started."""
    readers = [threading.Thread(target=_read_reports, args=(proc, report), daemon=True)
               for proc, report in zip(procs, reports, strict=True)]
    for proc in procs:  # every worker has imported everything: now let them all go at once
        assert proc.stdout is not None
        proc.stdout.readline()
    started = time.monotonic()
    for proc, reader in zip(procs, readers, strict=True):
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        reader.start()
    while any(reader.is_alive() for reader in readers):
        _progress(out, time.monotonic() - started, reports, fake.stats)
        time.sleep(0.2)
    return started


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    # SIGTERM's default action ends a worker without running Python code: no traceback.
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait()


def _credentials(fake: FakeKoyebAPI, cache: Path, out: TextIO, password: bool) -> str:
    """How the workers get their token: "password", or an organization token mode."""
    dropped = fake.dropped
    if "switch" in dropped and not password:
        print("The workers use a personal access token and an organization (the switch first).", file=out)
        return "auto"
    if not password:
        print("The workers use a personal access token and an organization: organization access tokens.", file=out)
        return "access_token"
    if "login" in dropped:
        # Show what a password user would get, once, then run on what depends on no deprecated endpoint.
        try:
            KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache).get_token()
        except KoyebAuthError as exc:
            print(f"Password login without the login endpoint: {exc}", file=out)
        print("The workers use a personal access token and an organization: organization access tokens.", file=out)
        return "access_token"
    print("The workers log in with the fake's email and password.", file=out)
    return "password"


def _spawn(fake: FakeKoyebAPI, cache: Path, client: str, seconds: float, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "KOYEB_URL": fake.url}
    for name in ("KOYEB_EMAIL", "KOYEB_PASSWORD", "KOYEB_TOKEN", "KOYEB_ORGANIZATION"):
        env.pop(name, None)
    if mode == "password":
        env.update(KOYEB_EMAIL=fake.EMAIL, KOYEB_PASSWORD=fake.PASSWORD)
    else:
        env.update(KOYEB_TOKEN=fake.PERSONAL_TOKEN, KOYEB_ORGANIZATION=fake.ORGANIZATION_ID)
    # A session of its own: the terminal's Ctrl-C goes to the demo's process group, not to the worker.
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "koyeb_auth.cli._demo", client, str(seconds), str(cache), mode, str(fake.ttl)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )


def _lifetimes(fake: FakeKoyebAPI, mode: str, elapsed: float) -> int | None:
    """How many tokens the fleet may open: one, when sessions are refreshed; else one per refresh
    window (the last half of each token's life), plus the first."""
    if mode == "password" and "refresh" not in fake.dropped:
        return None
    return 1 + int(elapsed / (fake.ttl / 2))


def _read_reports(proc: subprocess.Popen[str], report: WorkerReport) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        update = json.loads(line)
        report.requests, report.recovered_401s = update["requests"], update["recovered_401s"]
        report.errors, report.last_error, report.done = update["errors"], update["last_error"], update["done"]


def _progress(out: TextIO, elapsed: float, reports: list[WorkerReport], stats: dict[str, int]) -> None:
    organization = stats.get("switch", 0) + stats.get("access_token", 0)
    line = (f"  {elapsed:5.1f} s  requests {sum(r.requests for r in reports):7d}  logins {stats.get('login', 0)}  "
            + (f"organization tokens {organization}  " if organization else "")
            + f"refreshes {stats.get('refresh', 0)}  401s recovered {sum(r.recovered_401s for r in reports)}  "
            f"errors {sum(r.errors for r in reports)}")
    print("\r" + line if out.isatty() else line, end="" if out.isatty() else "\n", file=out, flush=True)


def _summary(
    out: TextIO, reports: list[WorkerReport], stats: dict[str, int], codes: list[int], most: int | None
) -> int:
    print(f"\n{'worker':>6}  {'client':<8}  {'requests':>8}  {'401s recovered':>14}  {'errors':>6}", file=out)
    for number, report in enumerate(reports, 1):
        print(f"{number:>6}  {report.client:<8}  {report.requests:>8}  {report.recovered_401s:>14}  "
              f"{report.errors:>6}", file=out)
    total = sum(r.requests for r in reports)
    failures = sum(r.errors for r in reports)
    print(f"{'all':>6}  {'':<8}  {total:>8}  {sum(r.recovered_401s for r in reports):>14}  {failures:>6}", file=out)
    logins, refreshes = stats.get("login", 0), stats.get("refresh", 0)
    print(f"\nThe fake API saw {logins} login(s), {refreshes} refresh(es), {stats.get('unauthorized', 0)} 401(s), "
          f"{stats.get('expired_sent', 0)} request(s) with an expired token and {stats.get('api', 0)} good request(s).",
          file=out)
    errors = [f"worker {n}: {r.last_error}" for n, r in enumerate(reports, 1) if r.last_error]
    if most is None:
        renewed, done, counted = logins == 1, f"one login, {refreshes} refreshes", f"{logins} logins (want 1)"
    else:
        renewed, done, counted = _new_tokens(out, stats, most)
    if failures == 0 and total > 0 and all(code == 0 for code in codes) and not errors and renewed:
        print(f"PASS: {len(reports)} processes, {total} requests, all 200, {done} shared by the fleet.", file=out)
        return 0
    print(f"FAIL: {failures} failed requests, {counted}. " + "; ".join(errors[:3]), file=out)
    return 1


def _new_tokens(out: TextIO, stats: dict[str, int], most: int) -> tuple[bool, str, str]:
    """Without refresh, each token lifetime costs a new token: say which, and whether that is all."""
    kinds = {"login": "login(s)", "switch": "switch(es)", "access_token": "access token(s)"}
    tokens = sum(stats.get(kind, 0) for kind in kinds)
    dropped = [f"{name.removeprefix('dropped_')} {count}" for name, count in sorted(stats.items())
               if name.startswith("dropped_")]
    print(f"Calls to withdrawn endpoints: {', '.join(dropped) or 'none'}. New tokens: "
          + ", ".join(f"{stats.get(kind, 0)} {label}" for kind, label in kinds.items()) + ".", file=out)
    return tokens <= most, f"{tokens} new tokens (one per renewal)", f"{tokens} new tokens (want {most} at most)"


# --- the worker process ------------------------------------------------------------------------


def _worker(client: str, seconds: float, cache: str, mode: str, ttl: float) -> None:
    # Organization tokens asked for as long as the demo's sessions live, so the fleet renews them too.
    options: dict[str, Any] = {} if mode == "password" else {"organization_token": mode,
                                                             "organization_token_validity": ttl}
    auth = KoyebAuth(cache_path=cache, **options)
    # The parent reports what the fake API saw; the library's warnings (such as a withdrawn switch)
    # would otherwise reach the terminal through logging's last-resort handler, across its lines.
    logging.getLogger("koyeb_auth").addHandler(logging.NullHandler())
    url = os.environ["KOYEB_URL"] + "/v1/apps"
    report = WorkerReport(client)
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + seconds
    if client == "async":
        asyncio.run(_async_loop(auth, url, deadline, report))
    elif client == "httpx":
        with httpx.Client(auth=auth) as session:
            _loop(lambda: session.get(url), deadline, report)
    else:
        with requests.Session() as session:
            session.auth = auth
            _loop(lambda: session.get(url, timeout=10), deadline, report)
    report.done = True
    _emit(report)


def _loop(get: Any, deadline: float, report: WorkerReport) -> None:
    next_report = 0.0
    while (now := time.monotonic()) < deadline:
        try:
            report.count(get())
        except Exception as exc:  # the demo counts every failure instead of stopping
            report.failed(exc)
        if now >= next_report:
            _emit(report)
            next_report = now + _REPORT_EVERY


async def _async_loop(auth: KoyebAuth, url: str, deadline: float, report: WorkerReport) -> None:
    async with httpx.AsyncClient(auth=auth) as session:
        async def task() -> None:
            while time.monotonic() < deadline:
                try:
                    report.count(await session.get(url))
                except Exception as exc:  # the demo counts every failure instead of stopping
                    report.failed(exc)

        async def reporter() -> None:
            while time.monotonic() < deadline:
                _emit(report)
                await asyncio.sleep(_REPORT_EVERY)

        await asyncio.gather(reporter(), *(task() for _ in range(4)))


def _emit(report: WorkerReport) -> None:
    fields = {"requests": report.requests, "recovered_401s": report.recovered_401s, "errors": report.errors,
              "last_error": report.last_error, "done": report.done}
    print(json.dumps(fields), flush=True)


if __name__ == "__main__":
    _worker(sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]))
