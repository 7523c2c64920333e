"""Where the settings come from: arguments, then the environment, then the Koyeb CLI's config.

The order per key is the CLI's own (flag > environment > `~/.koyeb.yaml`), so a machine set up
for the `koyeb` command works here unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import yaml

from .errors import ConfigurationError
from .origin import DEFAULT_API_URL, normalize_api_url

if TYPE_CHECKING:
    from .store import TokenStore

__all__ = ["Config", "Credentials", "Settings"]

# Where KoyebAuth shares its tokens when given neither store= nor cache_path=: a Redis URL, so that
# a fleet (and the `koyeb-auth` command) can choose the Redis store without code.
STORE_VARIABLE = "KOYEB_AUTH_STORE"


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
        raise ConfigurationError(
            "No Koyeb credentials found. Pass email= and password= or token=, set KOYEB_EMAIL and "
            "KOYEB_PASSWORD or KOYEB_TOKEN, or run `koyeb login` to write ~/.koyeb.yaml."
        )


def read_cli_config(path: Path) -> dict[str, str]:
    """The string settings of a Koyeb CLI config file; {} if there is none."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        failure = type(exc).__name__
    else:
        return _strings(path, document)
    # Raised outside the handler: a YAML error holds the file's text (its token) in its context.
    raise ConfigurationError(f"The Koyeb CLI config {path} cannot be read ({failure}). "
                             "Fix or remove it, or set KOYEB_CONFIG.")


def _strings(path: Path, document: object) -> dict[str, str]:
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigurationError(f"The Koyeb CLI config {path} is not a YAML mapping.")
    return {key: value for key, value in document.items() if isinstance(key, str) and isinstance(value, str)}


def default_store(environ: Mapping[str, str], cache_path: str | os.PathLike[str] | None) -> TokenStore:
    """The store of a KoyebAuth given no store=: the file at `cache_path` if given, else the Redis
    store at $KOYEB_AUTH_STORE if set, else the default cache file."""
    # Imported here: each store is built only when chosen (the Redis one needs the redis extra).
    from .file_store import FileTokenStore  # noqa: PLC0415

    url = environ.get(STORE_VARIABLE) if cache_path is None else None
    return store_from_url(url, f"${STORE_VARIABLE}") if url else FileTokenStore(cache_path)


def store_from_url(url: str, given_in: str) -> TokenStore:
    """The Redis store at `url` (redis://, rediss:// or unix://); ConfigurationError for anything else."""
    if urlsplit(url).scheme.lower() not in {"redis", "rediss", "unix"}:
        raise ConfigurationError(f"{given_in} must be a redis://, rediss:// or unix:// URL; for a cache file, "
                                 "use cache_path= (--cache-path) instead.")
    from .redis_store import RedisTokenStore  # noqa: PLC0415

    return RedisTokenStore(url)
