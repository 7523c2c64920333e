"""The koyeb-auth command as people use it in a shell: pipes, retries after a 401, logout with the
API down, JSON for scripts, and exit codes a shell knows. Real subprocesses against the fake API."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

pytestmark = pytest.mark.slow  # every test here starts a process or a server

EXIT_STDOUT_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader quit


def cli(*args: str, env: dict[str, str] | None = None, stdin: str = "",
        stdout: int | None = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "koyeb_auth", *args], input=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, timeout=60,
                          check=False)


def secrets_of(fake: FakeKoyebAPI) -> set[str]:
    return {*fake.issued, *fake.users.values(), fake.PERSONAL_TOKEN}


def assert_no_secret(fake: FakeKoyebAPI, *results: subprocess.CompletedProcess[str],
                     allowed: frozenset[str] = frozenset()) -> None:
    """No token or password in what the command printed, but those it was asked to print."""
    shown = "\n".join((result.stdout or "") + result.stderr for result in results)
    assert [secret for secret in secrets_of(fake) - allowed if secret in shown] == []


@pytest.fixture
def cache(cache_path: Path) -> tuple[str, str]:
    return ("--cache-path", str(cache_path))


@pytest.fixture
def env(fake: FakeKoyebAPI) -> dict[str, str]:
    return {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD}


def log_in(fake: FakeKoyebAPI, cache: tuple[str, str]) -> subprocess.CompletedProcess[str]:
    result = cli("login", *cache, "--email", fake.EMAIL, "--password-stdin", env={"KOYEB_URL": fake.url},
                 stdin=fake.PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    return result


# --- token --refresh: renew now, for the request that just got a 401 ------------------------------


def test_token_refresh_renews_a_fresh_token_now_and_shares_it(fake: FakeKoyebAPI, cache: tuple[str, str]) -> None:
    log_in(fake, cache)
    first = cli("token", *cache)
    renewed = cli("token", *cache, "--refresh")
    assert renewed.returncode == 0, renewed.stderr
    assert renewed.stdout.strip() != first.stdout.strip()
    assert renewed.stdout.strip() in fake.live_tokens()
    assert fake.stats == {"login": 1, "refresh": 1}  # renewed through the remembered session, no password
    again = cli("token", *cache)  # every later command gets the renewed token from the cache
    assert again.stdout == renewed.stdout
    assert fake.stats == {"login": 1, "refresh": 1}
    assert_no_secret(fake, renewed, allowed=frozenset({renewed.stdout.strip()}))


def test_token_refresh_after_a_revocation_logs_in_again(fake: FakeKoyebAPI, env: dict[str, str],
                                                        cache: tuple[str, str]) -> None:
    revoked = cli("token", *cache, env=env).stdout.strip()
    fake.revoke(revoked)  # what makes a curl get a 401 while the cache still says the token is good
    assert cli("token", *cache, env=env).stdout.strip() == revoked
    renewed = cli("token", *cache, "--refresh", "--json", env=env)
    assert renewed.returncode == 0, renewed.stderr
    token = json.loads(renewed.stdout)["token"]
    assert token != revoked
    assert token in fake.live_tokens()
    assert fake.stats == {"login": 2, "refresh_refused": 1}
    assert_no_secret(fake, renewed, allowed=frozenset({token}))


def test_token_refresh_with_nothing_cached_gets_a_token(fake: FakeKoyebAPI, env: dict[str, str],
                                                       cache: tuple[str, str]) -> None:
    result = cli("token", *cache, "--refresh", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in fake.live_tokens()
    assert fake.stats == {"login": 1}


def test_token_refresh_of_a_personal_token_prints_it_and_says_why(fake: FakeKoyebAPI, cache: tuple[str, str]) -> None:
    result = cli("token", *cache, "--refresh", env={"KOYEB_URL": fake.url, "KOYEB_TOKEN": fake.PERSONAL_TOKEN})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == fake.PERSONAL_TOKEN
    assert "personal access token" in result.stderr
    assert fake.PERSONAL_TOKEN not in result.stderr


def test_koyeb_auth_refresh_renews_a_fresh_token_single_flight(fake: FakeKoyebAPI,
                                                               make_auth: Callable[..., KoyebAuth]) -> None:
    auth, peer = make_auth(), make_auth()
    first = auth.get_token()
    renewed = auth.refresh()
    assert renewed != first
    assert auth.get_token() == renewed
    assert peer.get_token() == renewed  # shared through the store
    assert fake.stats == {"login": 1, "refresh": 1}
    assert asyncio.run(peer.arefresh()) not in (first, renewed)
    assert fake.stats == {"login": 1, "refresh": 2}


def test_koyeb_auth_refresh_of_a_personal_token_returns_it(fake: FakeKoyebAPI) -> None:
    auth = KoyebAuth(token=fake.PERSONAL_TOKEN, api_url=fake.url)
    assert auth.refresh() == fake.PERSONAL_TOKEN
    assert fake.stats == {}


# --- a reader that closes early (`koyeb-auth token | head -c0`) ------------------------------------


@pytest.fixture
def closed_pipe() -> Iterator[int]:
    """The write end of a pipe whose reader is already gone: every write to it fails (EPIPE)."""
    read, write = os.pipe()
    os.close(read)
    yield write
    os.close(write)


@pytest.mark.parametrize("args", [("token",), ("token", "--json"), ("status",), ("status", "--json")])
def test_a_reader_that_closes_early_ends_the_command_quietly(args: tuple[str, ...], fake: FakeKoyebAPI,
                                                            env: dict[str, str], cache: tuple[str, str],
                                                            closed_pipe: int) -> None:
    assert cli("token", *cache, env=env).returncode == 0
    result = cli(*args, *cache, env=env, stdout=closed_pipe)
    assert result.stderr == ""  # no BrokenPipeError traceback, no "Exception ignored" line
    assert result.returncode == EXIT_STDOUT_CLOSED


def test_login_and_the_fake_api_end_quietly_when_their_reader_is_gone(fake: FakeKoyebAPI, cache: tuple[str, str],
                                                                      closed_pipe: int) -> None:
    login = cli("login", *cache, "--email", fake.EMAIL, "--password-stdin", env={"KOYEB_URL": fake.url},
                stdin=fake.PASSWORD + "\n", stdout=closed_pipe)
    assert (login.returncode, login.stderr) == (EXIT_STDOUT_CLOSED, "")
    served = cli("fake-api", stdout=closed_pipe)  # it would serve forever if it missed the closed pipe
    assert (served.returncode, served.stderr) == (EXIT_STDOUT_CLOSED, "")


# --- logout: always forgets locally; twice is fine -------------------------------------------------


def test_logout_with_the_api_down_forgets_the_session_locally(fake: FakeKoyebAPI, cache: tuple[str, str],
                                                             cache_path: Path) -> None:
    log_in(fake, cache)
    token = cli("token", *cache).stdout.strip()
    fake.stop()
    logout = cli("logout", *cache, "--timeout", "5")
    assert logout.returncode == 6, logout.stderr
    assert "could not revoke" in logout.stderr
    assert "forgotten" in logout.stderr
    assert "Traceback" not in logout.stderr
    assert not cache_path.with_name(cache_path.name + ".login").exists()
    assert not cache_path.exists() or token not in cache_path.read_text()  # the session is gone from the cache
    after = cli("token", *cache)
    assert after.returncode == 3  # nothing remembered: no credentials
    twice = cli("logout", *cache)
    assert twice.returncode == 0, twice.stderr
    assert_no_secret(fake, logout, after, twice)


def test_logout_when_the_api_fails_forgets_the_session_and_says_so(fake: FakeKoyebAPI, cache: tuple[str, str],
                                                                  cache_path: Path) -> None:
    log_in(fake, cache)
    fake.fail("logout", times=10)
    logout = cli("logout", *cache)
    assert logout.returncode == 6, logout.stderr
    assert "could not revoke" in logout.stderr
    assert not cache_path.with_name(cache_path.name + ".login").exists()
    assert fake.live_tokens() != []  # still valid at the API: the message says so
    assert cli("status", *cache, "--offline").returncode == 3
    assert_no_secret(fake, logout)


def test_logout_twice_is_not_an_error(fake: FakeKoyebAPI, env: dict[str, str], cache: tuple[str, str]) -> None:
    log_in(fake, cache)
    first = cli("logout", *cache)
    assert first.returncode == 0, first.stderr
    second = cli("logout", *cache)  # nothing remembered any more
    assert second.returncode == 0, second.stderr
    assert "Already logged out" in second.stdout
    # Credentials in the environment, with no session cached for them: nothing to end, not an error.
    third = cli("logout", *cache, env=env)
    assert third.returncode == 0, third.stderr
    assert fake.stats == {"login": 1, "logout": 1}
    assert_no_secret(fake, first, second, third)



@pytest.mark.parametrize("named_by", ["--profile", "KOYEB_AUTH_PROFILE"])
def test_logout_of_a_profile_with_the_api_down_twice_is_not_an_error(fake: FakeKoyebAPI, cache: tuple[str, str],
                                                                      named_by: str) -> None:
    flags, env = (("--profile", "work"), {}) if named_by == "--profile" else ((), {"KOYEB_AUTH_PROFILE": "work"})
    login = cli("login", *cache, *flags, "--email", fake.EMAIL, "--password-stdin", "--api-url", fake.url,
                env=env, stdin=fake.PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    fake.stop()
    first = cli("logout", *cache, *flags, "--timeout", "5", env=env)
    assert first.returncode == 6, first.stderr  # forgotten here; the API could not revoke it
    second = cli("logout", *cache, *flags, env=env)
    assert second.returncode == 0, second.stderr
    assert "Already logged out" in second.stdout
    assert cli("token", *cache, *flags, env=env).returncode == 3  # a profile named and not logged in: an error
    assert_no_secret(fake, login, first, second)

# --- status without credentials, and with the API down --------------------------------------------


def test_status_without_credentials_prints_its_json_and_exit_3(cache: tuple[str, str]) -> None:
    result = cli("status", *cache, "--json")
    assert result.returncode == 3
    report = json.loads(result.stdout)
    assert (report["logged_in"], report["checked_with_api"]) == (False, False)
    assert report["problem"].startswith("No Koyeb credentials found")
    assert "Traceback" not in result.stderr
    text = cli("status", *cache)
    assert text.returncode == 3
    assert "logged in: False" in text.stdout
    # The same fields as a status with credentials, so that scripts read one shape.
    offline = cli("status", *cache, "--json", "--offline", env={"KOYEB_URL": "http://127.0.0.1:9", "KOYEB_TOKEN": "t"})
    assert list(report) == list(json.loads(offline.stdout))


def test_status_with_the_api_down_does_not_claim_to_have_checked(fake: FakeKoyebAPI, cache: tuple[str, str]) -> None:
    log_in(fake, cache)
    fake.stop()
    result = cli("status", *cache, "--timeout", "5")
    assert result.returncode == 6
    assert "checked with api: False" in result.stdout
    assert "logged in: False" not in result.stdout
    report = json.loads(cli("status", *cache, "--json", "--timeout", "5").stdout)
    assert (report["logged_in"], report["checked_with_api"]) == (True, False)
    assert report["problem"].startswith("the API could not be asked")
    assert_no_secret(fake, result)


# --- one spelling for JSON -------------------------------------------------------------------------


def test_json_is_spelled_the_same_on_every_command(fake: FakeKoyebAPI, env: dict[str, str],
                                                   cache: tuple[str, str]) -> None:
    token = cli("token", *cache, "--json", env=env)
    assert token.returncode == 0, token.stderr
    value = json.loads(token.stdout)["token"]
    assert json.loads(cli("status", *cache, "--json", env=env).stdout)["logged_in"] is True
    # The old spelling still works, for the scripts that use it; the help shows only --json.
    assert json.loads(cli("token", *cache, "--format", "json", env=env).stdout)["token"] == value
    assert cli("token", *cache, "--format", "text", env=env).stdout.strip() == value
    for command in ("token", "status"):
        shown = cli(command, "--help").stdout
        assert "--json" in shown
        assert "--format" not in shown


# --- exec: the exit codes a shell gives -----------------------------------------------------------


def test_exec_of_a_missing_command_exits_127(fake: FakeKoyebAPI, env: dict[str, str], cache: tuple[str, str]) -> None:
    result = cli("exec", *cache, "--", "no-such-command-koyeb", "apps", env=env)
    assert result.returncode == 127
    assert "no-such-command-koyeb: command not found" in result.stderr
    assert "Traceback" not in result.stderr
    path = cli("exec", *cache, "--", "./no-such-dir/no-such-script", env=env)
    assert path.returncode == 127
    assert "./no-such-dir/no-such-script: no such file" in path.stderr
    assert_no_secret(fake, result, path)


def test_exec_of_a_file_that_cannot_run_exits_126(fake: FakeKoyebAPI, env: dict[str, str], cache: tuple[str, str],
                                                  tmp_path: Path) -> None:
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = cli("exec", *cache, "--", str(script), env=env)
    assert result.returncode == 126
    assert f"{script}: cannot run" in result.stderr
    assert "Traceback" not in result.stderr
    assert_no_secret(fake, result)
