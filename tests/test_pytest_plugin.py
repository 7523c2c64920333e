"""The pytest plugin (`koyeb_api`, `koyeb_env`), used as a user would: these tests use its fixtures
and nothing of conftest.py. The last ones run pytest in a project of their own, as a user's suite."""

from __future__ import annotations

import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest

from koyeb_auth import KoyebAuth, KoyebAuthError
from koyeb_auth.testing import FakeKoyebAPI

if "koyeb_auth._pytest_plugin" not in {entry.value for entry in entry_points(group="pytest11")}:
    pytest.fail("koyeb-auth's pytest11 entry point is not installed: reinstall, pip install -e '.[test]'",
                pytrace=False)

pytestmark = pytest.mark.slow  # each starts a server (the project's convention, not the plugin's)


def password_auth(api: FakeKoyebAPI, tmp_path: Path) -> KoyebAuth:
    return KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=tmp_path / "tokens.json")


def test_the_personal_token_reaches_the_api(koyeb_api: FakeKoyebAPI, tmp_path: Path) -> None:
    auth = KoyebAuth(token=koyeb_api.PERSONAL_TOKEN, api_url=koyeb_api.url, cache_path=tmp_path / "tokens.json")
    assert httpx.get(koyeb_api.url + "/v1/apps", auth=auth).json()["apps"][0]["name"] == "demo"
    assert koyeb_api.stats == {"api": 1}


def test_a_revoked_session_is_replaced_by_a_new_login(koyeb_api: FakeKoyebAPI, tmp_path: Path) -> None:
    auth = password_auth(koyeb_api, tmp_path)
    assert httpx.get(koyeb_api.url + "/v1/apps", auth=auth).status_code == 200
    koyeb_api.revoke()
    assert httpx.get(koyeb_api.url + "/v1/apps", auth=auth).status_code == 200
    assert (koyeb_api.stats["login"], koyeb_api.stats["unauthorized"]) == (2, 1)


def test_the_next_calls_fail_then_the_api_answers(koyeb_api: FakeKoyebAPI, tmp_path: Path) -> None:
    auth = KoyebAuth(token=koyeb_api.PERSONAL_TOKEN, api_url=koyeb_api.url, cache_path=tmp_path / "tokens.json")
    koyeb_api.fail("api", times=2)
    statuses = [httpx.get(koyeb_api.url + "/v1/apps", auth=auth).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert koyeb_api.stats == {"fault_api": 2, "api": 1}


@pytest.mark.koyeb_api(latency=0.3)
def test_latency_from_the_marker(koyeb_api: FakeKoyebAPI) -> None:
    started = time.monotonic()
    httpx.get(koyeb_api.url + "/v1/account/login_method", params={"email": koyeb_api.EMAIL})
    assert time.monotonic() - started >= 0.3  # a lower bound only: a busy machine is slower, never faster


@pytest.mark.koyeb_api(ttl=3600, clock_offset=-2 * 3600)
def test_an_api_clock_two_hours_behind_does_not_make_tokens_look_expired(
    koyeb_api: FakeKoyebAPI, tmp_path: Path
) -> None:
    auth = password_auth(koyeb_api, tmp_path)
    for _ in range(3):
        assert httpx.get(koyeb_api.url + "/v1/apps", auth=auth).status_code == 200
    assert koyeb_api.stats["login"] == 1


def test_a_withdrawn_login_endpoint_is_an_error_of_ours(koyeb_api: FakeKoyebAPI, tmp_path: Path) -> None:
    koyeb_api.drop("login", status=410)
    with pytest.raises(KoyebAuthError):
        password_auth(koyeb_api, tmp_path).get_token()
    assert koyeb_api.stats == {"dropped_login": 1}


def test_koyeb_env_points_an_argumentless_koyeb_auth_at_the_fake(koyeb_env: FakeKoyebAPI) -> None:
    assert httpx.get(koyeb_env.url + "/v1/account/profile", auth=KoyebAuth()).status_code == 200
    assert koyeb_env.stats == {"api": 1}


UNRELATED = '''
import sys

def test_the_plugin_is_loaded_and_loaded_nothing(request):
    assert request.config.pluginmanager.has_plugin("koyeb_auth")
    assert not {"koyeb_auth.testing", "http.server", "httpx"} & set(sys.modules)
'''

USER = '''
import httpx, pytest

@pytest.mark.koyeb_api(ttl=60)
def test_a_user_asks_for_the_fixture(koyeb_api):
    headers = {"Authorization": "Bearer " + koyeb_api.PERSONAL_TOKEN}
    assert httpx.get(koyeb_api.url + "/v1/apps", headers=headers).status_code == 200
'''


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-markers",
                           *args, str(project)], capture_output=True, text=True, cwd=project, timeout=120,
                          check=False)


def test_a_suite_that_does_not_use_the_plugin_does_not_load_the_fake(tmp_path: Path) -> None:
    (tmp_path / "test_unrelated.py").write_text(UNRELATED)
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_users_suite_gets_the_fixture_and_its_marker_from_the_entry_point(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER)
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    disabled = run_pytest(tmp_path, "-p", "no:koyeb_auth")
    assert disabled.returncode != 0 and "koyeb_api" in disabled.stdout
