"""Tasks for the worker-pool tests (tests/test_pickle.py): importable by name, as spawn needs.

Each task gets the KoyebAuth through `Pool.map`, so it arrives pickled.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from koyeb_auth import KoyebAuth
from koyeb_auth._token import fingerprint

REQUESTS_PER_TASK = 10

_start: Any = None  # a Barrier for the pool's workers, given at their creation


def init_worker(start: Any) -> None:
    global _start
    _start = start


def fetch_apps(auth: KoyebAuth) -> tuple[int, list[int], str]:
    """Wait until every worker holds a task (a cold start of the whole pool at once), then make
    REQUESTS_PER_TASK requests. Returns the pid, the statuses and the fingerprint of the token."""
    _start.wait(timeout=120)
    with httpx.Client(base_url=auth.settings.api_url, auth=auth) as client:
        statuses = [client.get("/v1/apps").status_code for _ in range(REQUESTS_PER_TASK)]
    return os.getpid(), statuses, fingerprint(auth.get_token())


def refuse_to_hash() -> None:
    """A worker that may not derive a password's hash: it must have been carried to it."""
    import hashlib  # noqa: PLC0415

    def refused(*args: object, **kwargs: object) -> bytes:
        raise AssertionError("this worker derived the password's hash again")

    hashlib.scrypt = refused  # type: ignore[assignment]


def token_of(auth: KoyebAuth) -> str:
    return fingerprint(auth.get_token())
