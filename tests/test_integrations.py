"""httpx2, aiohttp and niquests beyond the shared client tests: concurrency, bodies, built as users build them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import httpx2
import pytest

from koyeb_auth import ConfigurationError, Httpx2KoyebAuth, KoyebAuth, KoyebAuthMiddleware, NiquestsAsyncKoyebAuth
from koyeb_auth.testing import FakeKoyebAPI, Fault

from .clients import niquests

needs_niquests = pytest.mark.skipif(niquests is None, reason="niquests is not installed (the lowest-versions run)")


def test_httpx2_clients_take_the_httpx2_flavour_as_built_by_users(fake: FakeKoyebAPI, cache_path: Path) -> None:
    auth = Httpx2KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path)
    assert isinstance(auth, httpx2.Auth) and isinstance(auth, KoyebAuth)
    with httpx2.Client(base_url=fake.url, auth=auth) as client:
        assert client.get("/v1/apps").status_code == 200
        fake.revoke()
        response = client.put("/v1/echo", files={"upload": ("a.txt", b"file body")})
        assert response.status_code == 200 and "file body" in response.json()["body"]  # multipart replayed

    async def run() -> list[int]:
        async with httpx2.AsyncClient(base_url=fake.url, auth=auth) as client:
            return [r.status_code for r in await asyncio.gather(*(client.get("/v1/apps") for _ in range(30)))]

    assert asyncio.run(run()) == [200] * 30
    assert fake.stats == {"login": 2, "api": 32, "unauthorized": 1, "refresh_refused": 1}


def test_a_plain_koyeb_auth_in_httpx2_is_a_clear_error_rather_than_half_working(
    fake: FakeKoyebAPI, cache_path: Path
) -> None:
    # httpx2 wraps any callable that is not its own Auth as a bare function, without the 401
    # retry: the requests hook would run on an httpx2 request. It must say what to use instead.
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path)
    with httpx2.Client(auth=auth) as client, pytest.raises(ConfigurationError, match="use Httpx2KoyebAuth with httpx2"):
        client.get(fake.url + "/v1/apps")
    assert fake.stats == {}


@needs_niquests
def test_a_plain_koyeb_auth_in_a_niquests_async_session_names_the_adapter_on_a_401(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()

    async def run() -> None:
        async with niquests.AsyncSession(auth=auth) as session:
            fake.fail("api", Fault(401, {"status": 401, "code": "authentication_error", "message": "no"}))
            await session.get(fake.url + "/v1/apps")

    with pytest.raises(ConfigurationError, match=r"Use NiquestsAsyncKoyebAuth\(auth\)"):
        asyncio.run(run())


@pytest.mark.parametrize("library", ["aiohttp", pytest.param("niquests", marks=needs_niquests)])
def test_fifty_concurrent_tasks_at_cold_start_cause_one_login(
    library: str, fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.login_delay = 0.2  # every task arrives while the login is in flight
    auth = make_auth()

    async def with_aiohttp() -> list[int]:
        async with aiohttp.ClientSession(middlewares=(KoyebAuthMiddleware(auth),)) as session:

            async def one() -> int:
                async with session.get(fake.url + "/v1/apps") as response:
                    return response.status

            return list(await asyncio.gather(*(one() for _ in range(50))))

    async def with_niquests() -> list[int]:
        async with niquests.AsyncSession(auth=NiquestsAsyncKoyebAuth(auth)) as session:
            responses = await asyncio.gather(*(session.get(fake.url + "/v1/apps") for _ in range(50)))
        return [r.status_code or 0 for r in responses]

    assert asyncio.run(with_aiohttp() if library == "aiohttp" else with_niquests()) == [200] * 50
    assert fake.stats == {"login": 1, "api": 50}


async def streamed() -> AsyncIterator[bytes]:
    yield b"streamed "
    yield b"once"


def test_aiohttp_replays_bytes_but_not_an_async_generator_and_still_renews(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    async def run() -> tuple[int, int, str, int]:
        async with aiohttp.ClientSession(middlewares=(KoyebAuthMiddleware(make_auth()),)) as session:
            async with session.get(fake.url + "/v1/apps") as first:
                await first.read()
            fake.revoke()
            async with session.post(fake.url + "/v1/echo", data=streamed()) as once:
                await once.read()
            fake.revoke()
            async with session.post(fake.url + "/v1/echo", data=b"bytes body") as replayed:
                body = json.loads(await replayed.read())["body"]
            async with session.get(fake.url + "/v1/apps") as after:
                return once.status, replayed.status, body, after.status

    assert asyncio.run(run()) == (401, 200, "bytes body", 200)
    assert fake.stats == {"login": 3, "api": 3, "unauthorized": 2, "refresh_refused": 2}


def test_aiohttp_middleware_leaves_other_origins_alone(fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]) -> None:
    async def run() -> int:
        with FakeKoyebAPI() as other:
            async with aiohttp.ClientSession(middlewares=(KoyebAuthMiddleware(make_auth()),)) as session, \
                    session.get(other.url + "/v1/apps") as response:
                assert "Authorization" not in response.request_info.headers
                return response.status

    assert asyncio.run(run()) == 401
    assert fake.stats == {}


@pytest.mark.parametrize(("name", "module", "extra"), [
    ("RedisTokenStore", "redis", "redis"),
    ("Httpx2KoyebAuth", "httpx2", "httpx2"),
    ("KoyebAuthMiddleware", "aiohttp", "aiohttp"),
    ("sdk_client", "koyeb", "sdk"),
])
@pytest.mark.slow
def test_a_missing_extra_is_a_clear_error_naming_it(name: str, module: str, extra: str) -> None:
    code = f"import sys; sys.modules[{module!r}] = None\nimport koyeb_auth\nkoyeb_auth.{name}"
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("koyeb_auth.errors.MissingExtraError: ")
    # Not on an index yet: from a checkout.
    assert f"pip install './koyeb-auth[{extra}]'" in last


@pytest.mark.slow
def test_the_core_imports_no_integration() -> None:
    code = ("import sys, koyeb_auth\n"
            "print(sorted({'redis', 'httpx2', 'aiohttp', 'koyeb', 'niquests'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]"


def test_after_httpx2_alias_httpx_a_plain_koyeb_auth_works_with_httpx2(fake: FakeKoyebAPI, cache_path: Path) -> None:
    code = (
        "import httpx2; httpx2.alias_httpx()\n"
        "import sys, httpx; from koyeb_auth import KoyebAuth\n"
        "assert httpx is httpx2\n"
        f"auth = KoyebAuth({fake.EMAIL!r}, {fake.PASSWORD!r}, api_url={fake.url!r}, cache_path={str(cache_path)!r})\n"
        f"with httpx2.Client(auth=auth) as client: print(client.get({fake.url + '/v1/apps'!r}).status_code)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200"
    assert fake.stats == {"login": 1, "api": 1}
