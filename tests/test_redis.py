"""The Redis store against a real redis-server: hosts are processes with their own cache directories."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio
import requests
import trio
from freezegun import freeze_time
from redis.crc import key_slot

from koyeb_auth import (
    ConfigurationError,
    FileTokenStore,
    KoyebAuth,
    LeaseLostError,
    RedisTokenStore,
    StoreUnavailableError,
    TokenStoreError,
)
from koyeb_auth._token import fingerprint
from koyeb_auth.testing import FakeKoyebAPI

from .conftest import loop_blocked, release_workers, start_workers
from .redis_server import (
    NEW,
    OLD,
    fleet_auth,
    fleet_key,
    fleet_session,
    lock_key,
    start_redis_server,
    token_key,
    wait_until,
)

StoreFactory = Callable[..., RedisTokenStore]


def host_env(fake: FakeKoyebAPI, redis_url: str, namespace: str, home: Path, lease: float = 30.0) -> dict[str, str]:
    """One simulated host: its own home and cache directories, the fleet's Redis."""
    return {
        "KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD,
        "HOME": str(home), "XDG_CACHE_HOME": str(home / "cache"),
        "WORKER_REDIS": redis_url, "WORKER_NAMESPACE": namespace, "WORKER_LEASE": str(lease),
    }








# --- the fleet ------------------------------------------------------------------------------------


def test_cold_start_of_three_hosts_of_four_processes_causes_one_login(
    fake: FakeKoyebAPI, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    fake.login_delay = 0.3  # every process arrives while the login is in flight
    workers = [
        worker
        for host, client in enumerate(["httpx", "async", "requests"])
        for worker in start_workers(4, host_env(fake, redis_url, namespace, tmp_path / f"host{host}"), client, "5")
    ]
    results = release_workers(workers)
    assert [r["statuses"] for r in results] == [[200] * 5] * 12
    assert fake.stats == {"login": 1, "api": 60}


def test_a_token_in_its_refresh_window_is_refreshed_once_across_hosts(
    fake: FakeKoyebAPI, redis_url: str, namespace: str, redis_store: StoreFactory, tmp_path: Path
) -> None:
    valid = fleet_auth(fake, redis_store()).get_token()
    now = time.time()
    # The same live token, recorded as 100 s from its end: inside the default 300 s window.
    seed = redis_store()
    assert seed.try_lock()
    seed.save(fleet_key(fake), fleet_session(fake, valid, obtained_at=now - 3500, expires_at=now + 100))
    seed.unlock()
    fake.reset_stats()
    workers = [
        worker
        for host in range(3)
        for worker in start_workers(4, host_env(fake, redis_url, namespace, tmp_path / f"host{host}"), "httpx", "5")
    ]
    results = release_workers(workers)
    assert [r["statuses"] for r in results] == [[200] * 5] * 12
    stats = fake.stats
    # The fake API revokes a token when it is refreshed: a process that sent the old one in the
    # meantime gets one 401, adopts the new token and retries.
    assert stats.pop("unauthorized", 0) <= 12
    assert stats == {"refresh": 1, "api": 60}


PEER_THREADS = """
import json, os, sys, threading, httpx
from koyeb_auth import KoyebAuth, RedisTokenStore
auth = KoyebAuth(store=RedisTokenStore(os.environ["WORKER_REDIS"], namespace=os.environ["WORKER_NAMESPACE"]))
url = os.environ["KOYEB_URL"] + "/v1/apps"
clients = [httpx.Client(auth=auth) for _ in range(4)]
warm = [client.get(url).status_code for client in clients]  # the shared token is in this process's memory
print("ready", flush=True)
sys.stdin.readline()
seen = []
def work(client):
    responses = [client.get(url) for _ in range(5)]
    refused = sum(old.status_code == 401 for r in responses for old in r.history)
    seen.append(([r.status_code for r in responses], refused))
threads = [threading.Thread(target=work, args=(client,)) for client in clients]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"statuses": warm + [s for statuses, _ in seen for s in statuses], "401s": sum(n for _, n in seen)}))
"""


def test_after_a_peer_refresh_each_thread_in_flight_meets_at_most_one_401_and_one_process_one_store_trip(
    fake: FakeKoyebAPI, redis_url: str, namespace: str, redis_store: StoreFactory, tmp_path: Path
) -> None:
    peer = fleet_auth(fake, redis_store())
    peer.get_token()
    workers = start_workers(3, host_env(fake, redis_url, namespace, tmp_path), code=PEER_THREADS)
    authorization = peer.authorize("GET", fake.url + "/v1/apps")
    assert authorization is not None
    assert authorization.renew(b"") is not None  # as after a 401: a refresh, which revokes the old token
    admin = redis.Redis.from_url(redis_url)
    admin.config_resetstat()
    results = release_workers(workers)
    commands = admin.info("commandstats")
    admin.close()
    assert all(r["statuses"] == [200] * 24 for r in results)
    # Each of the 4 threads of a process may have had a request in flight with the old token: one
    # 401 each at most, and none renews anything...
    assert all(r["401s"] <= 4 for r in results)
    assert fake.stats == {"login": 1, "refresh": 1, "api": 72, "unauthorized": sum(r["401s"] for r in results)}
    # ...and only the first of them in each process takes the store's lock (each lock is one INCR);
    # the others retry with the token it adopted, with no round trip to Redis.
    assert commands["cmdstat_incr"]["calls"] <= 3


def test_a_lock_holder_killed_during_a_slow_login_lets_another_host_proceed_after_the_lease(
    fake: FakeKoyebAPI, redis_url: str, namespace: str, tmp_path: Path
) -> None:
    lease = 2.0
    fake.login_delay = 30.0  # the holder's login hangs
    holder = start_workers(1, host_env(fake, redis_url, namespace, tmp_path / "a", lease), "httpx", "1")[0]
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    probe = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 10
    while not probe.exists(lock_key(namespace)):  # wait until the holder is inside its login
        assert time.monotonic() < deadline
        time.sleep(0.02)
    waiters = [
        worker
        for host in ("b", "c")
        for worker in start_workers(2, host_env(fake, redis_url, namespace, tmp_path / host, lease), "httpx", "1")
    ]
    fake.login_delay = 0.0
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    killed = time.monotonic()
    results = release_workers(waiters, timeout=30)
    assert [r["statuses"] for r in results] == [[200]] * 4
    assert time.monotonic() - killed < lease + 5  # the lease, not the 60 s lock timeout
    assert fake.stats.get("login", 0) == 1  # one of the waiters; the dead holder's login never finished
    probe.close()


def test_a_holder_paused_past_its_lease_cannot_overwrite_the_newer_token(
    fake: FakeKoyebAPI, redis_url: str, namespace: str, redis_store: StoreFactory, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A holder whose process stops (SIGSTOP: a GC pause, a frozen VM) stops its lease watchdog too.
    lease = 1.0
    fake.login_delay = 1.0
    logging_in = threading.Event()
    login = fake._login
    monkeypatch.setattr(fake, "_login", lambda body: (logging_in.set(), login(body))[1])
    holder = start_workers(1, host_env(fake, redis_url, namespace, tmp_path / "a", lease), "httpx", "1")[0]
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    probe = redis.Redis.from_url(redis_url)
    assert logging_in.wait(10)  # the holder holds the lock and its login is in flight
    holder.send_signal(signal.SIGSTOP)
    wait_until(lambda: not probe.exists(lock_key(namespace)))  # its lease runs out
    fake.login_delay = 0.0
    quick = redis_store()
    quick_token = fleet_auth(fake, quick).get_token()  # takes the lock and logs in
    holder.send_signal(signal.SIGCONT)
    out, err = holder.communicate(timeout=30)
    assert json.loads(out.splitlines()[-1])["statuses"] == [200]  # the paused host still got a working token
    stored = quick.load(fleet_key(fake))
    assert stored is not None and stored.value == quick_token  # and did not overwrite the newer one
    assert fake.stats["login"] == 2
    assert "its lease ran out" in err
    probe.close()




def test_the_fence_refuses_a_write_after_the_lease_even_if_the_lock_is_free(
    redis_url: str, namespace: str, redis_store: StoreFactory
) -> None:
    first, second = redis_store(), redis_store()
    assert first.try_lock()
    admin = redis.Redis.from_url(redis_url)
    admin.delete(lock_key(namespace))  # the lease ends, as for a holder paused longer than it
    admin.close()
    assert second.try_lock()
    second.save("key", NEW)
    second.unlock()
    with pytest.raises(LeaseLostError):
        first.save("key", OLD)
    with pytest.raises(LeaseLostError):
        first.delete("key")
    loaded = second.load("key")
    assert loaded is not None and loaded.value == NEW.value
    first.unlock()  # the lock is no longer ours: nothing happens
    assert second.try_lock()


# --- Redis failing --------------------------------------------------------------------------------


def test_redis_stopped_mid_run_keeps_the_warm_token_and_gives_a_clear_error_when_one_is_needed(
    fake: FakeKoyebAPI,
) -> None:
    server = start_redis_server()
    store = RedisTokenStore(server.url, timeout=0.5)
    auth = fleet_auth(fake, store)
    with httpx.Client(auth=auth) as client:
        assert client.get(fake.url + "/v1/apps").status_code == 200
        server.stop()
        # Documented: the token in memory keeps working while Redis is down.
        assert client.get(fake.url + "/v1/apps").status_code == 200
        # A token in its refresh window is kept too, with one Redis attempt a second at most.
        with freeze_time(timedelta(minutes=57), tick=True):
            started = time.monotonic()
            assert [client.get(fake.url + "/v1/apps").status_code for _ in range(20)] == [200] * 20
            assert time.monotonic() - started < 6  # an attempt per request: 10 s
    # A process that has no token yet gets a clear error, at once.
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError, match=r"Redis at redis://127\.0\.0\.1:\d+/0 did not answer"):
        fleet_auth(fake, store).get_token()
    assert time.monotonic() - started < 2
    assert fake.stats == {"login": 1, "api": 22}


def test_a_redis_that_never_answers_times_out_without_blocking_the_event_loop(fake: FakeKoyebAPI) -> None:
    silent = socket.socket()  # accepts connections in the kernel and never answers them
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    store = RedisTokenStore(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout=0.5)
    auth = fleet_auth(fake, store)

    async def run() -> float:
        started = time.monotonic()
        async with loop_blocked() as blocked:
            with pytest.raises(StoreUnavailableError, match=r"did not answer within 0\.5 s"):
                await auth.aget_token()
        elapsed = time.monotonic() - started
        await store.aclose()
        assert max(blocked) < 0.1  # the loop went on while the store waited
        return elapsed

    elapsed = asyncio.run(run())
    assert elapsed < 3  # a timeout and one retry, not a hang
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        auth.get_token()
    assert time.monotonic() - started < 3
    silent.close()
    assert fake.stats == {}


# --- the store itself -----------------------------------------------------------------------------


def test_the_warm_path_sends_no_command_to_redis(
    fake: FakeKoyebAPI, redis_url: str, redis_store: StoreFactory
) -> None:
    auth = fleet_auth(fake, redis_store())
    admin = redis.Redis.from_url(redis_url)
    with httpx.Client(auth=auth) as client, requests.Session() as session:
        client.get(fake.url + "/v1/apps")
        admin.config_resetstat()
        for _ in range(500):
            assert client.get(fake.url + "/v1/apps").status_code == 200
            assert session.get(fake.url + "/v1/apps", auth=auth).status_code == 200
    commands = admin.info("commandstats")
    admin.close()
    assert set(commands) <= {"cmdstat_config|resetstat", "cmdstat_info"}  # only ours


def test_async_tasks_share_one_login_through_redis(fake: FakeKoyebAPI, redis_store: StoreFactory) -> None:
    fake.login_delay = 0.2
    store = redis_store()
    auth = fleet_auth(fake, store)

    async def run() -> list[int]:
        async with httpx.AsyncClient(auth=auth) as client:
            responses = await asyncio.gather(*(client.get(fake.url + "/v1/apps") for _ in range(50)))
        await store.aclose()
        return [r.status_code for r in responses]

    assert asyncio.run(run()) == [200] * 50
    assert fake.stats == {"login": 1, "api": 50}


def test_keys_are_namespaced_and_hashed_and_live_as_long_as_the_token(
    fake: FakeKoyebAPI, redis_url: str, namespace: str, redis_store: StoreFactory
) -> None:
    auth = fleet_auth(fake, redis_store())
    token = auth.get_token()
    admin = redis.Redis.from_url(redis_url)
    keys = sorted(k.decode() for k in admin.keys(f"{{{namespace}}}:*"))
    assert keys == [f"{{{namespace}}}:v2:fence", token_key(namespace, fleet_key(fake))]
    assert len({key_slot(key.encode()) for key in [*keys, lock_key(namespace)]}) == 1  # Redis Cluster
    assert not any(fake.EMAIL in k or fake.PASSWORD in k or token in k for k in keys)
    value = admin.get(keys[1])
    assert value is not None and fake.PASSWORD.encode() not in value
    cached = auth.cached_token()
    assert cached is not None and cached.expires_at is not None
    assert abs(admin.pttl(keys[1]) / 1000 - (cached.expires_at - time.time())) < 2
    admin.close()


def test_a_corrupt_value_is_a_miss_and_is_replaced(
    fake: FakeKoyebAPI, redis_url: str, namespace: str, redis_store: StoreFactory, caplog: pytest.LogCaptureFixture
) -> None:
    admin = redis.Redis.from_url(redis_url)
    admin.set(token_key(namespace, fleet_key(fake)), b"\xff{not json")
    token = fleet_auth(fake, redis_store()).get_token()
    assert "unreadable token" in caplog.text
    stored = redis_store().load(fleet_key(fake))
    assert stored is not None and stored.value == token
    admin.close()


def test_logout_ends_the_session_and_clears_it_for_every_host(fake: FakeKoyebAPI, redis_store: StoreFactory) -> None:
    first, second = fleet_auth(fake, redis_store()), fleet_auth(fake, redis_store())
    token = first.get_token()
    assert second.get_token() == token
    second.logout()
    assert fake.live_tokens() == []
    assert redis_store().load(fleet_key(fake)) is None
    assert fake.stats == {"login": 1, "logout": 1}


def test_the_url_password_never_shows(fake: FakeKoyebAPI, tmp_path: Path) -> None:
    store = RedisTokenStore("redis://fleet:s3cret-pass@127.0.0.1:1/0", timeout=0.2)
    with pytest.raises(StoreUnavailableError) as caught:
        fleet_auth(fake, store).get_token()
    assert "s3cret-pass" not in repr(store) + str(caught.value)
    assert repr(store) == "RedisTokenStore('redis://127.0.0.1:1/0')"


@pytest.mark.slow
def test_without_redis_py_the_error_names_the_extra() -> None:
    code = "import sys; sys.modules['redis'] = None\nfrom koyeb_auth import RedisTokenStore"
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert ("MissingExtraError: RedisTokenStore needs the 'redis' package, which the 'redis' extra installs: "
            "pip install './koyeb-auth[redis]'") in result.stderr




def test_the_acl_the_readme_recommends_is_enough(fake: FakeKoyebAPI, redis_url: str) -> None:
    readme = (Path(__file__).parents[1] / "docs" / "redis.md").read_text()
    rule = re.search(r"`ACL SETUSER koyeb-auth (.+?)`", readme)
    assert rule is not None
    user = f"koyeb-auth-{uuid.uuid4().hex[:8]}"
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command("ACL", "SETUSER", user, *rule.group(1).split())
    try:
        url = redis_url.replace("redis://", f"redis://{user}:secret@")
        store = RedisTokenStore(url)
        auth = fleet_auth(fake, store)
        token = auth.get_token()
        auth.logout()

        async def run() -> str:
            value = await fleet_auth(fake, store).aget_token()
            await store.aclose()
            return value

        assert asyncio.run(run()) != token
        with pytest.raises(TokenStoreError):
            RedisTokenStore(url, namespace="elsewhere").load("key")  # outside its keys
    finally:
        admin.execute_command("ACL", "DELUSER", user)
        admin.delete(*admin.keys("{koyeb-auth}:*") or ["-"])
        admin.close()


def test_clients_of_your_own_serve_both_faces(fake: FakeKoyebAPI, redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    sync_only = RedisTokenStore(client=client, namespace=namespace)
    assert repr(sync_only).startswith("RedisTokenStore('redis://127.0.0.1:")
    token = fleet_auth(fake, sync_only).get_token()

    async def run() -> str:
        async_client = redis.asyncio.Redis.from_url(redis_url, socket_timeout=2)
        both = RedisTokenStore(client=client, async_client=async_client, namespace=namespace)
        first = await fleet_auth(fake, both).aget_token()  # adopted from Redis
        second = await fleet_auth(fake, sync_only).aget_token()  # through a worker thread
        await async_client.aclose()
        assert first == second
        return first

    assert asyncio.run(run()) == token
    client.close()
    assert fake.stats == {"login": 1}
    with pytest.raises(ConfigurationError, match="either a Redis URL or client="):
        RedisTokenStore(redis_url, client=client)


def test_under_trio_the_redis_store_says_it_needs_asyncio(
    fake: FakeKoyebAPI, redis_store: Callable[..., RedisTokenStore]
) -> None:
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, store=redis_store())

    async def request() -> None:
        async with httpx.AsyncClient(auth=auth) as client:
            await client.get(fake.url + "/v1/apps")

    with pytest.raises(ConfigurationError, match=r"need asyncio.*trio.to_thread.run_sync") as raised:
        trio.run(request)
    assert raised.value.__context__ is None
    assert fake.stats == {}  # it said so before any login
    assert auth.get_token()  # the blocking methods work, as the message says


# --- choosing the store without code; copies of a store -------------------------------------------


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "koyeb_auth", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60, check=False)


def test_the_command_line_shares_the_fleet_token_through_koyeb_auth_store_or_store(
    fake: FakeKoyebAPI, tmp_path: Path
) -> None:
    with start_redis_server() as server:  # the default namespace, on a Redis of this test's own
        account = {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD}
        hosts = [{**account, "HOME": str(tmp_path / h), "XDG_CACHE_HOME": str(tmp_path / h / "cache")} for h in "abc"]
        first = cli("token", env={**hosts[0], "KOYEB_AUTH_STORE": server.url})
        child = ("import hashlib, os; print(hashlib.sha256(os.environ['KOYEB_TOKEN'].encode()).hexdigest()[:8], "
                 "'KOYEB_AUTH_STORE' in os.environ)")
        second = cli("exec", "--", sys.executable, "-c", child, env={**hosts[1], "KOYEB_AUTH_STORE": server.url})
        third = cli("token", "--store", server.url, env=hosts[2])
    assert (first.returncode, second.returncode, third.returncode) == (0, 0, 0), first.stderr + second.stderr
    token = first.stdout.strip()
    assert second.stdout.split() == [fingerprint(token), "False"]  # the same token; not the store's URL
    assert fingerprint(third.stdout.strip()) == fingerprint(token)
    assert fake.stats == {"login": 1}
    assert not list(tmp_path.rglob("tokens.json"))  # no host fell back to a cache file of its own


def test_koyeb_auth_store_is_the_default_store_when_none_is_given(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOYEB_AUTH_STORE", redis_url)
    assert repr(KoyebAuth(token="t").store) == repr(RedisTokenStore(redis_url))
    assert isinstance(KoyebAuth(token="t", cache_path=tmp_path / "t.json").store, FileTokenStore)
    monkeypatch.setenv("KOYEB_AUTH_STORE", str(tmp_path / "tokens.json"))
    with pytest.raises(ConfigurationError, match=r"\$KOYEB_AUTH_STORE must be a readable redis://, rediss://"):
        KoyebAuth(token="t")


def test_a_store_built_from_a_url_pickles_as_its_settings_and_shares_the_tokens(
    fake: FakeKoyebAPI, redis_url: str, redis_store: StoreFactory
) -> None:
    store = redis_store(lease=20.0, timeout=1.0)
    token = fleet_auth(fake, store).get_token()
    for copied in (pickle.loads(pickle.dumps(store)), copy.deepcopy(store)):
        assert repr(copied) == repr(store) and copied.lease == 20.0
        same = fleet_auth(fake, copied).get_token() == token
        assert same
        copied.close()
    assert fake.stats == {"login": 1}
    with pytest.raises(ConfigurationError, match="built from client= cannot be pickled"):
        pickle.dumps(RedisTokenStore(client=redis.Redis.from_url(redis_url)))
