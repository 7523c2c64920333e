"""The koyeb-auth command, run as a real subprocess against the fake API."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import pty
import re
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import koyeb_auth
from koyeb_auth import FileTokenStore
from koyeb_auth.cli import main as cli_main
from koyeb_auth.cli._command import (
    CLI_HINTS,
    EXIT_CANNOT_RUN,
    EXIT_CODES,
    EXIT_NOT_FOUND,
    EXIT_STDOUT_CLOSED,
)
from koyeb_auth.cli._grammar import EXAMPLES, _columns
from koyeb_auth.errors import Hint, TokenStoreError
from koyeb_auth.testing import FakeKoyebAPI

pytestmark = pytest.mark.slow  # every test here starts a process or a server


def cli(*args: str, env: dict[str, str] | None = None, stdin: str = "",
        new_session: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the command. `new_session`: without a controlling terminal, as under CI or cron."""
    return subprocess.run([sys.executable, "-m", "koyeb_auth", *args], input=stdin, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=60, check=False,
                          start_new_session=new_session)


@pytest.fixture
def env(fake: FakeKoyebAPI, cache_path: Path) -> dict[str, str]:
    return {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD}


def log_in(fake: FakeKoyebAPI, cache_path: Path, password: str = FakeKoyebAPI.PASSWORD,
           *extra: str) -> subprocess.CompletedProcess[str]:
    """`koyeb-auth login` as a script does it: the email as a flag, the password on stdin."""
    return cli("login", "--cache-path", str(cache_path), "--email", fake.EMAIL, "--password-stdin", *extra,
               env={"KOYEB_URL": fake.url}, stdin=password + "\n")


def state_file(cache_path: Path) -> Path:
    return cache_path.with_name(cache_path.name + ".login")


def test_token_prints_a_live_token_and_reuses_it(fake: FakeKoyebAPI, env: dict[str, str], cache_path: Path) -> None:
    first = cli("token", "--cache-path", str(cache_path), env=env)
    second = cli("token", "--cache-path", str(cache_path), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() in fake.live_tokens()
    assert second.stdout == first.stdout
    assert fake.stats == {"login": 1}


def test_token_json_gives_the_token_and_its_expiry(fake: FakeKoyebAPI, env: dict[str, str], cache_path: Path) -> None:
    result = cli("token", "--cache-path", str(cache_path), "--json", env=env)
    assert result.returncode == 0, result.stderr
    reply = json.loads(result.stdout)
    assert sorted(reply) == ["expires_at", "expires_in_seconds", "token"]
    assert reply["token"] in fake.live_tokens()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", reply["expires_at"])
    assert 3500 < reply["expires_in_seconds"] <= 3600


def test_exec_passes_a_valid_token_to_the_child(fake: FakeKoyebAPI, env: dict[str, str], cache_path: Path) -> None:
    child = "import os, sys; print(os.environ['KOYEB_TOKEN']); sys.exit(7)"
    result = cli("exec", "--cache-path", str(cache_path), "--", sys.executable, "-c", child, env=env)
    assert result.returncode == 7  # the child's own exit code
    token = result.stdout.strip()
    assert token in fake.live_tokens()
    assert httpx.get(fake.url + "/v1/apps", headers={"Authorization": f"Bearer {token}"}).status_code == 200


# --- login, and the account it leaves for the other commands --------------------------------------


def test_login_status_logout_cycle_needs_no_password_after_login(fake: FakeKoyebAPI, cache_path: Path) -> None:
    cache = ("--cache-path", str(cache_path))
    login = log_in(fake, cache_path)
    assert login.returncode == 0, login.stderr
    assert "Logged in as demo@koyeb.com" in login.stdout
    # Nothing else configured: status finds the session through the last login, offline from the cache.
    status = cli("status", *cache, "--json", "--offline")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["logged_in"] is True
    assert report["email"] == fake.EMAIL
    assert report["api_url"] == fake.url
    assert "koyeb-auth login" in report["credentials_from"]
    assert 3500 < report["expires_in_seconds"] <= 3600
    assert report["cache"] == f"FileTokenStore({str(cache_path)!r})"
    assert all(token not in status.stdout for token in fake.live_tokens())
    assert fake.stats == {"login": 1}
    logout = cli("logout", *cache)
    assert logout.returncode == 0, logout.stderr
    assert not state_file(cache_path).exists()  # logout forgets the account
    after = cli("status", *cache)
    assert after.returncode == 3
    assert "No Koyeb credentials found" in after.stdout  # still a report (see test_command_shell.py)
    assert fake.stats == {"login": 1, "logout": 1}
    assert fake.live_tokens() == []


def test_token_and_exec_use_the_last_login(fake: FakeKoyebAPI, cache_path: Path) -> None:
    assert log_in(fake, cache_path).returncode == 0
    token = cli("token", "--cache-path", str(cache_path))
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip() in fake.live_tokens()
    child = "import os; print(os.environ['KOYEB_TOKEN'])"
    executed = cli("exec", "--cache-path", str(cache_path), "--", sys.executable, "-c", child)
    assert executed.returncode == 0, executed.stderr
    assert executed.stdout == token.stdout
    assert fake.stats == {"login": 1}


def test_the_state_file_is_private_and_holds_no_secret(fake: FakeKoyebAPI, cache_path: Path) -> None:
    assert log_in(fake, cache_path).returncode == 0
    path = state_file(cache_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    record = json.loads(text)
    assert {"api_url": fake.url, "email": fake.EMAIL, "organization_id": None}.items() <= record.items()
    assert re.fullmatch(r"[0-9a-f]{32}", record["key"])
    assert fake.PASSWORD not in text
    assert all(token not in text for token in fake.live_tokens())
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_due_remembered_session_is_refreshed_without_the_password(cache_path: Path) -> None:
    # Due after 4 s (half its life): the command then has 4 s to start and refresh it, enough on a
    # busy machine too.
    with FakeKoyebAPI(ttl=8) as fake:
        assert log_in(fake, cache_path).returncode == 0
        time.sleep(4.1)
        result = cli("token", "--cache-path", str(cache_path))
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() in fake.live_tokens()
        assert fake.stats == {"login": 1, "refresh": 1}


def test_login_logs_in_even_with_a_session_cached_and_replaces_it(fake: FakeKoyebAPI, cache_path: Path) -> None:
    cache = ("--cache-path", str(cache_path))
    assert log_in(fake, cache_path).returncode == 0
    first = cli("token", *cache).stdout
    again = log_in(fake, cache_path)
    assert again.returncode == 0, again.stderr
    second = cli("token", *cache).stdout
    assert fake.stats == {"login": 2}
    assert second != first and second.strip() in fake.live_tokens()
    # A wrong password fails, whatever is cached, and leaves the session and the account as they were.
    wrong = cli("login", *cache, env={"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": "wrong"})
    assert wrong.returncode == 4
    assert "password is incorrect" in wrong.stderr
    assert cli("token", *cache).stdout == second
    assert fake.stats == {"login": 2, "failed_login": 1, "login_method": 1}


def test_the_environment_and_flags_win_over_the_last_login(fake: FakeKoyebAPI, cache_path: Path) -> None:
    cache = ("--cache-path", str(cache_path))
    assert log_in(fake, cache_path).returncode == 0
    personal = cli("token", *cache, env={"KOYEB_TOKEN": fake.PERSONAL_TOKEN})
    assert personal.returncode == 0
    assert personal.stdout.strip() == fake.PERSONAL_TOKEN
    elsewhere = cli("token", *cache, "--api-url", "https://api.example.com")
    assert elsewhere.returncode == 3
    assert "No Koyeb credentials found" in elsewhere.stderr
    other_org = cli("token", *cache, env={"KOYEB_ORGANIZATION": "org-other"})
    assert other_org.returncode == 3
    assert fake.stats == {"login": 1}


def test_a_symlinked_state_file_is_refused_with_the_flag_to_use(fake: FakeKoyebAPI, cache_path: Path,
                                                                tmp_path: Path) -> None:
    assert log_in(fake, cache_path).returncode == 0
    path = state_file(cache_path)
    target = tmp_path / "elsewhere.json"
    path.rename(target)
    path.symlink_to(target)
    result = cli("token", "--cache-path", str(cache_path))
    assert result.returncode == 7
    assert "is a symlink" in result.stderr
    assert "Or pass another --cache-path." in result.stderr
    assert "Traceback" not in result.stderr


def test_a_state_file_refused_for_another_reason_is_warned_about_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Once per file and reason: the warning for a file readable by others hid the later one for
    the same file, rewritten in a format no version reads."""
    from koyeb_auth import _logs  # noqa: PLC0415
    from koyeb_auth.cli import _state as state  # noqa: PLC0415

    monkeypatch.setattr(_logs, "_warned", set())
    path = tmp_path / "tokens.json.login"
    path.write_text("{}")
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="koyeb_auth"):
        assert state.load(path) is None
        assert state.load(path) is None
        path.chmod(0o600)
        assert state.load(path) is None
    warned = [record.getMessage() for record in caplog.records]
    assert len(warned) == 2, warned
    assert "readable by other users" in warned[0] and "unknown format" in warned[1]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a file owned by another user")
def test_a_state_file_of_another_user_is_refused(fake: FakeKoyebAPI, cache_path: Path) -> None:
    assert log_in(fake, cache_path).returncode == 0
    os.chown(state_file(cache_path), 12345, 12345)
    result = cli("token", "--cache-path", str(cache_path))
    assert result.returncode == 7
    assert "belongs to another user" in result.stderr


def test_a_state_file_readable_by_others_is_ignored_with_a_warning(fake: FakeKoyebAPI, cache_path: Path) -> None:
    assert log_in(fake, cache_path).returncode == 0
    state_file(cache_path).chmod(0o644)
    result = cli("token", "--cache-path", str(cache_path))
    assert result.returncode == 3
    # Once: the chain reads the file at two steps, and `status` and the error's advice read it again.
    assert result.stderr.count("koyeb-auth: warning: Ignoring the login state file") == 1
    assert "readable by other users" in result.stderr


# --- prompts: a terminal, or a clear error -------------------------------------------------------


def test_login_without_a_terminal_is_one_line_and_exit_3(fake: FakeKoyebAPI, cache_path: Path) -> None:
    # `login </dev/null` in CI: before, an EOFError traceback and exit 1.
    result = subprocess.run([sys.executable, "-m", "koyeb_auth", "login", "--cache-path", str(cache_path)],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, "KOYEB_URL": fake.url}, start_new_session=True)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "no terminal to ask on: pass --email or set KOYEB_EMAIL" in result.stderr
    assert "Traceback" not in result.stderr
    assert fake.stats == {}


def test_password_stdin_without_email_never_reads_the_password_as_the_email(fake: FakeKoyebAPI,
                                                                            cache_path: Path) -> None:
    result = cli("login", "--cache-path", str(cache_path), "--password-stdin", env={"KOYEB_URL": fake.url},
                 stdin=fake.PASSWORD + "\n", new_session=True)
    assert result.returncode == 3
    assert "No email given, and no terminal to ask on" in result.stderr
    assert fake.PASSWORD not in result.stderr
    assert fake.stats == {}


@contextlib.contextmanager
def on_a_terminal(*args: str, env: dict[str, str], stdin: bytes = b"") -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The command with a pseudo-terminal as its controlling terminal and `stdin` piped in; and the
    terminal's master side, to read what the command shows there and type answers."""
    master, slave = pty.openpty()
    # A new session that opens the terminal makes it its controlling terminal (what /dev/tty is).
    take = ("import os, sys; os.setsid(); os.close(os.open(sys.argv[1], os.O_RDWR)); "
            "os.execv(sys.executable, sys.argv[2:])")
    proc = subprocess.Popen([sys.executable, "-c", take, os.ttyname(slave), sys.executable, "-m", "koyeb_auth", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **env})
    assert proc.stdin is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    try:
        yield proc, master
    finally:
        proc.kill()
        proc.wait()
        os.close(slave)  # kept open until now: a master whose slave is closed reads EIO
        os.close(master)


def finish(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    assert proc.stdout is not None and proc.stderr is not None
    proc.wait(timeout=60)
    return proc.stdout.read(), proc.stderr.read()


def _read_until(master: int, text: bytes, timeout: float = 30) -> bytes:
    seen, deadline = b"", time.monotonic() + timeout
    while text not in seen and time.monotonic() < deadline:
        if select.select([master], [], [], 0.1)[0]:
            try:
                seen += os.read(master, 1024)
            except OSError:  # the terminal's last user is gone
                break
    return seen


def test_password_stdin_asks_for_the_email_on_the_terminal(fake: FakeKoyebAPI, cache_path: Path) -> None:
    with on_a_terminal("login", "--cache-path", str(cache_path), "--password-stdin", env={"KOYEB_URL": fake.url},
                       stdin=fake.PASSWORD.encode() + b"\n") as (proc, master):
        assert b"Email: " in _read_until(master, b"Email: ")
        os.write(master, fake.EMAIL.encode() + b"\n")
        out, err = finish(proc)
    assert proc.returncode == 0, err
    assert b"Logged in as demo@koyeb.com" in out
    assert fake.stats == {"login": 1}


def test_ctrl_d_at_the_prompt_is_one_line_and_exit_3(fake: FakeKoyebAPI, cache_path: Path) -> None:
    with on_a_terminal("login", "--cache-path", str(cache_path), env={"KOYEB_URL": fake.url}) as (proc, master):
        assert b"Email: " in _read_until(master, b"Email: ")
        os.write(master, b"\x04")  # Ctrl-D: end of input
        _, err = finish(proc)
    assert proc.returncode == 3
    assert err.strip().count(b"\n") == 0
    assert b"Login cancelled: no email entered" in err
    assert b"Traceback" not in err
    assert fake.stats == {}


# --- status: checked with the API, and why not ----------------------------------------------------


def test_status_checks_the_token_with_one_api_call(fake: FakeKoyebAPI, cache_path: Path) -> None:
    assert log_in(fake, cache_path).returncode == 0
    status = cli("status", "--cache-path", str(cache_path), "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert (report["logged_in"], report["checked_with_api"], report["problem"]) == (True, True, None)
    assert fake.stats == {"login": 1, "api": 1}
    fake.revoke()
    refused = json.loads(cli("status", "--cache-path", str(cache_path), "--json").stdout)
    assert refused["logged_in"] is False
    assert "refused the cached token (HTTP 401)" in refused["problem"]
    offline = cli("status", "--cache-path", str(cache_path), "--json", "--offline")
    assert json.loads(offline.stdout)["checked_with_api"] is False
    assert fake.stats == {"login": 1, "api": 1, "unauthorized": 1}


def test_status_refuses_a_garbage_personal_token(fake: FakeKoyebAPI, cache_path: Path) -> None:
    result = cli("status", "--cache-path", str(cache_path), env={"KOYEB_URL": fake.url, "KOYEB_TOKEN": "garbage"})
    assert result.returncode == 1
    assert "logged in: False" in result.stdout
    assert "the API refused the personal access token (HTTP 401)" in result.stdout
    assert fake.stats == {"unauthorized": 1}


def test_status_says_the_password_is_wrong(fake: FakeKoyebAPI, cache_path: Path) -> None:
    assert log_in(fake, cache_path).returncode == 0
    env = {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": "wrong"}
    result = cli("status", "--cache-path", str(cache_path), "--json", env=env)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["logged_in"] is False
    assert report["problem"].startswith("wrong password")
    assert fake.stats == {"login": 1}  # no login attempt, no session opened by status


def test_status_with_an_email_and_no_password_says_the_password_is_missing(fake: FakeKoyebAPI,
                                                                           cache_path: Path) -> None:
    assert log_in(fake, cache_path).returncode == 0
    result = cli("status", "--cache-path", str(cache_path), "--json",
                 env={"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL})
    assert result.returncode == 1
    problem = json.loads(result.stdout)["problem"]
    assert problem.startswith(f"no password for {fake.EMAIL}") and "KOYEB_PASSWORD" in problem
    assert fake.stats == {"login": 1}


def test_status_says_when_the_api_cannot_be_reached(cache_path: Path) -> None:
    env = {"KOYEB_URL": "http://127.0.0.1:9", "KOYEB_TOKEN": "t" * 64}
    result = cli("status", "--cache-path", str(cache_path), "--json", "--timeout", "5", env=env)
    assert result.returncode == 6
    report = json.loads(result.stdout)
    assert (report["logged_in"], report["checked_with_api"]) == (True, False)  # not refused, not checked
    assert report["problem"].startswith("the API could not be asked: Could not reach the Koyeb API")


# --- errors speak the command's language ----------------------------------------------------------


def test_every_hint_has_a_command_line_wording() -> None:
    assert set(CLI_HINTS) == set(Hint)
    for sentence in CLI_HINTS.values():
        assert not re.search(r"\w=", sentence), sentence  # keyword arguments are Python's, not the shell's


def test_a_lock_timeout_names_the_flag(fake: FakeKoyebAPI, env: dict[str, str], cache_path: Path) -> None:
    holder = FileTokenStore(cache_path)
    assert holder.try_lock()
    try:
        result = cli("token", "--cache-path", str(cache_path), "--lock-timeout", "1", env=env)
    finally:
        holder.unlock()
    assert result.returncode == 7
    assert "To wait longer, pass --lock-timeout SECONDS." in result.stderr
    assert "raise lock_timeout" not in result.stderr
    assert fake.stats == {}


def test_a_missing_password_and_missing_credentials_name_what_to_set(fake: FakeKoyebAPI, cache_path: Path) -> None:
    no_password = cli("token", "--cache-path", str(cache_path), "--email", fake.EMAIL, env={"KOYEB_URL": fake.url})
    assert no_password.returncode == 3
    assert "No password for demo@koyeb.com. Set KOYEB_PASSWORD, or run `koyeb-auth login`." in no_password.stderr
    nothing = cli("token", "--cache-path", str(cache_path))
    assert nothing.returncode == 3
    assert "Run `koyeb-auth login --token`" in nothing.stderr
    for result in (no_password, nothing):
        assert "=" not in result.stderr


def test_a_symlinked_cache_names_the_flag(fake: FakeKoyebAPI, env: dict[str, str], cache_path: Path,
                                          tmp_path: Path) -> None:
    cache_path.parent.mkdir(parents=True)
    cache_path.symlink_to(tmp_path / "elsewhere.json")
    (tmp_path / "elsewhere.json").write_text("{}")
    result = cli("token", "--cache-path", str(cache_path), env=env)
    assert result.returncode == 7
    assert "Or pass another --cache-path." in result.stderr


def test_the_library_warnings_reach_the_terminal(fake: FakeKoyebAPI, env: dict[str, str], cache_path: Path) -> None:
    cache_path.parent.mkdir(parents=True)
    cache_path.write_text("not json")
    cache_path.chmod(0o600)
    result = cli("token", "--cache-path", str(cache_path), env=env)
    assert result.returncode == 0, result.stderr
    assert "koyeb-auth: warning: Ignoring the token cache" in result.stderr


def test_a_lock_wait_is_announced_once_on_a_terminal(fake: FakeKoyebAPI, env: dict[str, str],
                                                     cache_path: Path) -> None:
    holder = FileTokenStore(cache_path)
    assert holder.try_lock()
    master, slave = pty.openpty()
    try:
        on_tty = subprocess.Popen([sys.executable, "-m", "koyeb_auth", "token", "--cache-path", str(cache_path)],
                                  stdout=subprocess.PIPE, stderr=slave, env={**os.environ, **env})
        piped = subprocess.Popen([sys.executable, "-m", "koyeb_auth", "token", "--cache-path", str(cache_path)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
        said = _read_until(master, b"refreshing")
        time.sleep(0.5)
    finally:
        holder.unlock()
    out, _ = on_tty.communicate(timeout=60)
    _, piped_err = piped.communicate(timeout=60)
    os.close(slave)
    said += _read_until(master, b"never said", timeout=0.5)
    os.close(master)
    assert on_tty.returncode == 0 and out.strip().decode() in fake.live_tokens()
    message = f"koyeb-auth: Waiting for the token lock of FileTokenStore({str(cache_path)!r})".encode()
    assert said.count(message) == 1, said
    assert piped_err == b""  # not on a terminal: nothing
    assert fake.stats == {"login": 1}


# --- the rest of the command line ----------------------------------------------------------------


def test_an_unreachable_api_and_missing_credentials_have_their_own_exit_codes(cache_path: Path) -> None:
    unreachable = cli("token", "--cache-path", str(cache_path),
                      env={"KOYEB_URL": "http://127.0.0.1:9", "KOYEB_TOKEN": "t", "KOYEB_ORGANIZATION": "o"})
    assert unreachable.returncode == 6
    assert "Could not reach the Koyeb API" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
    missing = cli("token", "--cache-path", str(cache_path))
    assert missing.returncode == 3
    assert "No Koyeb credentials" in missing.stderr


def test_a_wrong_password_is_one_clear_line_with_its_own_exit_code(fake: FakeKoyebAPI, cache_path: Path) -> None:
    env = {"KOYEB_URL": fake.url, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": "wrong-secret-123"}
    result = cli("token", "--cache-path", str(cache_path), env=env)
    assert result.returncode == 4
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "password is incorrect" in result.stderr
    assert "Traceback" not in result.stderr
    assert "wrong-secret-123" not in result.stderr
    assert fake.stats == {"failed_login": 1, "login_method": 1}


def test_version_and_the_exit_codes_in_help() -> None:
    version = cli("--version")
    assert version.returncode == 0
    assert version.stdout.strip() == f"koyeb-auth {koyeb_auth.__version__}"
    listed = cli("--help").stdout.split("exit codes:", 1)[1]
    codes = {int(code) for code in re.findall(r"^\s+(\d+)\s", listed, re.MULTILINE)}
    shell = {EXIT_CANNOT_RUN, EXIT_NOT_FOUND, EXIT_STDOUT_CLOSED}
    assert codes == {0, 1, 2, 130} | shell | {code for _, code in EXIT_CODES}


def test_fake_api_help_lists_its_own_options_and_the_demo_account() -> None:
    result = cli("fake-api", "--help")
    assert result.returncode == 0
    for unrelated in ("--email", "--api-url", "--cache-path", "--organization"):
        assert unrelated not in result.stdout
    assert f"email {FakeKoyebAPI.EMAIL} and password {FakeKoyebAPI.PASSWORD}" in result.stdout.replace("\n", " ")


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


def test_the_demo_shares_organization_tokens_from_a_personal_access_token() -> None:
    result = cli("demo", "--workers", "3", "--seconds", "3", "--ttl", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: 3 processes" in result.stdout
    # No deprecated endpoint, and one exchange per renewal for the fleet: 1 + 3 s / (2 s / 2) at most.
    new_tokens = re.search(r"New tokens: 0 login\(s\), 0 switch\(es\), (\d+) access token\(s\)", result.stdout)
    assert new_tokens is not None and 1 <= int(new_tokens.group(1)) <= 4, result.stdout
    assert "0 request(s) with an expired token" in result.stdout


def test_the_demo_with_a_password_logs_the_fleet_in_once() -> None:
    result = cli("demo", "--password", "--workers", "3", "--seconds", "3", "--ttl", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS: 3 processes" in result.stdout
    assert "saw 1 login(s)" in result.stdout
    assert "0 request(s) with an expired token" in result.stdout


def test_ctrl_c_stops_the_demo_and_its_workers_quietly() -> None:
    # A shell that starts the suite in the background (`&`) makes it ignore SIGINT, and a child
    # inherits that: the demo under a terminal would not, so it starts with SIGINT's default action.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        demo = subprocess.Popen([sys.executable, "-m", "koyeb_auth", "demo", "--workers", "3", "--seconds", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert demo.stdout is not None
    while "requests" not in demo.stdout.readline():  # the workers are running
        pass
    workers = Path(f"/proc/{demo.pid}/task/{demo.pid}/children").read_text().split()
    os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C on a terminal does: the whole process group
    out, err = demo.communicate(timeout=60)
    assert demo.returncode == 130
    assert "Traceback" not in err
    assert err.strip() == ""
    assert "Interrupted: stopped 3 worker process(es)." in out
    assert len(workers) == 3
    assert [pid for pid in workers if Path(f"/proc/{pid}").exists()] == []


@pytest.mark.parametrize("found", ["after login", "in the environment"])
def test_a_warm_token_loads_no_http_client(found: str, fake: FakeKoyebAPI, env: dict[str, str],
                                           cache_path: Path) -> None:
    assert log_in(fake, cache_path).returncode == 0
    if found == "after login":
        env = {}
    code = ("import sys\nfrom koyeb_auth.cli import main\n"
            f"assert main(['token', '--cache-path', {str(cache_path)!r}]) == 0\n"
            "print(sorted({'httpx', 'httpcore', 'requests', 'urllib3', 'filelock', 'yaml'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    token, loaded = result.stdout.splitlines()
    assert token in fake.live_tokens()
    assert loaded == "[]"
    assert fake.stats == {"login": 1}


def _warm_token_loading(env: dict[str, str], avoidable: set[str]) -> tuple[str, list[str]]:
    """What `koyeb-auth token` prints in a fresh interpreter, and which of `avoidable` it loads."""
    code = ("import sys\nbefore = set(sys.modules)\nfrom koyeb_auth.cli import main\n"
            "assert main(['token']) == 0\n"
            f"print(*sorted(set({sorted(avoidable)!r}) & (set(sys.modules) - before)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    token, loaded = result.stdout.split("\n", 1)
    return token, loaded.split()


def test_a_warm_token_in_the_default_cache_loads_only_what_reads_the_cache(fake: FakeKoyebAPI, tmp_path: Path) -> None:
    """The modules a warm `koyeb-auth token` could load and does not (their cost: docs/benchmarks.md)."""
    home = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"), "KOYEB_URL": fake.url}
    logged_in = cli("login", "--email", fake.EMAIL, "--password-stdin", env=home, stdin=fake.PASSWORD + "\n")
    assert logged_in.returncode == 0, logged_in.stderr
    token, loaded = _warm_token_loading(home, {"httpx", "requests", "filelock", "yaml", "logging", "dataclasses",
                                               "inspect", "platformdirs", "tempfile", "koyeb_auth._config",
                                               "koyeb_auth._sources"})
    assert token in fake.live_tokens()
    assert (tmp_path / "cache" / "koyeb-auth" / "tokens.json").exists()
    assert loaded == []
    assert fake.stats == {"login": 1}


def test_a_warm_token_of_the_environment_loads_no_dataclasses_threads_or_openssl(fake: FakeKoyebAPI,
                                                                              tmp_path: Path) -> None:
    """KOYEB_TOKEN and KOYEB_ORGANIZATION: the credential chain and the store key are needed, and
    nothing heavier (dataclasses loads inspect and ast; hashlib starts OpenSSL): docs/benchmarks.md."""
    env = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"), "KOYEB_URL": fake.url,
           "KOYEB_TOKEN": fake.PERSONAL_TOKEN, "KOYEB_ORGANIZATION": fake.ORGANIZATION_ID}
    first = cli("token", env=env)
    assert first.returncode == 0, first.stderr
    token, loaded = _warm_token_loading(env, {"httpx", "filelock", "yaml", "logging", "dataclasses", "inspect",
                                              "hashlib", "_hashlib", "threading", "tempfile"})
    assert token == first.stdout.strip()
    assert loaded == []
    assert fake.stats == {"access_token": 1} or fake.stats == {"switch": 1}


@pytest.mark.parametrize(("columns", "stdout", "width"), [
    ("100", None, 100), ("-5", None, 80), ("abc", None, 80), ("0", "no fileno", 80), ("", "no fileno", 80)])
def test_the_help_width_follows_shutil_s_rule_without_importing_it(
        columns: str, stdout: str | None, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setattr(sys, "__stdout__", object() if stdout else None)
    assert _columns() == width
    assert cli_main(["token", "--api-url", "not a url"]) == EXIT_CODES[0][1]  # a clear error, not a traceback


def test_a_login_whose_session_cannot_be_kept_fails_and_remembers_no_account(
        fake: FakeKoyebAPI, cache_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The lock file cannot be opened (EACCES at the OS edge: root ignores modes) in a directory that
    # can be written: the library goes on without the cache, but the command exists to fill it.
    lock, real_open = str(cache_path) + ".lock", os.open

    def refusing(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        if os.fspath(path) == lock:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), lock)
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    monkeypatch.setattr(sys, "stdin", io.StringIO(fake.PASSWORD + "\n"))
    code = cli_main(["login", "--api-url", fake.url, "--cache-path", str(cache_path), "--email", fake.EMAIL,
                     "--password-stdin"])
    assert code == next(code for kind, code in EXIT_CODES if kind is TokenStoreError)
    assert "could not be kept" in capsys.readouterr().err
    assert not state_file(cache_path).exists()  # the next commands do not think they have a session


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


def test_a_carriage_return_in_the_organization_is_one_line_naming_it(fake: FakeKoyebAPI, cache_path: Path) -> None:
    # What a .env file with CRLF line endings gives.
    env = {"KOYEB_URL": fake.url, "KOYEB_TOKEN": fake.PERSONAL_TOKEN, "KOYEB_ORGANIZATION": "org-1\r"}
    result = cli("token", "--cache-path", str(cache_path), env=env)
    assert result.returncode == 3  # a configuration error
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert "KOYEB_ORGANIZATION" in result.stderr and fake.PERSONAL_TOKEN not in result.stderr + result.stdout
    assert fake.stats == {}  # refused before anything was sent
