"""A real redis-server for the Redis store's tests, or a skip (a failure in CI) without one."""

from __future__ import annotations

import os

import pytest

from koyeb_auth.testing import RedisServer


def start_redis_server() -> RedisServer:
    try:
        return RedisServer()
    except FileNotFoundError as exc:
        if os.environ.get("REDIS_TESTS_REQUIRED"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
