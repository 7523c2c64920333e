"""The fleet promises under load: one login for a cold fleet, one renewal per token lifetime."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

from .conftest import release_workers, start_workers


def fleet_env(fake: FakeKoyebAPI, cache_path: Path) -> dict[str, str]:
    return {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD,
            "WORKER_CACHE": str(cache_path)}


def test_a_cold_fleet_of_processes_threads_and_tasks_logs_in_once(fake: FakeKoyebAPI, cache_path: Path) -> None:
    # 8 processes x 4 threads x 25 concurrent tasks: as close to 8 x 8 x 50 as 2 cores serve in seconds.
    fake.login_delay = 0.3
    results = release_workers(start_workers(8, fleet_env(fake, cache_path), "async", "25", "0", "4"), timeout=120)
    statuses = [status for result in results for status in result["statuses"]]
    assert len(statuses) == 8 * 4 * 25
    assert set(statuses) == {200}
    assert fake.stats == {"login": 1, "api": 800}


def test_a_fleet_living_through_expiring_tokens_renews_once_per_lifetime(
    fake: FakeKoyebAPI, cache_path: Path
) -> None:
    fake.ttl = 3.0  # refresh window: min(300, 3 / 2) = the last 1.5 s of each token
    seconds = 15.0
    env = fleet_env(fake, cache_path)
    workers = start_workers(2, env, "httpx", "5", str(seconds), "2")
    workers += start_workers(2, env, "requests", "5", str(seconds), "2")
    workers += start_workers(2, env, "async", "8", str(seconds))
    results = release_workers(workers, timeout=120)
    stats = fake.stats
    statuses = [status for result in results for status in result["statuses"]]
    assert set(statuses) == {200}
    assert stats["login"] == 1
    assert stats.get("expired_sent", 0) == 0
    # A token is renewed once its last 1.5 s begin: one renewal per 1.5 s of the run at most (plus
    # the process start-up), never one per request or per process.
    assert seconds / fake.ttl <= stats["refresh"] <= seconds / 1.5 + 3
    # Each refresh revokes the old token, so a worker that sent it in that instant sees one 401
    # and adopts the new token: never more 401s than workers x concurrent requests per refresh.
    assert stats.get("unauthorized", 0) <= stats["refresh"] * (4 * 2 + 2 * 8)


PEER = """
import json, os, sys, httpx
from koyeb_auth import KoyebAuth
auth = KoyebAuth(cache_path=os.environ["WORKER_CACHE"])
url = os.environ["KOYEB_URL"] + "/v1/apps"
with httpx.Client(auth=auth) as client:
    first = client.get(url).status_code  # warm: the shared token is now in this process's memory
    print("ready", flush=True)
    sys.stdin.readline()
    responses = [client.get(url) for _ in range(5)]
print(json.dumps({"statuses": [first] + [r.status_code for r in responses],
                  "401s": sum(1 for r in responses for old in r.history if old.status_code == 401)}))
"""


def test_warm_processes_pick_up_a_peer_refresh_after_at_most_one_401_each(
    fake: FakeKoyebAPI, cache_path: Path, make_auth: Callable[..., KoyebAuth]
) -> None:
    peer = make_auth()
    old = peer.get_token()
    workers = start_workers(3, fleet_env(fake, cache_path), code=PEER)
    authorization = peer.authorize("GET", fake.url + "/v1/apps")
    assert authorization is not None and authorization.token.value == old
    renewed = authorization.renew(b"")  # as after a 401: a refresh, which revokes `old`
    assert renewed is not None and renewed.token.value != old
    results = release_workers(workers)
    assert all(r["statuses"] == [200] * 6 for r in results)
    assert all(r["401s"] <= 1 for r in results)
    assert fake.stats["login"] == 1
    assert fake.stats["refresh"] == 1
    assert fake.stats.get("unauthorized", 0) == sum(r["401s"] for r in results) <= 3
