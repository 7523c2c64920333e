"""Where settings come from: arguments, then the environment, then ~/.koyeb.yaml, per key."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from koyeb_auth import ConfigurationError, KoyebAuth
from koyeb_auth._config import DEFAULT_API_URL, Config, Credentials
from koyeb_auth._secrets import ENVIRONMENT
from koyeb_auth.testing import FakeKoyebAPI


def config(tmp_path: Path, yaml_text: str | None = None, **env: str) -> Config:
    path = tmp_path / "koyeb.yaml"
    if yaml_text is not None:
        path.write_text(yaml_text)
    return Config({"KOYEB_CONFIG": str(path), **env})


def test_arguments_win_over_the_environment_which_wins_over_the_cli_file(tmp_path: Path) -> None:
    cfg = config(tmp_path, "token: file-token\nurl: https://file.example\norganization: org-file\n",
                 KOYEB_TOKEN="env-token", KOYEB_URL="https://env.example")
    from_args = cfg.settings(Credentials(token="arg-token", organization_id="org-arg", api_url="https://arg.example/"))
    assert (from_args.token, from_args.api_url, from_args.organization_id, from_args.found_in) == (
        "arg-token", "https://arg.example", "org-arg", "arguments")
    from_env = cfg.settings(Credentials())
    assert (from_env.token, from_env.api_url, from_env.organization_id, from_env.found_in) == (
        "env-token", "https://env.example", "org-file", "environment")


@pytest.mark.parametrize("env", [
    {"KOYEB_EMAIL": " a@b.c ", "KOYEB_PASSWORD": "pw", "KOYEB_ORGANIZATION": "org-e", "KOYEB_API_HOST": "env.example"},
    {"KOYEB_TOKEN": "", "KOYEB_API_TOKEN": "sdk-token", "KOYEB_URL": "https://env.example/v1/"},
])
def test_the_process_environment_resolves_as_a_mapping_with_the_same_variables_would(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KOYEB_EMAIL", "KOYEB_PASSWORD", "KOYEB_TOKEN", "KOYEB_API_TOKEN", "KOYEB_AUTH_PROFILE",
                 "KOYEB_ORGANIZATION", "KOYEB_URL", "KOYEB_API_HOST"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"KOYEB_CONFIG": str(tmp_path / "none.yaml"), **env}.items():
        monkeypatch.setenv(name, value)
    from_process = Config(ENVIRONMENT).settings(Credentials())
    assert from_process == config(tmp_path, **env).settings(Credentials())
    assert "pw" not in repr(from_process) and "sdk-token" not in repr(from_process)


def test_the_cli_file_supplies_token_url_and_organization(tmp_path: Path) -> None:
    cfg = config(tmp_path, "token: file-token\nurl: https://file.example\norganization: ''\ndebug: false\n")
    settings = cfg.settings(Credentials())
    assert (settings.token, settings.api_url, settings.organization_id) == ("file-token", "https://file.example", None)
    assert settings.found_in.endswith("koyeb.yaml")


def test_email_and_password_from_the_environment_beat_a_token_there(tmp_path: Path) -> None:
    cfg = config(tmp_path, KOYEB_EMAIL="a@b.c", KOYEB_PASSWORD="pw", KOYEB_TOKEN="t")
    settings = cfg.settings(Credentials())
    assert (settings.email, settings.password, settings.token, settings.api_url) == ("a@b.c", "pw", None,
                                                                                      DEFAULT_API_URL)
    assert "pw" not in repr(settings)


def test_a_password_without_an_email_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="without an email"):
        config(tmp_path).settings(Credentials(password="pw"))


def test_an_email_argument_takes_its_password_from_the_environment(tmp_path: Path) -> None:
    settings = config(tmp_path, KOYEB_PASSWORD="pw", KOYEB_TOKEN="t").settings(Credentials(email="a@b.c"))
    assert (settings.email, settings.password, settings.token, settings.found_in) == ("a@b.c", "pw", None, "arguments")


def test_an_email_without_any_password_fails_only_when_a_login_is_needed(fake: FakeKoyebAPI, tmp_path: Path) -> None:
    auth = KoyebAuth("a@b.c", api_url=fake.url, cache_path=tmp_path / "t.json")
    assert auth.cached_token() is None  # reading the cache needs no password
    with pytest.raises(ConfigurationError, match=r"No password for a@b\.c"):
        auth.get_token()
    assert fake.stats == {}


def test_no_credentials_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="No Koyeb credentials"):
        config(tmp_path).settings(Credentials())


@pytest.mark.parametrize("text", ["token: [unclosed", "- a list\n- not a mapping\n"])
def test_a_broken_cli_file_names_the_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"koyeb\.yaml"):
        config(tmp_path, text).settings(Credentials())


def test_the_cli_file_is_not_read_when_arguments_say_everything(tmp_path: Path) -> None:
    cfg = config(tmp_path, "token: [unclosed")  # would fail if read
    given = Credentials(email="a@b.c", password="pw", organization_id="org", api_url="https://x.example")
    assert cfg.settings(given).email == "a@b.c"


@pytest.mark.parametrize("url", ["app.koyeb.com", "ftp://app.koyeb.com", "https://"])
def test_an_api_url_that_is_not_http_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigurationError, match="not an http"):
        config(tmp_path).settings(Credentials(token="t", api_url=url))


@pytest.mark.parametrize("organization", ["org-1\r", "org-1\n", "org\t1", "org 1", "org/../../account", "org-1?x",
                                          "org-\u00e9", "..", "."])
@pytest.mark.parametrize("given_in", ["arguments", "environment", "cli file"])
def test_an_organization_id_that_would_change_the_request_is_refused(
    tmp_path: Path, organization: str, given_in: str
) -> None:
    yaml_text = f"organization: {organization!r}\n".replace("'", '"') if given_in == "cli file" else None
    env = {"KOYEB_ORGANIZATION": organization} if given_in == "environment" else {}
    given = Credentials(token="t", organization_id=organization if given_in == "arguments" else None)
    with pytest.raises(ConfigurationError, match="organization id") as caught:
        config(tmp_path, yaml_text, **env).settings(given)
    assert "\r" not in str(caught.value) and "\n" not in str(caught.value)


def test_an_ordinary_organization_id_is_kept(tmp_path: Path) -> None:
    organization = "2b6a8f1c-7a8e-4d6b-9c1f-0d2e3f4a5b6c"
    assert config(tmp_path, KOYEB_ORGANIZATION=organization).settings(Credentials(token="t")).organization_id == (
        organization)


# --- the chain of issue 24: the SDK's variables, profiles, the login ---------------------------------


def test_the_sdk_variables_come_after_the_cli_ones(tmp_path: Path) -> None:
    cfg = config(tmp_path, KOYEB_TOKEN="cli-token", KOYEB_API_TOKEN="sdk-token", KOYEB_URL="https://cli.example",
                 KOYEB_API_HOST="https://sdk.example")
    settings = cfg.settings(Credentials())
    assert (settings.token, settings.api_url) == ("cli-token", "https://cli.example")
    sdk = config(tmp_path, KOYEB_API_TOKEN="sdk-token", KOYEB_API_HOST="sdk.example").settings(Credentials())
    assert (sdk.token, sdk.api_url, sdk.found_in) == ("sdk-token", "https://sdk.example", "environment")


@pytest.mark.parametrize("url", ["https://h.example/v1", "https://h.example/v1/", "https://h.example/V1"])
def test_an_api_url_ending_in_v1_is_the_api_itself(tmp_path: Path, url: str) -> None:
    assert config(tmp_path).settings(Credentials(token="t", api_url=url)).api_url == "https://h.example"


def test_a_profile_with_credentials_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="either a profile"):
        config(tmp_path).settings(Credentials(token="t", profile="work"))


@pytest.mark.parametrize(("given", "env", "named"), [
    (Credentials(profile="work"), {}, "profile=, --profile"),
    (Credentials(), {"KOYEB_AUTH_PROFILE": "work"}, "KOYEB_AUTH_PROFILE"),
])
def test_a_named_profile_that_is_missing_says_how_to_log_in(tmp_path: Path, given: Credentials, env: dict[str, str],
                                                            named: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"No login for the profile 'work' \({named}\).*--profile work"):
        config(tmp_path, "token: file-token\n", **env).settings(given)


def test_a_koyeb_auth_with_a_profile_pickles_with_it(tmp_path: Path) -> None:
    auth = KoyebAuth(profile="work", cache_path=tmp_path / "tokens.json")
    with pytest.raises(ConfigurationError, match="No login for the profile 'work'"):
        pickle.loads(pickle.dumps(auth)).get_token()
