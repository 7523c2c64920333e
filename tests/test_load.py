"""The fleet promises under load: one login for a cold fleet, one renewal per token lifetime."""

from __future__ import annotations

from pathlib import Path

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
    fake.ttl = 2.0  # refresh window: min(300, 2 / 2) = the last second of each token
    seconds = 8.0
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
    # A token is renewed in its last second: at most one renewal per second of the run (plus the
    # process start-up), and at least one per token lifetime.
    assert seconds / fake.ttl <= stats["refresh"] <= seconds + 3
    # Each refresh revokes the old token, so a worker that sent it in that instant sees one 401
    # and adopts the new token: never more 401s than workers x concurrent requests per refresh.
    assert stats.get("unauthorized", 0) <= stats["refresh"] * (4 * 2 + 2 * 8)
