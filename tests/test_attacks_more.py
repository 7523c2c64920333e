"""Attacks of the second red team: secrets in the environment and in pickles, hostile Redis replies,
the `exec` child, edited state files, passing 404s, tampered Redis keys, echoing servers.

Each test failed on the code before its fix (see SECURITY.md).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import redis
from freezegun import freeze_time

from koyeb_auth import (
    CacheFileError,
    ConfigurationError,
    KoyebAuth,
    RedisTokenStore,
    StoreUnavailableError,
    Token,
    TokenStoreError,
)
from koyeb_auth import _session_api as api
from koyeb_auth._token import entry_from_token
from koyeb_auth.testing import FakeKoyebAPI, Fault

from .recorder import HostileRedis
from .test_attacks import leaked, rendered


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "koyeb_auth", *args], capture_output=True, text=True, timeout=60,
                          check=False, env={**os.environ, **env})


# --- secrets read from the environment, or given in a URL ----------------------------------------------


@pytest.mark.parametrize("store_url", ["redis://u:SECRETpw/x@127.0.0.1:1/0", "redis://u:SECRETpw@[::1/0"])
def test_a_broken_store_url_from_the_environment_shows_no_secret_in_traceback_locals(
    store_url: str, monkeypatch: pytest.MonkeyPatch, cache_path: Path
) -> None:
    monkeypatch.setenv("KOYEB_AUTH_STORE", store_url)
    monkeypatch.setenv("KOYEB_PASSWORD", "pw-in-the-environment")
    with pytest.raises(ConfigurationError) as caught:
        KoyebAuth("a@b.c")
    assert leaked(rendered(caught.value), ["SECRETpw", "pw-in-the-environment"]) == []
    with pytest.raises(ConfigurationError) as caught:  # an argument error, with the password an argument
        KoyebAuth("a@b.c", "pw-argument", cache_path=cache_path, store=object())  # type: ignore[arg-type]
    assert leaked(rendered(caught.value), ["pw-argument"]) == []
    with pytest.raises(ConfigurationError) as caught:
        KoyebAuth("a@b.c", "pw", api_url="https://me:hunter2/x@app.koyeb.com").get_token()
    assert leaked(rendered(caught.value), ["hunter2"]) == []


def test_a_pickle_carries_no_store_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, tmp_path: Path
) -> None:
    with_password = redis_url.replace("redis://", "redis://user:PICKLEDpw@")
    monkeypatch.setenv("KOYEB_AUTH_STORE", with_password)
    auth = KoyebAuth("a@b.c", "pw")
    assert isinstance(auth.store, RedisTokenStore)
    data = pickle.dumps(auth)
    assert b"PICKLEDpw" not in data
    monkeypatch.delenv("KOYEB_AUTH_STORE")  # the copy finds its own store, in its own environment
    copy = pickle.loads(data)
    assert not isinstance(copy.store, RedisTokenStore)
    given = KoyebAuth("a@b.c", "pw", store=RedisTokenStore(with_password))  # an argument travels: it must
    assert isinstance(pickle.loads(pickle.dumps(given)).store, RedisTokenStore)


# --- a hostile Redis -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_reply_redis_py_cannot_parse_is_a_token_store_error() -> None:
    with HostileRedis(b":abc\r\n") as server:
        store = RedisTokenStore(server.url, timeout=2, lease=4)
        with pytest.raises(TokenStoreError) as caught:
            store.load("k")
        # Our words, whatever redis-py calls the failure (ValueError up to 7.x, InvalidResponse in 8.x).
        assert server.url.split("/")[2] in str(caught.value) and caught.value.__context__ is None
        with pytest.raises(TokenStoreError):
            store.try_lock()
        store.close()


@pytest.mark.slow
def test_a_trickled_reply_frees_its_connection_when_the_caller_gives_up() -> None:
    with HostileRedis(b"$200\r\n" + b"x" * 200 + b"\r\n", trickle=0.3) as server:
        store = RedisTokenStore(server.url, timeout=1, lease=4)
        for _ in range(5):  # more calls than the store has connections
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="did not answer"):  # never "all connections busy"
                store.load("k")
            assert time.monotonic() - started < 2.0
        deadline = time.monotonic() + 5
        while any(t.name == "koyeb-auth-redis" for t in threading.enumerate()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(t.name == "koyeb-auth-redis" for t in threading.enumerate())
        store.close()


def test_tampered_redis_keys_neither_block_the_fleet_nor_plant_an_everlasting_token(
    fake: FakeKoyebAPI, redis_url: str, namespace: str
) -> None:
    store = RedisTokenStore(redis_url, namespace=namespace, timeout=2, lease=4)
    admin = redis.Redis.from_url(redis_url)
    admin.set(f"{{{namespace}}}:v2:lock", "someone:1", px=10**12)  # a lock of 32 years
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, store=store, lock_timeout=2)
    assert auth.get_token()
    planted = Token("p" * 40, obtained_at=time.time(), expires_at=time.time() + 300 * 365.25 * 86400)
    entry = json.dumps({**entry_from_token(planted), "fence": 99})
    keys = [key for key in admin.keys(f"{{{namespace}}}:v2:token:*")]
    assert len(keys) == 1
    admin.set(keys[0], entry)
    fresh = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, store=store)
    assert fresh.get_token() != planted.value
    assert fake.stats["login"] == 2
    admin.close()
    store.close()


# --- the command line ---------------------------------------------------------------------------------


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_the_exec_child_replaces_the_command_so_no_process_keeps_the_credentials(
    fake: FakeKoyebAPI, cache_path: Path
) -> None:
    child = ("import os; print(os.getpid()); environ = open(f'/proc/{os.getpid()}/environ', 'rb').read(); "
             "print(b'KOYEB_PASSWORD' in environ)")
    env = {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD}
    process = subprocess.Popen([sys.executable, "-m", "koyeb_auth", "exec", "--cache-path", str(cache_path), "--",
                                sys.executable, "-c", child], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, **env})
    out, _ = process.communicate(timeout=60)
    pid, in_environ = out.split()
    assert int(pid) == process.pid  # the child is the command's process: no parent of ours waits beside it
    assert in_environ == "False"


def test_a_state_file_edited_to_a_plain_http_url_is_ignored(fake: FakeKoyebAPI, cache_path: Path) -> None:
    state = cache_path.with_name(cache_path.name + ".login")
    state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    state.write_text(json.dumps({"version": 1, "api_url": "http://example.com", "email": fake.EMAIL,
                                 "organization_id": None, "key": "k" * 32}))
    state.chmod(0o600)
    status = cli("status", "--cache-path", str(cache_path), "--offline", env={})
    assert status.returncode == 3 and "No Koyeb credentials" in status.stdout  # the edited file is not used


@pytest.mark.slow
def test_odd_inputs_are_one_line_errors(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "tokens.json"
    cache.mkdir(parents=True)  # a directory where the cache file should be
    with FakeKoyebAPI() as fake:
        login = cli("login", "--cache-path", str(cache), "--email", fake.EMAIL, env={"KOYEB_URL": fake.url,
                                                                                     "KOYEB_PASSWORD": fake.PASSWORD})
    assert login.returncode == 7 and "Traceback" not in login.stderr
    assert login.stderr.splitlines()[-1].startswith("koyeb-auth: The token cache")
    bad_store = cli("token", env={"KOYEB_AUTH_STORE": "redis://u:pw@[::1/0", "KOYEB_TOKEN": "t" * 64})
    assert bad_store.returncode == 3 and "Traceback" not in bad_store.stderr and "pw@" not in bad_store.stderr
    with pytest.raises(ConfigurationError):
        KoyebAuth("a@b.c", "pw", proxy="socks6://user:pw@proxy")


# --- echoing servers, passing 404s, failures reported -------------------------------------------------------


def test_a_server_message_that_echoes_the_password_or_the_token_is_redacted() -> None:
    login = api.login("https://x", "a@b.c", "s3cret-Password", None, None)
    echoed = json.dumps({"status": 401, "message": "bad password s3cret-Password"}).encode()
    assert "s3cret-Password" not in str(api.error_for(login, api.Reply(401, {}, echoed)))
    refresh = api.refresh("https://x", "tok-abcdef")
    echoed = json.dumps({"status": 400, "message": "cannot refresh tok-abcdef"}).encode()
    assert "tok-abcdef" not in str(api.error_for(refresh, api.Reply(400, {}, echoed)))


def test_a_passing_404_page_does_not_withdraw_the_refresh_for_good(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.ttl = 600
    auth = make_auth(refresh_margin=300)
    with freeze_time(tick=True) as clock:
        auth.get_token()
        clock.tick(400)
        fake.fail("refresh", Fault(404, b"<html>Not Found</html>", {"content-type": "text/html"}))
        assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200  # the valid token is kept
        clock.tick(150)  # due again, after the backoff: the refresh is asked again, and works
        assert httpx.get(fake.url + "/v1/apps", auth=auth).status_code == 200
    assert fake.stats["refresh"] == 1 and fake.stats["login"] == 1


def test_a_store_that_cannot_be_read_is_a_failed_event(tmp_path: Path, fake: FakeKoyebAPI) -> None:
    cache = tmp_path / "tokens.json"
    cache.symlink_to(tmp_path / "elsewhere.json")
    events: list[str] = []
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache,
                     on_event=lambda event: events.append(event.kind))
    with pytest.raises(CacheFileError):
        auth.get_token()
    assert events == ["failed"]


def test_parents_of_the_cache_are_private_whatever_the_umask(tmp_path: Path, fake: FakeKoyebAPI) -> None:
    cache = tmp_path / "a" / "b" / "tokens.json"
    previous = os.umask(0)
    try:
        KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache).get_token()
    finally:
        os.umask(previous)
    assert [oct(path.stat().st_mode & 0o777) for path in (tmp_path / "a", tmp_path / "a" / "b")] == ["0o700"] * 2
