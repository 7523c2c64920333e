"""The credential chain shared by the command and the library, token logins and profiles (issue 24).

Real processes of the command and of Python against the fake API, with HOME and the cache directory
in the test's own temporary directory (conftest's `clean_environment`). No token ever shows in what
a command prints: every test checks its output.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from koyeb_auth import InvalidCredentialsError, KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

from .test_cli import _read_until, cli, finish, on_a_terminal

pytestmark = pytest.mark.slow  # every test here starts a server and processes

PAT = FakeKoyebAPI.PERSONAL_TOKEN
OTHER_PAT = "q" * 64  # a well-formed token the API does not know


@pytest.fixture
def api() -> Iterator[FakeKoyebAPI]:
    with FakeKoyebAPI(ttl=3600) as fake:
        yield fake


def secrets_of(fake: FakeKoyebAPI) -> list[str]:
    return [PAT, OTHER_PAT, fake.PASSWORD, *fake.issued]


def shown(result: subprocess.CompletedProcess[str], fake: FakeKoyebAPI) -> subprocess.CompletedProcess[str]:
    """`result`, once checked to show no token and no password on stdout or stderr."""
    leaked = [secret[:4] for secret in secrets_of(fake) if secret in result.stdout + result.stderr]
    assert leaked == [], f"a secret was printed (its first characters: {leaked})"
    return result


def login_token(fake: FakeKoyebAPI, *flags: str, token: str = PAT) -> subprocess.CompletedProcess[str]:
    return shown(cli("login", "--token-stdin", "--api-url", fake.url, *flags, stdin=token + "\n"), fake)


def login_password(fake: FakeKoyebAPI, *flags: str) -> subprocess.CompletedProcess[str]:
    return shown(cli("login", "--email", fake.EMAIL, "--password-stdin", "--api-url", fake.url, *flags,
                     stdin=fake.PASSWORD + "\n"), fake)


def python(code: str, fake: FakeKoyebAPI, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`code` run by a new Python, with no Koyeb variable but those of `env`."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("KOYEB_")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False,
                          env={**clean, "API": fake.url, **(env or {})})


def cache_dir() -> Path:
    return Path(os.environ["XDG_CACHE_HOME"]) / "koyeb-auth"


# --- login --token-stdin and --token --------------------------------------------------------------


def test_login_token_stdin_checks_the_token_keeps_it_privately_and_every_command_uses_it(api: FakeKoyebAPI) -> None:
    login = login_token(api)
    assert login.returncode == 0, login.stderr
    assert "Logged in with a personal access token" in login.stdout
    assert api.stats == {"api": 1}  # checked with the API
    kept = cache_dir() / "tokens.json.login"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    token = cli("token")
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip() == PAT  # `token` prints it: that is its job
    status = shown(cli("status", "--json"), api)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert (report["kind"], report["api_url"], report["profile"]) == ("personal access token", api.url, "default")
    assert "koyeb-auth login" in report["credentials_from"]


def test_login_token_stdin_refuses_a_token_the_api_refuses_and_keeps_nothing(api: FakeKoyebAPI) -> None:
    login = login_token(api, token=OTHER_PAT)
    assert login.returncode == 4
    assert "refused the personal access token" in login.stderr
    assert not (cache_dir() / "tokens.json.login").exists()
    assert shown(cli("token"), api).returncode == 3


def test_login_token_stdin_with_an_organization_exchanges_it_once(fake: FakeKoyebAPI) -> None:
    # The stock fake: the organization exchange takes the personal access token.
    login = login_token(fake, "--organization", fake.ORGANIZATION_ID)
    assert login.returncode == 0, login.stderr
    assert fake.stats == {"access_token": 1}
    token = cli("token")
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip() in fake.live_tokens()  # the organization's token, cached by the login
    assert fake.stats == {"access_token": 1}


def test_login_token_asks_on_the_terminal_without_echo(api: FakeKoyebAPI) -> None:
    with on_a_terminal("login", "--token", "--api-url", api.url, env={}) as (proc, master):
        assert b"Personal access token: " in _read_until(master, b"Personal access token: ")
        os.write(master, PAT.encode() + b"\n")
        echoed = _read_until(master, b"\n", timeout=2)
        out, err = finish(proc)
    assert proc.returncode == 0, err
    assert PAT.encode() not in echoed + out + err
    assert b"Logged in with a personal access token" in out
    assert cli("token").stdout.strip() == PAT


def test_login_token_without_a_terminal_is_a_clear_error(api: FakeKoyebAPI) -> None:
    result = shown(cli("login", "--token", "--api-url", api.url, new_session=True), api)
    assert result.returncode == 3
    assert "no terminal to ask on: pass --token-stdin or set KOYEB_TOKEN" in result.stderr
    assert api.stats == {}


# --- the chain: the library uses the command's login ----------------------------------------------


REQUEST = ("import httpx; from koyeb_auth import KoyebAuth; "
           "print(httpx.get(__import__('os').environ['API'] + '/v1/apps', auth=KoyebAuth()).status_code)")


def test_koyeb_auth_with_no_arguments_uses_the_password_login_of_the_command(fake: FakeKoyebAPI) -> None:
    assert login_password(fake).returncode == 0
    request = python(REQUEST, fake)
    assert request.returncode == 0, request.stderr
    assert request.stdout.strip() == "200"
    assert fake.stats == {"login": 1, "api": 1}  # the command's session, not a login of its own


def test_koyeb_auth_with_no_arguments_uses_the_token_login_of_the_command(api: FakeKoyebAPI) -> None:
    assert login_token(api).returncode == 0
    request = python(REQUEST, api)
    assert request.returncode == 0, request.stderr
    assert request.stdout.strip() == "200"
    assert api.stats == {"api": 2}  # the login's check, then the request


def test_the_environment_wins_over_the_login_and_the_login_over_the_cli_file(api: FakeKoyebAPI, tmp_path: Path) -> None:
    assert login_password(api).returncode == 0
    yaml = tmp_path / "koyeb.yaml"
    yaml.write_text(f"token: {OTHER_PAT}\nurl: {api.url}\n")
    code = "from koyeb_auth import KoyebAuth; a = KoyebAuth(); a.get_token(); print(a.settings.found_in)"
    found = python(code, api, {"KOYEB_CONFIG": str(yaml)})
    assert found.returncode == 0, found.stderr
    assert "koyeb-auth login" in found.stdout
    from_env = python(code, api, {"KOYEB_CONFIG": str(yaml), "KOYEB_API_TOKEN": PAT, "KOYEB_API_HOST": api.url})
    assert from_env.stdout.strip() == "environment"


# --- profiles ------------------------------------------------------------------------------------


def test_profiles_keep_accounts_side_by_side(api: FakeKoyebAPI) -> None:
    assert login_password(api).returncode == 0
    work = login_token(api, "--profile", "work")
    assert work.returncode == 0, work.stderr
    assert "profile 'work'" in work.stdout
    session = cli("token").stdout.strip()
    assert session in api.live_tokens()
    assert cli("token", "--profile", "work").stdout.strip() == PAT
    assert cli("token", env={"KOYEB_AUTH_PROFILE": "work"}).stdout.strip() == PAT
    in_python = python("from koyeb_auth import KoyebAuth; print(KoyebAuth(profile='work').get_token())", api)
    assert in_python.stdout.strip() == PAT, in_python.stderr
    by_variable = python("from koyeb_auth import KoyebAuth; print(KoyebAuth().settings.found_in)", api,
                         {"KOYEB_AUTH_PROFILE": "work"})
    assert "of the profile 'work'" in by_variable.stdout, by_variable.stderr
    status = shown(cli("status", "--json", "--offline", "--profile", "work"), api)
    report = json.loads(status.stdout)
    assert report["profile"] == "work"
    assert [entry["name"] for entry in report["profiles"]] == ["default", "work"]
    text = shown(cli("status", "--offline"), api).stdout
    assert "default (password login, demo@koyeb.com" in text and "work (personal access token" in text
    assert api.stats == {"login": 1, "api": 1}


def test_koyeb_auth_profile_chooses_the_profile_of_login_too(api: FakeKoyebAPI, tmp_path: Path) -> None:
    cache = ("--cache-path", str(tmp_path / "odd[1]" / "tok[en].json"))  # a glob's special characters
    assert login_token(api, *cache, token=PAT).returncode == 0
    ci = shown(cli("login", "--token-stdin", "--api-url", api.url, *cache, stdin=PAT + "\n",
                   env={"KOYEB_AUTH_PROFILE": "ci"}), api)
    assert ci.returncode == 0, ci.stderr
    assert "profile 'ci'" in ci.stdout
    assert (tmp_path / "odd[1]" / "tok[en].json.profile-ci.login").exists()
    report = json.loads(shown(cli("status", "--json", "--offline", *cache, "--profile", "ci"), api).stdout)
    assert [entry["name"] for entry in report["profiles"]] == ["default", "ci"]


def test_a_profile_that_was_never_logged_in_is_a_clear_error(api: FakeKoyebAPI) -> None:
    assert login_token(api).returncode == 0
    for result in (cli("token", "--profile", "nope"), cli("token", env={"KOYEB_AUTH_PROFILE": "nope"}),
                   python("from koyeb_auth import KoyebAuth; KoyebAuth(profile='nope').get_token()", api)):
        assert result.returncode != 0
        assert "koyeb-auth login --profile nope" in shown(result, api).stderr
    bad = shown(cli("token", "--profile", "../x"), api)
    assert bad.returncode == 3
    assert "The profile name in profile=, --profile is not one" in bad.stderr


def test_a_token_login_serves_another_organization_through_the_exchange(api: FakeKoyebAPI) -> None:
    # One remembered login serves every organization of its personal access token.
    assert login_token(api).returncode == 0
    other = cli("token", "--organization", "org-other")
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() in api.live_tokens()
    assert api.stats.get("switch", 0) + api.stats.get("access_token", 0) == 1


def test_a_password_login_passed_over_for_another_organization_says_so(fake: FakeKoyebAPI) -> None:
    assert login_password(fake).returncode == 0
    other = shown(cli("token", "--organization", "org-other"), fake)
    assert other.returncode == 3
    assert f"The last `koyeb-auth login` is for {fake.url}, not the API URL or organization" in other.stderr
    assert "--profile NAME to keep both" in other.stderr
    assert login_password(fake, "--profile", "other", "--organization", "org-other").returncode == 0
    both = [cli("token", *flags) for flags in [(), ("--profile", "other")]]
    assert all(result.returncode == 0 for result in both)
    assert both[0].stdout != both[1].stdout
    assert fake.stats == {"login": 2}


def test_logout_forgets_a_token_login(api: FakeKoyebAPI) -> None:
    assert login_token(api, "--profile", "work").returncode == 0
    logout = shown(cli("logout", "--profile", "work"), api)
    assert logout.returncode == 0, logout.stderr
    assert not (cache_dir() / "tokens.json.profile-work.login").exists()
    assert shown(cli("token", "--profile", "work"), api).returncode == 3


def test_a_refused_password_login_names_where_the_email_and_password_came_from(fake: FakeKoyebAPI) -> None:
    wrong = shown(cli("login", "--email", fake.EMAIL, "--password-stdin", "--api-url", fake.url, stdin="nope\n"),
                  fake)
    assert wrong.returncode == 4
    assert "Check the email (--email) and the password (standard input (--password-stdin))." in wrong.stderr
    assert "KOYEB_PASSWORD" not in wrong.stderr
    from_env = shown(cli("login", "--api-url", fake.url, env={"KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": "nope"}),
                     fake)
    assert "Check the email (KOYEB_EMAIL) and the password (KOYEB_PASSWORD)." in from_env.stderr


# --- exec and the API URL ------------------------------------------------------------------------

CHILD = "import os; print(os.environ.get('KOYEB_URL')); print(os.environ['KOYEB_TOKEN'] == os.environ['PAT'])"


@pytest.mark.parametrize("came_from", ["flag", "login"])
def test_exec_passes_the_api_url_to_the_child(api: FakeKoyebAPI, came_from: str) -> None:
    if came_from == "login":
        assert login_token(api).returncode == 0
        flags: tuple[str, ...] = ()
        env = {"PAT": PAT}
    else:
        flags, env = ("--api-url", api.url), {"PAT": PAT, "KOYEB_TOKEN": PAT}
    result = cli("exec", *flags, "--", sys.executable, "-c", CHILD, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [api.url, "True"]


def test_exec_gives_the_child_the_token_under_the_sdk_s_names_too_never_the_personal_token(
        fake: FakeKoyebAPI) -> None:
    env = {"KOYEB_API_TOKEN": PAT, "KOYEB_API_HOST": fake.url, "KOYEB_ORGANIZATION": fake.ORGANIZATION_ID}
    child = ("import os; e = os.environ; "
             "print(e['KOYEB_API_TOKEN'] == e['KOYEB_TOKEN'] != 'k' * 64, e['KOYEB_API_HOST'])")
    result = cli("exec", "--", sys.executable, "-c", child, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", fake.url]
    assert fake.stats.get("switch", 0) + fake.stats.get("access_token", 0) == 1  # an organization's token


@pytest.mark.parametrize("how", ["flag", "KOYEB_URL", "KOYEB_API_HOST"])
def test_an_api_url_ending_in_v1_does_not_make_v1_v1(fake: FakeKoyebAPI, how: str) -> None:
    env = {"KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD}
    flags: tuple[str, ...] = ("--api-url", fake.url + "/v1/") if how == "flag" else ()
    env.update({} if how == "flag" else {how: fake.url + "/v1"})
    result = cli("token", *flags, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() in fake.live_tokens()  # `token` prints it: that is its job
    assert fake.stats == {"login": 1}


@pytest.mark.parametrize(("flags", "env", "named", "not_named"), [
    (("--api-url", "ftp://x.example"), {}, "--api-url", "KOYEB_URL"),
    ((), {"KOYEB_API_HOST": "ftp://x.example"}, "KOYEB_API_HOST", "--api-url"),
    ((), {"KOYEB_URL": "http://x.example"}, "KOYEB_URL", "--api-url"),
])
def test_an_api_url_error_names_where_the_url_came_from(fake: FakeKoyebAPI, flags: tuple[str, ...],
                                                        env: dict[str, str], named: str, not_named: str) -> None:
    result = shown(cli("token", *flags, env={"KOYEB_TOKEN": PAT, **env}), fake)
    assert result.returncode == 3
    assert named in result.stderr
    assert not_named not in result.stderr


@pytest.mark.parametrize("profile", [(), ("--profile", "work")])
def test_a_warm_token_after_a_token_login_loads_only_what_reads_the_login(api: FakeKoyebAPI,
                                                                          profile: tuple[str, ...]) -> None:
    assert login_token(api, *profile).returncode == 0
    avoidable = {"httpx", "requests", "filelock", "yaml", "logging", "dataclasses", "inspect", "platformdirs",
                 "tempfile", "koyeb_auth._config", "koyeb_auth._sources"}
    code = ("import sys\nbefore = set(sys.modules)\nfrom koyeb_auth.cli import main\n"
            f"assert main(['token', *{list(profile)!r}]) == 0\n"
            f"print(sorted(set({sorted(avoidable)!r}) & (set(sys.modules) - before)))")
    result = python(code, api)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [PAT, "[]"]


def test_a_warm_organization_token_loads_no_session_api(fake: FakeKoyebAPI) -> None:
    # A personal access token with an organization goes through the chain and its source, for the
    # store key only: the session API module (email.utils among its imports) waits for a call.
    assert login_token(fake, "--profile", "work", "--organization", fake.ORGANIZATION_ID).returncode == 0
    avoidable = {"httpx", "requests", "filelock", "yaml", "koyeb_auth._session_api", "email.utils"}
    code = ("import sys\nbefore = set(sys.modules)\nfrom koyeb_auth.cli import main\n"
            "assert main(['token', '--profile', 'work']) == 0\n"
            f"print(sorted(set({sorted(avoidable)!r}) & (set(sys.modules) - before)))")
    result = python(code, fake)
    assert result.returncode == 0, result.stderr
    token, loaded = result.stdout.splitlines()
    assert token in fake.live_tokens()
    assert loaded == "[]"
    assert fake.stats == {"access_token": 1}


# --- WorkOS accounts ------------------------------------------------------------------------------

def test_a_workos_account_is_told_it_has_no_password_and_how_to_use_a_token(api: FakeKoyebAPI, tmp_path: Path) -> None:
    api.workos_users.add(api.EMAIL)
    auth = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=tmp_path / "tokens.json")
    with pytest.raises(InvalidCredentialsError) as refused:
        auth.get_token()
    message = str(refused.value)
    assert "signs in through WorkOS" in message and "KOYEB_TOKEN" in message, message
    assert api.PASSWORD not in message and refused.value.__context__ is None
    assert api.stats == {"failed_login": 1, "login_method": 1}


def test_a_wrong_password_is_still_a_wrong_password(api: FakeKoyebAPI, tmp_path: Path) -> None:
    auth = KoyebAuth(api.EMAIL, "not-the-password", api_url=api.url, cache_path=tmp_path / "tokens.json")
    with pytest.raises(InvalidCredentialsError) as refused:
        auth.get_token()
    assert "Check the email and password" in str(refused.value) and "WorkOS" not in str(refused.value)
    assert api.stats == {"failed_login": 1, "login_method": 1}


def test_without_the_login_method_endpoint_the_refusal_stands(api: FakeKoyebAPI, tmp_path: Path) -> None:
    api.workos_users.add(api.EMAIL)
    api.drop("login_method")
    auth = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=tmp_path / "tokens.json")
    with pytest.raises(InvalidCredentialsError) as refused:
        auth.get_token()
    assert "Check the email and password" in str(refused.value)


def test_the_command_tells_a_workos_account_to_log_in_with_a_token(api: FakeKoyebAPI) -> None:
    api.workos_users.add(api.EMAIL)
    result = login_password(api)
    assert result.returncode == 4
    assert "signs in through WorkOS" in result.stderr and "koyeb-auth login --token" in result.stderr, result.stderr
    assert not (cache_dir() / "tokens.json.login").exists()


# --- attacks on the login files and the command line (red team) -----------------------------------


@pytest.mark.parametrize("words", [("--token", PAT), (f"--token={PAT}",), ("--token-stdin", PAT),
                                   ("--email", "me@example.com", "--password", "hunter2-password"),
                                   (f"--password-stdin={PAT}",)])
def test_a_token_or_password_typed_on_the_login_command_line_is_not_echoed(api: FakeKoyebAPI,
                                                                            words: tuple[str, ...]) -> None:
    # `login --token $KOYEB_TOKEN` in a CI script: argparse's usage error would print the token to
    # the job's log. The value is refused without being shown, and nothing is sent.
    result = cli("login", "--api-url", api.url, *words)
    assert result.returncode == 2
    secret = words[-1].partition("=")[2] or words[-1]
    assert secret not in result.stdout + result.stderr, result.stderr
    assert "not shown" in result.stderr
    assert api.stats == {}


def write_login(path: Path, document: dict[str, object]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump({"version": 1, "email": None, "organization_id": None, "key": "", **document}, file)


@pytest.mark.parametrize("token", ["SECRETabc\r\nX-Injected: 1", "SECRET abc", "SECRETé"])
def test_a_login_file_edited_to_a_token_unfit_for_a_header_is_ignored_and_never_echoed(api: FakeKoyebAPI,
                                                                                      token: str) -> None:
    # httpx would refuse the header with an error that quotes it: the token, in a traceback.
    write_login(cache_dir() / "tokens.json.login", {"api_url": api.url, "token": token})
    result = python(REQUEST, api)
    assert "SECRET" not in result.stdout + result.stderr, result.stderr
    assert "No Koyeb credentials found" in result.stderr
    assert api.stats == {}


def test_status_with_credentials_from_the_environment_survives_a_planted_profile_file(api: FakeKoyebAPI) -> None:
    # A shared cache directory: another user (or a link) plants a profile's file; the account in use
    # is not that profile, and `status` must still report on it (the planted file is left out).
    (cache_dir()).mkdir(mode=0o700, parents=True)
    (cache_dir() / "tokens.json.profile-planted.login").symlink_to("/etc/passwd")
    assert login_token(api, "--profile", "mine").returncode == 0
    result = shown(cli("status", "--json", env={"KOYEB_TOKEN": PAT, "KOYEB_URL": api.url}), api)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [profile["name"] for profile in report["profiles"]] == ["mine"]
    assert report["kind"] == "personal access token"


@pytest.mark.parametrize("organization", ["../../account/logout?", "org\r\nX-Injected: 1", "org é", ".."])
@pytest.mark.parametrize("kind", ["token", "password"])
def test_a_login_file_edited_to_an_organization_id_that_changes_the_url_is_ignored(
        fake: FakeKoyebAPI, organization: str, kind: str) -> None:
    # The id goes into the path of the switch and access token calls: `../../account/logout?` made the
    # personal token go to POST /v1/account/logout. The environment's and the arguments' ids are
    # checked for this; so is the file's now.
    record = ({"token": PAT} if kind == "token" else {"email": fake.EMAIL, "key": "a-session-key"})
    write_login(cache_dir() / "tokens.json.login", {"api_url": fake.url, "organization_id": organization, **record})
    result = shown(cli("token"), fake)
    assert result.returncode == 3, result.stderr
    assert "No Koyeb credentials found" in result.stderr
    assert fake.stats == {}
