"""A worker process for the cross-process tests: waits for `go` on stdin, then uses KoyebAuth.

Usage: worker.py CLIENT REQUESTS   (CLIENT: httpx, async, requests). Settings come from KOYEB_*
and WORKER_CACHE. Prints one JSON line: statuses seen and the token fingerprints used.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import httpx
import requests

from koyeb_auth import KoyebAuth


def main() -> None:
    client, count = sys.argv[1], int(sys.argv[2])
    auth = KoyebAuth(cache_path=os.environ["WORKER_CACHE"])
    url = os.environ["KOYEB_URL"] + "/v1/apps"
    print("ready", flush=True)
    sys.stdin.readline()
    if client == "httpx":
        with httpx.Client(auth=auth) as session:
            statuses = [session.get(url).status_code for _ in range(count)]
    elif client == "requests":
        with requests.Session() as session:
            statuses = [session.get(url, auth=auth).status_code for _ in range(count)]
    else:
        async def run() -> list[int]:
            async with httpx.AsyncClient(auth=auth) as session:
                responses = await asyncio.gather(*(session.get(url) for _ in range(count)))
            return [r.status_code for r in responses]

        statuses = asyncio.run(run())
    print(json.dumps({"statuses": statuses, "pid": os.getpid()}), flush=True)


if __name__ == "__main__":
    main()
