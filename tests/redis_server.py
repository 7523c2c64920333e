"""Helpers for the Redis store's tests: a real redis-server (or a skip, a failure in CI, without one),
the fleet's KoyebAuth, the names of its keys, and two stored tokens."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable

import pytest

from koyeb_auth import KoyebAuth, RedisTokenStore, Token
from koyeb_auth._config import Config, Credentials
from koyeb_auth._sources import Source, source_for
from koyeb_auth.testing import FakeKoyebAPI, RedisServer

# Valid for a year from now: a stored token said to last longer than ten years is refused as absurd.
OLD = Token("old-token", obtained_at=time.time(), expires_at=time.time() + 365 * 86400)
NEW = Token("new-token", obtained_at=time.time() + 1, expires_at=time.time() + 365 * 86400)


def start_redis_server() -> RedisServer:
    try:
        return RedisServer()
    except FileNotFoundError as exc:
        if os.environ.get("REDIS_TESTS_REQUIRED"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


def fleet_auth(fake: FakeKoyebAPI, store: RedisTokenStore, **options: float) -> KoyebAuth:
    return KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, store=store, **options)


def fleet_key(fake: FakeKoyebAPI) -> str:
    """The store key of the fake API's demo account."""
    return _fleet_source(fake).key


def fleet_session(fake: FakeKoyebAPI, value: str, obtained_at: float, expires_at: float) -> Token:
    """A session of the demo account as its password's processes keep it (with the password's hash)."""
    return _fleet_source(fake).opened(Token(value, obtained_at=obtained_at, expires_at=expires_at))


def _fleet_source(fake: FakeKoyebAPI) -> Source:
    source = source_for(Config({}).settings(Credentials(fake.EMAIL, fake.PASSWORD, api_url=fake.url)), None)
    assert source is not None
    return source


def lock_key(namespace: str) -> str:
    return f"{{{namespace}}}:v2:lock"


def token_key(namespace: str, key: str) -> str:
    """The Redis key of a store key: hashed with the namespace as the HMAC key (docs/redis.md)."""
    return f"{{{namespace}}}:v2:token:{hmac.new(namespace.encode(), key.encode(), hashlib.sha256).hexdigest()[:32]}"


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(0.01)
