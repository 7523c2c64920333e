"""Where the settings come from: arguments, then the environment, then the Koyeb CLI's config.

The order per key is the CLI's own (flag > environment > `~/.koyeb.yaml`), so a machine set up
for the `koyeb` command works here unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigurationError, Hint
from .origin import DEFAULT_API_URL, normalize_api_url

__all__ = ["Config", "Credentials", "Settings"]


@dataclass(frozen=True)
class Credentials:
    """What the caller passed to KoyebAuth; None for what is left to the environment."""

    email: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    organization_id: str | None = None
    api_url: str | None = None


@dataclass(frozen=True)
class Settings:
    """Resolved credentials. `found_in` says where the credentials were found, for `status`."""

    api_url: str
    email: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    organization_id: str | None = None
    found_in: str = "arguments"


class Config:
    """Settings from arguments, the environment and the CLI config, which is read at most once."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.cli_path = Path(environ.get("KOYEB_CONFIG") or Path.home() / ".koyeb.yaml")
        self._cli: dict[str, str] | None = None

    def cli(self) -> dict[str, str]:
        if self._cli is None:
            self._cli = read_cli_config(self.cli_path)
        return self._cli

    def settings(self, given: Credentials) -> Settings:
        """Pick each setting from the first place that has it; ConfigurationError if nothing does."""
        env = self.environ
        url = normalize_api_url(given.api_url or env.get("KOYEB_URL") or self.cli().get("url") or DEFAULT_API_URL)
        org = given.organization_id or env.get("KOYEB_ORGANIZATION") or self.cli().get("organization") or None
        env_password = env.get("KOYEB_PASSWORD") or None
        for found_in, mail, secret, pat in (
            ("arguments", given.email, given.password, given.token),
            ("environment", env.get("KOYEB_EMAIL"), env_password, env.get("KOYEB_TOKEN")),
        ):
            if mail or secret:
                if not mail:
                    raise ConfigurationError(f"A password was given without an email, in the {found_in}.")
                # The password may come from the environment when the email is an argument. Without
                # one the cache can still be read (status, logout); a login then says what is missing.
                return Settings(url, email=mail, password=secret or env_password, organization_id=org,
                                found_in=found_in)
            if pat:
                return Settings(url, token=pat, organization_id=org, found_in=found_in)
        if pat := self.cli().get("token"):
            return Settings(url, token=pat, organization_id=org, found_in=str(self.cli_path))
        raise ConfigurationError("No Koyeb credentials found.", Hint.CREDENTIALS)


def read_cli_config(path: Path) -> dict[str, str]:
    """The string settings of a Koyeb CLI config file; {} if there is none."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        failure = type(exc).__name__
    else:
        return _strings(path, _parse_yaml(path, text))
    raise _unreadable(path, failure)


def _parse_yaml(path: Path, text: str) -> object:
    import yaml  # noqa: PLC0415 - 15 ms, paid only by those who have the file

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        failure = type(exc).__name__
    # Raised outside the handler: a YAML error holds the file's text (its token) in its context.
    raise _unreadable(path, failure)


def _unreadable(path: Path, failure: str) -> ConfigurationError:
    return ConfigurationError(f"The Koyeb CLI config {path} cannot be read ({failure}). "
                              "Fix or remove it, or set KOYEB_CONFIG.")


def _strings(path: Path, document: object) -> dict[str, str]:
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigurationError(f"The Koyeb CLI config {path} is not a YAML mapping.")
    return {key: value for key, value in document.items() if isinstance(key, str) and isinstance(value, str)}
