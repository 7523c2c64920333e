"""Where tokens come from: a password login, or a personal access token switched into an organization.

A source only builds requests; the manager sends them. A personal access token used as is needs
no source at all: it is sent unchanged and never renewed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

from . import api
from .config import Settings
from .errors import ConfigurationError
from .token import Token


class Source(Protocol):
    """Something that can obtain a session token, and perhaps renew one."""

    @property
    def api_url(self) -> str: ...

    @property
    def key(self) -> str:
        """The cache key: API URL, identity and organization, hashed so no email or secret shows."""
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
        return cache_key(self.api_url, "email", self.email.lower(), self.organization_id)

    def obtain(self) -> api.Call:
        if not self.password:
            raise ConfigurationError(f"No password for {self.email}: pass password= or set KOYEB_PASSWORD.")
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
        identity = hashlib.sha256(self.personal_token.encode()).hexdigest()
        return cache_key(self.api_url, "token", identity, self.organization_id)

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


def cache_key(api_url: str, kind: str, identity: str, organization_id: str | None) -> str:
    material = "\n".join((api_url, kind, identity, organization_id or ""))
    return hashlib.sha256(material.encode()).hexdigest()[:32]
