"""Where tokens come from: a password login, or a personal access token switched into an organization.

A source only builds requests; the manager sends them. A personal access token used as is needs
no source at all: it is sent unchanged and never renewed.

Each source names its tokens in the shared store with a key bound to the credential that opened
the session, so that a wrong password never gets a cached session. For a password the key holds
a salted scrypt hash (about 50 ms of work, done once per process), so a key read from a cache
file or from Redis does not make the password cheap to guess.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from . import api
from .config import Settings
from .errors import ConfigurationError, Hint
from .token import Token

# scrypt at 16 MiB and 2^14 rounds: OWASP's interactive floor scaled to a once-per-process cost.
_SCRYPT = {"n": 1 << 14, "r": 8, "p": 1, "maxmem": 64 << 20, "dklen": 32}


class Source(Protocol):
    """Something that can obtain a session token, and perhaps renew one."""

    @property
    def api_url(self) -> str: ...

    @property
    def key(self) -> str:
        """The store key: API URL, identity, organization and credential, hashed so none shows."""
        ...

    def obtain(self) -> api.Call:
        """The request that opens a new session."""
        ...

    def renew(self, token: Token) -> api.Call | None:
        """The request that renews `token`, or None when the only way is `obtain` again."""
        ...


@dataclass(frozen=True)
class PasswordLogin:
    api_url: str
    email: str
    password: str | None = field(repr=False)
    organization_id: str | None = None
    seon_fp: str | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        email = self.email.lower()
        # Salted with what identifies the account, so one hash cannot be tried against every user.
        credential = password_hash(self.password or "", f"{self.api_url}\n{email}")
        return cache_key(self.api_url, "email", email, self.organization_id, credential)

    def obtain(self) -> api.Call:
        if not self.password:
            raise ConfigurationError(f"No password for {self.email}.", Hint.PASSWORD)
        return api.login(self.api_url, self.email, self.password, self.organization_id, self.seon_fp)

    def renew(self, token: Token) -> api.Call | None:
        # An expired session cannot be refreshed (the API answers 401): log in again instead.
        return api.refresh(self.api_url, token.value)


@dataclass(frozen=True)
class OrganizationSwitch:
    """A personal access token exchanged for an organization-scoped session token."""

    api_url: str
    personal_token: str = field(repr=False)
    organization_id: str
    seon_fp: str | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        # A personal token is 64 random characters: a fast hash cannot be reversed by guessing.
        identity = hashlib.sha256(self.personal_token.encode()).hexdigest()
        return cache_key(self.api_url, "token", identity, self.organization_id, "")

    def obtain(self) -> api.Call:
        return api.switch(self.api_url, self.organization_id, self.personal_token, self.seon_fp)

    def renew(self, token: Token) -> api.Call | None:
        # The personal token is the long-lived credential: switching again is the renewal.
        return None


def source_for(settings: Settings, seon_fp: str | None) -> Source | None:
    """The source for these settings, or None for a personal access token used as is."""
    if settings.email:
        return PasswordLogin(settings.api_url, settings.email, settings.password, settings.organization_id, seon_fp)
    if settings.token and settings.organization_id:
        return OrganizationSwitch(settings.api_url, settings.token, settings.organization_id, seon_fp)
    return None


def cache_key(api_url: str, kind: str, identity: str, organization_id: str | None, credential: str) -> str:
    material = "\n".join((api_url, kind, identity, organization_id or "", credential))
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def password_hash(password: str, salt: str) -> str:
    """A deliberately slow hash of a password, computed once per process for each account."""
    # Remembered by a digest, so the process keeps no copy of the password beyond its KoyebAuth.
    memo = hashlib.sha256(f"{salt}\n{password}".encode()).digest()
    if (known := _hashes.get(memo)) is None:
        known = _hashes[memo] = hashlib.scrypt(password.encode(), salt=salt.encode(), **_SCRYPT).hex()
    return known


_hashes: dict[bytes, str] = {}
