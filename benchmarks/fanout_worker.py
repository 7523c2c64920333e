"""A cold-start worker: once told to go, get a token (KoyebAuth, or a naive call of its own).

Modes: `koyeb` (email and password), `token` (a personal access token and an organization: one
organization access token for the fleet), and their `naive` twins, each process asking itself.

With BENCH_PHASES set, a KoyebAuth worker also reports when each phase of its cold start began and
ended (the settings and the password's hash, the store's lock, the login), for `fanout.profile`:
the library's own functions are wrapped here, in the worker, and the library is left as it is.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import httpcore  # noqa: F401 - loaded before the start, as in any worker that has built its HTTP client
import httpx

from koyeb_auth import FileTokenStore, KoyebAuth
from koyeb_auth.stores import TokenStore
from koyeb_auth.testing import FakeKoyebAPI

Phases = dict[str, Any]


def _timed(owner: Any, name: str, phases: Phases, *, cpu: Callable[[], float] | None = None) -> None:
    """Replace `owner.name` by a wrapper noting in `phases` its first start, its last end, its calls
    (and with `cpu`, a clock such as time.process_time, the CPU it took)."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        phases.setdefault(f"{name}_start", time.time())
        cpu_before = cpu() if cpu else 0.0
        try:
            return original(*args, **kwargs)
        finally:
            phases[f"{name}_end"] = time.time()
            phases[f"{name}_calls"] = phases.get(f"{name}_calls", 0) + 1
            if cpu:
                phases[f"{name}_cpu"] = phases.get(f"{name}_cpu", 0.0) + cpu() - cpu_before

    setattr(owner, name, wrapper)


def _instrument(phases: Phases) -> None:
    from koyeb_auth import _sources, _transport

    _timed(_sources, "_scrypt", phases, cpu=time.thread_time)  # in the thread that derives it
    _timed(_transport.SessionClient, "send", phases, cpu=time.process_time)
    _timed(_transport.SessionClient, "_client", phases, cpu=time.process_time)
    for name in ("try_lock", "load", "save"):
        _timed(FileTokenStore, name, phases)


def main() -> None:
    mode, cache, url = sys.argv[1:4]
    phases: Phases = {}
    if os.environ.get("BENCH_PHASES"):
        _instrument(phases)
    # BENCH_REDIS: share the token through Redis rather than the cache file.
    redis_url = os.environ.get("BENCH_REDIS")
    if redis_url:
        # Imported only then: the redis package's memory would slow every process's password hash.
        from koyeb_auth import RedisTokenStore

        store: TokenStore = RedisTokenStore(redis_url, namespace=os.environ["BENCH_NAMESPACE"])
    else:
        store = FileTokenStore(cache)
    if mode == "token":
        auth = KoyebAuth(token=FakeKoyebAPI.PERSONAL_TOKEN, organization_id=FakeKoyebAPI.ORGANIZATION_ID,
                         organization_token="access_token", api_url=url, store=store)
    else:
        auth = KoyebAuth(FakeKoyebAPI.EMAIL, FakeKoyebAPI.PASSWORD, api_url=url, store=store)
    print("ready", flush=True)
    sys.stdin.readline()
    phases["go_at"], cpu_at_go = time.time(), time.process_time()
    phases["modules_at_go"] = len(sys.modules)
    if mode in ("koyeb", "token"):
        auth.get_token()
    elif mode == "hash":  # the password path's floor: each process derives the hash, nothing else
        from koyeb_auth import _sources

        _sources._scrypt(FakeKoyebAPI.PASSWORD, _sources.password_salt(url, FakeKoyebAPI.EMAIL))
    elif mode == "naive-token":  # each process exchanges the personal token itself
        exchange = f"{url}/v1/organizations/{FakeKoyebAPI.ORGANIZATION_ID}/access_token"
        headers = {"Authorization": f"Bearer {FakeKoyebAPI.PERSONAL_TOKEN}"}
        httpx.post(exchange, json={"validity": "3600s"}, headers=headers).raise_for_status()
    else:  # what each process does without a shared cache: log in itself
        body = {"email": FakeKoyebAPI.EMAIL, "password": FakeKoyebAPI.PASSWORD}
        httpx.post(url + "/v1/account/login", json=body).raise_for_status()
    ready_at = time.time()
    phases["modules_loaded"] = len(sys.modules) - phases["modules_at_go"]
    print(json.dumps({"ready_at": ready_at, **phases, "cpu": time.process_time() - cpu_at_go}), flush=True)


if __name__ == "__main__":
    main()
