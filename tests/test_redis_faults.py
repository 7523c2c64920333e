"""The Redis store under faults, against a real redis-server: a network slower than the timeout or
losing replies (a delaying proxy), a Redis that never answers, tampered and lost keys, hundreds of
event loops. Hosts are store objects of their own (each with its own in-process locks)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote, urlsplit

import httpx
import pytest
import redis

from koyeb_auth import (
    ConfigurationError,
    KoyebAuth,
    RedisTokenStore,
    StoreUnavailableError,
    Token,
    TokenStoreError,
)
from koyeb_auth.testing import FakeKoyebAPI, RedisServer

from .recorder import HostileRedis
from .redis_proxy import DelayingProxy
from .redis_server import NEW, OLD, fleet_auth, fleet_key, fleet_session, lock_key, start_redis_server, wait_until
from .test_attacks import leaked, rendered

# The connections a store may open (RedisTokenStore's MAX_CONNECTIONS, written out: a test of the
# bound must not take it from the code it checks).
BOUND = 4

StoreFactory = Callable[..., RedisTokenStore]


@pytest.fixture
def proxy(redis_url: str) -> Iterator[DelayingProxy]:
    """The test Redis, reached through a network that can be made slow."""
    port = urlsplit(redis_url).port
    assert port is not None
    with DelayingProxy(port) as slow_network:
        yield slow_network


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def keys_of(admin: redis.Redis, namespace: str, kind: str) -> list[str]:
    """The namespace's keys of one kind (lock, fence, token), whatever the layout version."""
    return [key.decode() for key in admin.keys(f"{{{namespace}}}:*:{kind}*")]


# --- 1. a lock attempt that fails, times out or is cancelled leaves no lock ---------------------------


def test_a_lock_attempt_slower_than_the_timeout_leaves_no_lock_behind(
    redis_store: StoreFactory, proxy: DelayingProxy
) -> None:
    slow, quick = redis_store(url=proxy.url, timeout=0.3, lease=30.0), redis_store()
    assert slow.load("key") is None  # connected
    proxy.delay = 0.6  # the network gets slower than the timeout...
    with pytest.raises(StoreUnavailableError):
        slow.try_lock()
    proxy.delay = 0.0  # ...and recovers
    proxy.drained()  # the timed-out lock script has reached Redis, and run
    # Left alone, the lock it took would block every host for its 30 s lease.
    wait_until(quick.try_lock)


def test_a_lock_whose_reply_was_lost_belongs_to_its_owner_on_the_retry(
    redis_store: StoreFactory, proxy: DelayingProxy
) -> None:
    store = redis_store(url=proxy.url)
    assert store.load("key") is None
    proxy.replies_to_cut = 1  # the lock script runs, its reply is lost, redis-py retries at once
    assert store.try_lock()  # the retry finds the lock its own
    store.save("key", NEW)
    store.unlock()
    assert redis_store().try_lock()


def test_a_task_cancelled_during_its_lock_attempt_leaves_no_lock(
    redis_store: StoreFactory, proxy: DelayingProxy
) -> None:
    slow, quick = redis_store(url=proxy.url, lease=30.0), redis_store()

    async def cancel_an_attempt() -> None:
        assert await slow.aload("key") is None
        proxy.delay = 0.3
        attempt = asyncio.create_task(slow.atry_lock())
        await asyncio.sleep(0.1)  # the lock script is on its way
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt

    asyncio.run(cancel_an_attempt())
    proxy.delay = 0.0
    proxy.drained()
    wait_until(quick.try_lock)  # not after the 30 s lease


# --- 2. connections and event loops ---------------------------------------------------------------


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own: its connections are all ours to count."""
    with start_redis_server() as server:
        yield server


def test_two_hundred_event_loops_leave_no_connection_no_loop_and_no_file_behind(
    fake: FakeKoyebAPI, private_redis: RedisServer
) -> None:
    admin = redis.Redis.from_url(private_redis.url)
    store = RedisTokenStore(private_redis.url)
    fleet_auth(fake, store).get_token()  # the token each job adopts from Redis

    def census() -> tuple[int, int, int]:
        gc.collect()
        # Closed loops only: each job's loop is closed when it ends, while a loop that another thread
        # (an earlier test's, on a busy machine) is running at that moment is none of this test's.
        loops = sum(isinstance(thing, asyncio.AbstractEventLoop) and thing.is_closed() for thing in gc.get_objects())
        return len(admin.client_list()), loops, len(os.listdir("/proc/self/fd"))

    before = census()
    for _ in range(200):  # a script that runs one event loop per job
        asyncio.run(fleet_auth(fake, store).aget_token())
    connections, loops, files = (after - first for after, first in zip(census(), before, strict=True))
    store.close()
    admin.close()
    assert connections <= BOUND
    assert loops == 0
    assert files <= BOUND
    assert fake.stats == {"login": 1}


def test_fifty_cold_tasks_open_a_few_connections_not_fifty(fake: FakeKoyebAPI, private_redis: RedisServer) -> None:
    admin = redis.Redis.from_url(private_redis.url)
    store = RedisTokenStore(private_redis.url)
    fake.login_delay = 0.2
    opened = admin.info("stats")["total_connections_received"]

    async def cold_start() -> list[int]:
        async with httpx.AsyncClient(auth=fleet_auth(fake, store)) as client:
            responses = await asyncio.gather(*(client.get(fake.url + "/v1/apps") for _ in range(50)))
        return [response.status_code for response in responses]

    assert asyncio.run(cold_start()) == [200] * 50
    assert admin.info("stats")["total_connections_received"] - opened <= BOUND
    store.close()
    admin.close()
    assert fake.stats == {"login": 1, "api": 50}


def test_when_every_connection_is_busy_the_error_says_so(redis_store: StoreFactory, proxy: DelayingProxy) -> None:
    store = redis_store(url=proxy.url, timeout=0.5)
    proxy.delay = 2.0  # every call holds its connection past its caller's timeout (and redis-py's retry)

    async def crowd() -> tuple[list[BaseException | Token | None], list[BaseException | Token | None]]:
        first = [asyncio.create_task(store.aload("key")) for _ in range(BOUND)]
        while proxy.accepted < BOUND:  # every connection is taken
            await asyncio.sleep(0.01)
        later = await asyncio.gather(*(store.aload("key") for _ in range(BOUND)), return_exceptions=True)
        return await asyncio.gather(*first, return_exceptions=True), later

    first, later = asyncio.run(crowd())
    assert all(isinstance(failure, StoreUnavailableError) for failure in first + later)
    assert all("did not answer within 0.5 s" in str(failure) for failure in first), first
    assert all(f"All {BOUND} connections of" in str(failure) for failure in later), later
    assert all("stayed busy" in str(failure) for failure in later)


# --- 3. a lease shorter than a renewal ------------------------------------------------------------


def test_a_login_longer_than_the_lease_is_shared_by_the_fleet(fake: FakeKoyebAPI, redis_store: StoreFactory) -> None:
    fake.login_delay = 2.5
    hosts = [redis_store(lease=1.0, timeout=0.5) for _ in range(3)]
    tokens: list[str] = []
    threads = [threading.Thread(target=lambda s=store: tokens.append(fleet_auth(fake, s).get_token()))
               for store in hosts]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # the first host takes the lock
    for thread in threads:
        thread.join(30)
    assert len(tokens) == 3 and len(set(tokens)) == 1
    stored = hosts[0].load(fleet_key(fake))
    assert stored is not None and stored.value == tokens[0]  # written, though the login outlived the lease
    assert fake.stats == {"login": 1}


def test_a_lease_that_cannot_cover_a_renewal_is_refused_or_warned_about(
    fake: FakeKoyebAPI, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    default_timeout = KoyebAuth.__init__.__kwdefaults__["timeout"]
    store = RedisTokenStore(redis_url)
    fleet_auth(fake, store)
    assert store.lease > 2 * default_timeout  # the defaults cover a renewal of two API calls
    assert "lease" not in caplog.text
    fleet_auth(fake, RedisTokenStore(redis_url, lease=10.0))
    assert "10 s lease, shorter than a renewal may take (two API calls of timeout=15 s)" in caplog.text
    with pytest.raises(ConfigurationError, match="lease at least twice the timeout"):
        RedisTokenStore(redis_url, lease=1.0, timeout=2.0)  # its watchdog could not extend it in time


def test_a_host_with_a_shorter_lease_waits_for_a_holder_with_a_longer_one(
    fake: FakeKoyebAPI, namespace: str, redis_store: StoreFactory, admin: redis.Redis
) -> None:
    fake.login_delay = 1.0
    patient, hasty = redis_store(lease=60.0), redis_store(lease=5.0)
    tokens: list[str] = []
    errors: list[Exception] = []

    def log_in(store: RedisTokenStore) -> None:
        try:
            tokens.append(fleet_auth(fake, store).get_token())
        except TokenStoreError as exc:
            errors.append(exc)

    holder = threading.Thread(target=log_in, args=(patient,))
    holder.start()
    wait_until(lambda: admin.exists(lock_key(namespace)))  # the 60 s host is inside its slow login
    assert admin.pttl(lock_key(namespace)) > 10 * 5000  # longer than the 5 s host would believe
    waiter = threading.Thread(target=log_in, args=(hasty,))
    waiter.start()
    for thread in (holder, waiter):
        thread.join(30)
    assert errors == []
    assert len(tokens) == 2 and len(set(tokens)) == 1
    assert fake.stats == {"login": 1}


# --- 4. a lost fence counter ----------------------------------------------------------------------


def test_a_lost_fence_counter_blocks_no_write_and_fencing_numbers_keep_growing(
    namespace: str, redis_store: StoreFactory, admin: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    store = redis_store()
    for token in (OLD, OLD, OLD):  # three holders wrote: the stored entry carries fencing number 3
        assert store.try_lock()
        store.save("key", token)
        store.unlock()
    [fence] = keys_of(admin, namespace, "fence")
    admin.delete(fence)  # or evicted (allkeys-lru), or lost in a restart
    other = redis_store()
    assert other.try_lock()
    other.save("key", NEW)  # the stored entry's fence (3) is higher than this holder's (1)
    other.unlock()
    loaded = other.load("key")
    assert loaded is not None and loaded.value == NEW.value
    assert "fencing counter" in caplog.text
    admin.set(fence, "not a number")
    assert other.try_lock()
    other.save("key", OLD)
    other.unlock()
    counter = admin.get(fence)
    assert counter is not None and int(counter) > 4  # what is written stays monotonic across each loss


def test_a_lost_fence_counter_does_not_make_every_process_log_in(
    fake: FakeKoyebAPI, namespace: str, redis_store: StoreFactory, admin: redis.Redis
) -> None:
    valid = fleet_auth(fake, redis_store()).get_token()
    seed = redis_store()
    for _ in range(3):  # a fleet that has renewed a few times; the token is now in its refresh window
        assert seed.try_lock()
        seed.save(fleet_key(fake), fleet_session(fake, valid, obtained_at=time.time() - 3500,
                                                  expires_at=time.time() + 100))
        seed.unlock()
    admin.delete(*keys_of(admin, namespace, "fence"))
    fake.reset_stats()
    for _ in range(3):  # three processes, one after the other
        fleet_auth(fake, redis_store()).get_token()
    # The first refreshes (which revokes the old token) and shares the new one: no one logs in.
    assert fake.stats == {"refresh": 1}


# --- 5. the timeout is the bound ------------------------------------------------------------------


def test_store_unavailable_comes_within_the_timeout_not_twice_it(fake: FakeKoyebAPI) -> None:
    silent = socket.socket()  # accepts connections in the kernel and never answers them
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    store = RedisTokenStore(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout=1.0)
    waited = []
    attempts = [lambda: store.load("key"), lambda: asyncio.run(store.aload("key")), fleet_auth(fake, store).get_token]
    for attempt in attempts:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match=r"did not answer within 1 s"):
            attempt()
        waited.append(time.monotonic() - started)
    silent.close()
    assert max(waited) < 1.9  # 1 s and scheduling on a busy machine, not a timeout and a retry (2 s)


def test_a_stuck_call_is_cut_alone_and_its_neighbours_fail_only_with_our_errors() -> None:
    # Every 20th call gets a reply a byte every 0.1 s, each within the socket timeout: stuck until
    # cut, while the other calls of the store go on over its other connections.
    with HostileRedis(b"$24\r\n" + b"x" * 24 + b"\r\n", trickle=0.1, trickle_every=100) as server:
        store = RedisTokenStore(server.url, timeout=0.3, lease=1.2)
        outcomes: collections.Counter[str] = collections.Counter()
        until = time.monotonic() + 3.0

        def call_and_count() -> None:
            while time.monotonic() < until:
                try:
                    store.load("key")
                    outcomes["answered"] += 1
                except TokenStoreError:
                    outcomes["ours"] += 1
                except Exception as exc:
                    outcomes[f"raw {type(exc).__name__}"] += 1

        threads = [threading.Thread(target=call_and_count) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        store.close()
    assert server.trickled > 5 and outcomes["answered"] > 0, (server.trickled, outcomes)
    assert set(outcomes) <= {"answered", "ours"}, outcomes
    # Cutting a stuck call's connection costs one new connection; cutting the whole pool would cut
    # calls still running on the others too (more new connections than stuck calls).
    assert server.accepted - BOUND <= server.trickled, (server.accepted, server.trickled)


@contextlib.contextmanager
def frozen(server: RedisServer) -> Iterator[None]:
    """The server stopped (SIGSTOP): its connections accept and nothing answers, as on a hung host."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


@pytest.mark.parametrize("callers", ["threads", "tasks"])
def test_callers_queued_behind_a_frozen_redis_fail_within_their_own_timeout(
    fake: FakeKoyebAPI, private_redis: RedisServer, callers: str
) -> None:
    # The holder of the renewal finds Redis dead: the callers queued behind it get its error at
    # once, rather than each trying the dead store in turn (the n-th failing after n timeouts).
    auth = fleet_auth(fake, RedisTokenStore(private_redis.url, timeout=1.0), timeout=1.0)
    httpx.get(fake.url + "/v1/apps", auth=auth).raise_for_status()
    fake.revoke()  # every request now needs a renewal, which needs the store's lock
    failures: list[tuple[str, float]] = []

    def call() -> None:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            httpx.get(fake.url + "/v1/apps", auth=auth)
        failures.append(("thread", time.monotonic() - started))

    async def tasks() -> None:
        async with httpx.AsyncClient(auth=auth) as client:
            async def call() -> None:
                started = time.monotonic()
                with pytest.raises(StoreUnavailableError):
                    await client.get(fake.url + "/v1/apps")
                failures.append(("task", time.monotonic() - started))

            await asyncio.gather(*(call() for _ in range(8)))

    with frozen(private_redis):
        if callers == "threads":
            threads = [threading.Thread(target=call) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            asyncio.run(tasks())
    assert len(failures) == 8
    # One store timeout (1 s) and generous slack for a busy machine; before, the 8th waited 8 s.
    assert max(waited for _, waited in failures) < 3.5, failures


# --- 6. an expired token is never sent ------------------------------------------------------------


def test_a_token_that_expires_during_a_slow_lock_attempt_is_never_sent(
    fake: FakeKoyebAPI, redis_store: StoreFactory, proxy: DelayingProxy
) -> None:
    fake.ttl = 2.0  # due after 1 s, sent until 1.8 s
    store = redis_store(url=proxy.url, timeout=3.0, lease=30.0)
    with httpx.Client(auth=fleet_auth(fake, store)) as client:
        assert client.get(fake.url + "/v1/apps").status_code == 200
        peer = redis_store()
        assert peer.try_lock()  # a peer is renewing
        time.sleep(1.05)  # our token is due
        proxy.delay = 1.5  # and Redis gets slow: our lock attempt (busy) returns after the token expired
        recovery = threading.Timer(2.0, lambda: (setattr(proxy, "delay", 0.0), peer.unlock()))
        recovery.start()
        response = client.get(fake.url + "/v1/apps")
        recovery.join()
    assert response.status_code == 200
    stats = fake.stats
    assert stats.get("expired_sent", 0) == 0 and stats.get("unauthorized", 0) == 0
    assert stats["login"] == 2


# --- 7. keys of the wrong type --------------------------------------------------------------------


def _replace(admin: redis.Redis, key: str, fill: Callable[[str], object]) -> None:
    admin.delete(key)
    fill(key)


TAMPERING: dict[str, Callable[[redis.Redis, dict[str, str]], object]] = {
    "a list at the token key": lambda admin, keys: _replace(admin, keys["token"], lambda k: admin.rpush(k, "x")),
    "a hash at the lock key": lambda admin, keys: admin.hset(keys["lock"], "a", "b"),
    "a lock without a lease": lambda admin, keys: admin.set(keys["lock"], "someone:1"),
    "a fence that is not a number": lambda admin, keys: admin.set(keys["fence"], "1.5"),
    "a fence of another type": lambda admin, keys: _replace(admin, keys["fence"], lambda k: admin.sadd(k, "1")),
}


@pytest.mark.parametrize("tamper", TAMPERING)
def test_keys_of_the_wrong_type_are_replaced_not_fatal(
    fake: FakeKoyebAPI, namespace: str, redis_store: StoreFactory, admin: redis.Redis, tamper: str
) -> None:
    auth = fleet_auth(fake, redis_store())
    auth.get_token()
    [token_key], [fence_key] = keys_of(admin, namespace, "token"), keys_of(admin, namespace, "fence")
    keys = {"token": token_key, "fence": fence_key, "lock": fence_key.rsplit(":", 1)[0] + ":lock"}
    auth.logout()  # the token is gone: the next process takes the lock and logs in
    TAMPERING[tamper](admin, keys)
    fresh = fleet_auth(fake, redis_store(), lock_timeout=3.0)
    token = fresh.get_token()
    stored = redis_store().load(fleet_key(fake))
    assert stored is not None and stored.value == token  # shared, so the corrupt key was replaced
    fresh.logout()  # and the lock works again
    assert fake.stats["login"] == 2


# --- 8. URLs and errors keep their secrets --------------------------------------------------------


@pytest.mark.parametrize("password", ["s3cr/et", "s3cr#et", "s3cr?et", "12/s3cret"])
def test_a_url_password_with_reserved_characters_is_a_clear_error_without_the_password(
    redis_url: str, password: str
) -> None:
    bad = redis_url.replace("redis://", f"redis://fleet:{password}@")
    with pytest.raises(ConfigurationError, match="must be percent-encoded") as caught:
        RedisTokenStore(bad)
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert "s3cr" not in str(caught.value) and "12" not in str(caught.value)
    encoded = RedisTokenStore(redis_url.replace("redis://", f"redis://fleet:{quote(password, safe='')}@"))
    assert "s3cr" not in repr(encoded)
    encoded.close()


@pytest.mark.parametrize("option", ["ssl=true", "timeout=1", "ssl_cert_reqs=none", "max_connections=100"])
def test_a_url_option_the_store_cannot_use_is_a_clear_error_at_construction_without_the_password(
    redis_url: str, option: str
) -> None:
    bad = redis_url.replace("redis://", "redis://fleet:s3cret-pw@") + "?" + option
    with pytest.raises(ConfigurationError, match=f"option '{option.split('=', maxsplit=1)[0]}'") as caught:
        RedisTokenStore(bad)
    assert caught.value.__context__ is None and caught.value.__cause__ is None
    assert leaked(rendered(caught.value), ["s3cret-pw"]) == []
    tls = RedisTokenStore(redis_url.replace("redis://", "rediss://") + "?ssl_cert_reqs=none&client_name=fleet")
    tls.close()  # the options a TLS URL may carry (it connects only when used)
    plain = RedisTokenStore(redis_url + "?client_name=fleet&health_check_interval=10")
    assert plain.load("key") is None
    plain.close()


def test_a_refused_command_is_reported_without_the_redis_error_attached(fake: FakeKoyebAPI, redis_url: str) -> None:
    admin = redis.Redis.from_url(redis_url)
    user = f"reader-{os.getpid()}"
    admin.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "+eval", "+type", "+get", "+strlen", "+exists",
                          "+hello")
    try:
        store = RedisTokenStore(redis_url.replace("redis://", f"redis://{user}:pw@"))
        with pytest.raises(TokenStoreError, match="refused a token-store command") as caught:
            fleet_auth(fake, store).get_token()  # may read, may not write
        # The redis error's traceback holds the command's arguments (a token entry): not attached.
        assert caught.value.__context__ is None and caught.value.__cause__ is None
    finally:
        admin.execute_command("ACL", "DELUSER", user)
        admin.close()


# --- 9. what is stored is checked like an API reply; the key names are salted ---------------------


@pytest.mark.parametrize("size", [1 << 20, 9 << 10])  # a value too large to read; a token too long to send
def test_a_huge_stored_token_is_never_sent(
    fake: FakeKoyebAPI, namespace: str, redis_store: StoreFactory, admin: redis.Redis, caplog: pytest.LogCaptureFixture,
    size: int,
) -> None:
    fleet_auth(fake, redis_store()).get_token()
    [key] = keys_of(admin, namespace, "token")
    now = time.time()
    admin.set(key, json.dumps({"token": "x" * size, "obtained_at": now, "expires_at": now + 3600, "fence": 99}))
    fake.reset_stats()
    with httpx.Client(auth=fleet_auth(fake, redis_store())) as client:
        assert client.get(fake.url + "/v1/apps").status_code == 200
    assert fake.stats == {"login": 1, "api": 1}  # not a 401 for a planted token first
    assert "unreadable token" in caplog.text


def test_key_names_are_salted_with_the_namespace(
    fake: FakeKoyebAPI, redis_store: StoreFactory, admin: redis.Redis
) -> None:
    hashes = []
    for namespace in ("fleet-a", "fleet-b"):
        fleet_auth(fake, redis_store(namespace=namespace)).get_token()
        [key] = keys_of(admin, namespace, "token")
        hashes.append(key.rsplit(":", 1)[1])
        admin.delete(*admin.keys(f"{{{namespace}}}:*"))
    assert hashes[0] != hashes[1]  # one account, two deployments: nothing to match across them
