"""A worker process for the cross-process tests: waits for `go` on stdin, then uses KoyebAuth.

Usage: worker.py CLIENT COUNT [SECONDS [THREADS]]
  CLIENT: httpx, async or requests. COUNT requests (concurrent tasks for async), once; or, with
  SECONDS, again and again until that time is up, in THREADS threads. Settings come from KOYEB_*,
  and the store from WORKER_CACHE, or WORKER_REDIS (with WORKER_NAMESPACE and WORKER_LEASE).
  Prints one JSON line: the statuses seen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time

import httpx
import requests

from koyeb_auth import KoyebAuth, RedisTokenStore


def main() -> None:
    # The library logs to a NullHandler until the application says otherwise: this one wants its
    # warnings on stderr, where the tests read them.
    logging.basicConfig(level=logging.WARNING)
    client, count = sys.argv[1], int(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    auth = make_auth()
    url = os.environ["KOYEB_URL"] + "/v1/apps"
    statuses: list[int] = []
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + seconds

    def work() -> None:
        while True:
            statuses.extend(run(client, auth, url, count))
            if time.monotonic() >= deadline:
                return

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps({"statuses": statuses, "pid": os.getpid()}), flush=True)


def make_auth() -> KoyebAuth:
    if "WORKER_REDIS" not in os.environ:
        return KoyebAuth(cache_path=os.environ["WORKER_CACHE"])
    lease = float(os.environ["WORKER_LEASE"])
    # A store's lease is at least twice its timeout: short test leases get short timeouts.
    store = RedisTokenStore(
        os.environ["WORKER_REDIS"], namespace=os.environ["WORKER_NAMESPACE"], lease=lease, timeout=min(2.0, lease / 2)
    )
    return KoyebAuth(store=store)


def run(client: str, auth: KoyebAuth, url: str, count: int) -> list[int]:
    if client == "httpx":
        with httpx.Client(auth=auth) as session:
            return [session.get(url).status_code for _ in range(count)]
    if client == "requests":
        with requests.Session() as session:
            return [session.get(url, auth=auth).status_code for _ in range(count)]

    async def concurrently() -> list[int]:
        async with httpx.AsyncClient(auth=auth) as session:
            responses = await asyncio.gather(*(session.get(url) for _ in range(count)))
        return [r.status_code for r in responses]

    return asyncio.run(concurrently())


if __name__ == "__main__":
    main()
