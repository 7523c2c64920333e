"""A cold-start worker: once told to go, get a token (KoyebAuth, or a naive call of its own).

Modes: `koyeb` (email and password), `token` (a personal access token and an organization: one
organization access token for the fleet), and their `naive` twins, each process asking itself.
"""

from __future__ import annotations

import json
import os
import sys
import time

import httpcore  # noqa: F401 - loaded before the start, as in any worker that has built its HTTP client
import httpx

from koyeb_auth import FileTokenStore, KoyebAuth, RedisTokenStore
from koyeb_auth.testing import FakeKoyebAPI


def main() -> None:
    mode, cache, url = sys.argv[1:4]
    # BENCH_REDIS: share the token through Redis rather than the cache file.
    redis_url = os.environ.get("BENCH_REDIS")
    store = RedisTokenStore(redis_url, namespace=os.environ["BENCH_NAMESPACE"]) if redis_url else FileTokenStore(cache)
    if mode == "token":
        auth = KoyebAuth(token=FakeKoyebAPI.PERSONAL_TOKEN, organization_id=FakeKoyebAPI.ORGANIZATION_ID,
                         organization_token="access_token", api_url=url, store=store)
    else:
        auth = KoyebAuth(FakeKoyebAPI.EMAIL, FakeKoyebAPI.PASSWORD, api_url=url, store=store)
    print("ready", flush=True)
    sys.stdin.readline()
    if mode in ("koyeb", "token"):
        auth.get_token()
    elif mode == "naive-token":  # each process exchanges the personal token itself
        exchange = f"{url}/v1/organizations/{FakeKoyebAPI.ORGANIZATION_ID}/access_token"
        headers = {"Authorization": f"Bearer {FakeKoyebAPI.PERSONAL_TOKEN}"}
        httpx.post(exchange, json={"validity": "3600s"}, headers=headers).raise_for_status()
    else:  # what each process does without a shared cache: log in itself
        body = {"email": FakeKoyebAPI.EMAIL, "password": FakeKoyebAPI.PASSWORD}
        httpx.post(url + "/v1/account/login", json=body).raise_for_status()
    print(json.dumps({"ready_at": time.time()}), flush=True)


if __name__ == "__main__":
    main()
