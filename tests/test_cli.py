"""The koyeb-auth command, run as a real subprocess against the fake API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from koyeb_auth.cli import EXAMPLES
from koyeb_auth.testing import FakeKoyebAPI


def cli(*args: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "koyeb_auth", *args], input=stdin, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=60, check=False)


@pytest.fixture
def env(fake: FakeKoyebAPI, cache_path: Path) -> dict[str, str]:
    return {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD}


def test_token_prints_a_live_token_and_reuses_it(fake: FakeKoyebAPI, env: dict[str, str], cache_path: Path) -> None:
    first = cli("token", "--cache-path", str(cache_path), env=env)
    second = cli("token", "--cache-path", str(cache_path), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() in fake.live_tokens()
    assert second.stdout == first.stdout
    assert fake.stats == {"login": 1}


def test_exec_passes_a_valid_token_to_the_child(fake: FakeKoyebAPI, env: dict[str, str], cache_path: Path) -> None:
    child = "import os, sys; print(os.environ['KOYEB_TOKEN']); sys.exit(7)"
    result = cli("exec", "--cache-path", str(cache_path), "--", sys.executable, "-c", child, env=env)
    assert result.returncode == 7  # the child's own exit code
    token = result.stdout.strip()
    assert token in fake.live_tokens()
    assert httpx.get(fake.url + "/v1/apps", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_login_status_logout_cycle(fake: FakeKoyebAPI, cache_path: Path) -> None:
    env = {"KOYEB_URL": fake.url}
    cache = ("--cache-path", str(cache_path))
    login = cli("login", *cache, "--email", fake.EMAIL, "--password-stdin", env=env, stdin=fake.PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    assert "Logged in as demo@koyeb.com" in login.stdout
    # status reads the cache only: no network call. (A cached session belongs to its password.)
    status = cli("status", *cache, "--email", fake.EMAIL, "--json", env={**env, "KOYEB_PASSWORD": fake.PASSWORD})
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["logged_in"] is True
    assert report["email"] == fake.EMAIL
    assert 3500 < report["expires_in_seconds"] <= 3600
    assert report["cache"] == f"FileTokenStore({str(cache_path)!r})"
    assert all(token not in status.stdout for token in fake.live_tokens())
    logout = cli("logout", *cache, "--email", fake.EMAIL, env={**env, "KOYEB_PASSWORD": fake.PASSWORD})
    assert logout.returncode == 0, logout.stderr
    after = cli("status", *cache, "--email", fake.EMAIL, env={**env, "KOYEB_PASSWORD": fake.PASSWORD})
    assert after.returncode == 1
    assert "logged in: False" in after.stdout
    assert fake.stats == {"login": 1, "logout": 1}


def test_a_wrong_password_is_one_clear_line_with_its_own_exit_code(fake: FakeKoyebAPI, cache_path: Path) -> None:
    env = {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": "wrong-secret-123"}
    result = cli("token", "--cache-path", str(cache_path), env=env)
    assert result.returncode == 4
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "password is incorrect" in result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong-secret-123" not in result.stderr
    assert fake.stats == {"failed_login": 1}


def test_an_unreachable_api_and_missing_credentials_have_their_own_exit_codes(cache_path: Path) -> None:
    unreachable = cli("token", "--cache-path", str(cache_path),
                      env={"KOYEB_URL": "http://127.0.0.1:9", "KOYEB_TOKEN": "t", "KOYEB_ORGANIZATION": "o"})
    assert unreachable.returncode == 6
    assert "Could not reach the Koyeb API" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    missing = cli("token", "--cache-path", str(cache_path))
    assert missing.returncode == 3
    assert "No Koyeb credentials" in missing.stderr


def test_fake_api_serves_in_the_foreground(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "koyeb_auth", "fake-api", "--ttl", "60"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[4]
        login = httpx.post(url + "/v1/account/login", json={"email": FakeKoyebAPI.EMAIL,
                                                            "password": FakeKoyebAPI.PASSWORD})
        assert login.status_code == 200
        assert httpx.get(url + "/_fake/stats").json() == {"login": 1}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_demo_passes_with_one_login_for_the_fleet() -> None:
    result = cli("demo", "--workers", "3", "--seconds", "3", "--ttl", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: 3 processes" in result.stdout
    assert "saw 1 login(s)" in result.stdout
    assert "0 request(s) with an expired token" in result.stdout


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0
    assert "example:" in result.stdout
    assert EXAMPLES[command] in result.stdout


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("koyeb-auth")
    assert script.exists()
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "demo" in result.stdout
