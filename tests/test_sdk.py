"""Koyeb's own SDK (koyeb-sdk), sync and async, calling real SDK operations against the fake API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import koyeb.api
import koyeb.api_async
import pytest
from freezegun import freeze_time

from koyeb_auth import KoyebAuth, async_sdk_client, sdk_client, sdk_configuration
from koyeb_auth.testing import FakeKoyebAPI, Fault

USER_ID = f"user-{FakeKoyebAPI.EMAIL}"


def profile_and_apps(client: koyeb.api.ApiClient) -> tuple[str, str]:
    user = koyeb.api.ProfileApi(client).get_current_user().user
    apps = koyeb.api.AppsApi(client).list_apps().apps
    return user.id, apps[0].name


async def aprofile_and_apps(client: koyeb.api_async.ApiClient) -> tuple[str, str]:
    user = (await koyeb.api_async.ProfileApi(client).get_current_user()).user
    apps = (await koyeb.api_async.AppsApi(client).list_apps()).apps
    return user.id, apps[0].name


# --- sync: urllib3 ---------------------------------------------------------------------------------


def test_sync_sdk_operations_carry_a_managed_token_with_one_login(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    with sdk_client(make_auth()) as client:
        assert fake.stats == {}  # building the client does no I/O
        assert [profile_and_apps(client) for _ in range(5)] == [(USER_ID, "demo")] * 5
    assert fake.stats == {"login": 1, "api": 10}


def test_sync_sdk_threads_at_cold_start_cause_one_login(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.login_delay = 0.2
    with sdk_client(make_auth()) as client, ThreadPoolExecutor(8) as pool:
        assert list(pool.map(lambda _: profile_and_apps(client), range(8))) == [(USER_ID, "demo")] * 8
    assert fake.stats == {"login": 1, "api": 16}


def test_sync_sdk_refreshes_before_expiry_and_never_sends_an_expired_token(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.ttl = 600
    with sdk_client(make_auth()) as client, freeze_time(tick=True) as clock:
        assert profile_and_apps(client) == (USER_ID, "demo")
        clock.tick(400)  # inside the refresh window: one refresh, no 401
        assert profile_and_apps(client) == (USER_ID, "demo")
        assert fake.stats == {"login": 1, "refresh": 1, "api": 4}
        clock.tick(700)  # expired: a new login, the old token never sent
        assert profile_and_apps(client) == (USER_ID, "demo")
    assert fake.stats == {"login": 2, "refresh": 1, "api": 6}


def test_sync_sdk_renews_a_revoked_token_and_retries_the_operation_once(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    with sdk_client(make_auth()) as client:
        assert profile_and_apps(client) == (USER_ID, "demo")
        fake.revoke()
        assert profile_and_apps(client) == (USER_ID, "demo")
    # One 401, a refused refresh of the revoked token, a new login, then the retry.
    assert fake.stats == {"login": 2, "api": 4, "unauthorized": 1, "refresh_refused": 1}


def test_sync_sdk_raises_the_sdk_error_when_the_retry_gets_a_401_too(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    with sdk_client(make_auth()) as client:
        assert profile_and_apps(client) == (USER_ID, "demo")
        fake.fail("api", Fault(401, {"status": 401, "code": "authentication_error", "message": "nope"}), times=2)
        with pytest.raises(koyeb.api.exceptions.UnauthorizedException):
            koyeb.api.AppsApi(client).list_apps()
    assert fake.stats == {"login": 1, "refresh": 1, "api": 2, "fault_api": 2}  # the call and its one retry


def test_sync_sdk_does_not_retry_for_a_deactivated_organization(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    with sdk_client(make_auth()) as client:
        assert profile_and_apps(client) == (USER_ID, "demo")
        fake.deactivated_organizations.add(fake.ORGANIZATION_ID)
        with pytest.raises(koyeb.api.exceptions.UnauthorizedException, match="Token rejected"):
            koyeb.api.AppsApi(client).list_apps()
    assert fake.stats == {"login": 1, "api": 2, "unauthorized": 1}


def test_the_sdk_configuration_alone_keeps_the_token_fresh_in_any_api_client(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.ttl = 600
    configuration = sdk_configuration(make_auth())
    with koyeb.api.ApiClient(configuration) as client, freeze_time(tick=True) as clock:
        assert profile_and_apps(client) == (USER_ID, "demo")
        clock.tick(400)
        assert profile_and_apps(client) == (USER_ID, "demo")
    assert fake.stats == {"login": 1, "refresh": 1, "api": 4}


# --- async: httpx ----------------------------------------------------------------------------------


def test_async_sdk_tasks_share_one_login(fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]) -> None:
    fake.login_delay = 0.2

    async def run() -> list[tuple[str, str]]:
        async with async_sdk_client(make_auth()) as client:
            return list(await asyncio.gather(*(aprofile_and_apps(client) for _ in range(20))))

    assert asyncio.run(run()) == [(USER_ID, "demo")] * 20
    assert fake.stats == {"login": 1, "api": 40}


def test_async_sdk_refreshes_before_expiry_and_renews_a_revoked_token(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    fake.ttl = 600

    async def run() -> None:
        async with async_sdk_client(make_auth()) as client:
            with freeze_time(tick=True) as clock:
                assert await aprofile_and_apps(client) == (USER_ID, "demo")
                clock.tick(400)
                assert await aprofile_and_apps(client) == (USER_ID, "demo")
                assert fake.stats == {"login": 1, "refresh": 1, "api": 4}
            fake.revoke()
            assert await aprofile_and_apps(client) == (USER_ID, "demo")

    asyncio.run(run())
    assert fake.stats == {"login": 2, "refresh": 1, "api": 6, "unauthorized": 1, "refresh_refused": 1}


def test_the_async_sdk_client_keeps_the_sdk_settings_and_sends_no_header_of_its_own(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth()

    async def run() -> None:
        async with async_sdk_client(auth) as client:
            assert client.configuration.host == fake.url
            assert client.configuration.auth_settings() == {}  # the Authorization header is KoyebAuth's
            assert client.rest_client.pool_manager.auth is auth

    asyncio.run(run())
    assert fake.stats == {}
