"""Where tokens come from: a password login, or a personal access token scoped to an organization.

A source only builds requests; the manager sends them. A personal access token used as is needs
no source at all: it is sent unchanged and never renewed.

Koyeb has deprecated login, refresh and the organization switch. Each source says which calls can
open a session, in order, and skips those the manager found withdrawn (404, 405 or 410): a
password session is then renewed by logging in again, and an organization token is asked for at
`POST /v1/organizations/{id}/access_token`, which is not deprecated.

Each source names its tokens in the shared store with a key of the API URL, the identity and the
organization, and says which stored sessions are its own (`owns`): a password session only if the
same password opened it, so that a wrong password never gets a cached session. A password session
carries a salted scrypt hash of its password (deliberately slow, done once per process), so a
hash read from a cache file or from Redis does not make the password cheap to guess. The hash is
not in the key: a process looks the session up at once, and derives the hash in the background
(`prepare`) while it waits for the lock or logs in, rather than before.
"""

from __future__ import annotations

import _thread
import os
import sys
from collections.abc import Set
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, get_args

from ._config import Settings
from ._secrets import shown_fields
from .errors import ConfigurationError, Hint

# The interpreter's own SHA-256 for the store keys: hashlib starts OpenSSL, which only a password's
# hash needs, and a warm `koyeb-auth token` with a personal access token would pay for it. hashlib
# where a build lacks it.
try:
    if sys.version_info >= (3, 12):
        from _sha2 import sha256 as _sha256
    else:
        from _sha256 import sha256 as _sha256  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - Pythons built without their own hashes
    from hashlib import sha256 as _sha256

if TYPE_CHECKING:
    import threading

    # Loaded by the calls that build requests: a `koyeb-auth token` that finds its token cached
    # needs only the store key (the session API module imports email.utils and more).
    from . import _session_api as api
    from ._token import Token

OrganizationTokenMode = Literal["auto", "switch", "access_token"]
ORGANIZATION_TOKEN_MODES: tuple[str, ...] = get_args(OrganizationTokenMode)
# The access token endpoint's own default, and its ceiling.
DEFAULT_ORGANIZATION_TOKEN_VALIDITY = 3600.0
MAX_ORGANIZATION_TOKEN_VALIDITY = 24 * 3600.0

# scrypt at 16 MiB and 2^14 rounds: OWASP's interactive floor scaled to a once-per-process cost.
_SCRYPT = {"n": 1 << 14, "r": 8, "p": 1, "maxmem": 64 << 20, "dklen": 32}


class Source(Protocol):
    """Something that can obtain a session token, and perhaps renew one."""

    @property
    def api_url(self) -> str: ...

    @property
    def key(self) -> str:
        """The store key: API URL, identity and organization (and a token's hash), hashed."""
        ...

    def prepare(self, *, wait: bool = False) -> bool:
        """Derive what `owns` and `opened` need (a password's hash): in the background, or with
        `wait` until it is done. True once they answer without waiting."""
        ...

    def owns(self, token: Token) -> bool:
        """Whether a session found under `key` is this source's to use."""
        ...

    def opened(self, token: Token) -> Token:
        """`token`, a session this source just opened, as the store keeps it (see `owns`)."""
        ...

    def obtain(self, withdrawn: Set[str]) -> tuple[api.Call, ...]:
        """The requests that can open a new session, best first: each next one is for when the one
        before answers that it is withdrawn. Never empty."""
        ...

    def renew(self, token: Token, withdrawn: Set[str]) -> api.Call | None:
        """The request that renews `token`, or None when the only way is `obtain` again."""
        ...


class PasswordLogin(NamedTuple):
    api_url: str
    email: str
    password: str | None
    organization_id: str | None = None
    seon_fp: str | None = None

    def __repr__(self) -> str:
        return shown_fields("PasswordLogin", zip(self._fields, self, strict=True), {"password", "seon_fp"})

    @property
    def key(self) -> str:
        return cache_key(self.api_url, "email", self.email.lower(), self.organization_id, "")

    def prepare(self, *, wait: bool = False) -> bool:
        # An email alone owns no session and opens none: no hash to derive.
        return not self.password or self._hash(wait=wait) is not None

    def owns(self, token: Token) -> bool:
        # Only the password that opened a session may use it. A session with no hash was opened by
        # `koyeb-auth login` before the hash was kept with the session, or planted: not ours. Nor is
        # any session an email without a password's: the hash of "" is anyone's to compute.
        if token.password_hash is None or not self.password:
            return False
        mine = self._hash(wait=True)
        import hmac  # noqa: PLC0415 - see the SHA-256 above: only a password needs it

        return mine is not None and hmac.compare_digest(token.password_hash, mine)

    def opened(self, token: Token) -> Token:
        mine = self._hash(wait=True)
        return token if mine is None else token.replace(password_hash=mine)

    def _hash(self, *, wait: bool) -> str | None:
        """The password's hash (see `password_hash`); None if it cannot be derived (no memory for
        scrypt's 16 MiB, an OpenSSL without scrypt). Then this source adopts no stored session and
        gives the one it opens to no one, rather than fail once its login is done: that lost a
        session at every call."""
        try:
            return password_hash(self.password or "", password_salt(self.api_url, self.email), wait=wait)
        except Exception as exc:  # whatever scrypt raises, the process goes on unshared
            from ._logs import warn_once  # noqa: PLC0415 - only on this failure

            warn_once("password hash", "Could not derive the password's hash (%s): this process shares no "
                      "session with the others", type(exc).__name__)
            return None

    def obtain(self, withdrawn: Set[str]) -> tuple[api.Call, ...]:
        from . import _session_api as api  # noqa: PLC0415 - see the imports

        if not self.password:
            raise ConfigurationError(f"No password for {self.email}.", Hint.PASSWORD)
        # No way around a withdrawn login: its error says to use a personal access token.
        return (api.login(self.api_url, self.email, self.password, self.organization_id, self.seon_fp),)

    def renew(self, token: Token, withdrawn: Set[str]) -> api.Call | None:
        from . import _session_api as api  # noqa: PLC0415 - see the imports

        # An expired session cannot be refreshed (the API answers 401): log in again instead. So
        # does a session whose refresh endpoint is gone, without asking it again each time.
        return None if "refresh" in withdrawn else api.refresh(self.api_url, token.value)


class OrganizationToken(NamedTuple):
    """A personal access token exchanged for an organization-scoped token.

    `mode` "switch" asks the (deprecated) organization switch, "access_token" the access token
    endpoint (a token valid `validity` seconds), and "auto" the switch until it answers that it is
    withdrawn, then the access token endpoint.
    """

    api_url: str
    personal_token: str
    organization_id: str
    seon_fp: str | None = None
    mode: OrganizationTokenMode = "auto"
    validity: float = DEFAULT_ORGANIZATION_TOKEN_VALIDITY

    def __repr__(self) -> str:
        return shown_fields("OrganizationToken", zip(self._fields, self, strict=True), {"personal_token", "seon_fp"})

    @property
    def key(self) -> str:
        # A personal token is 64 random characters: a fast hash cannot be reversed by guessing.
        identity = _sha256(self.personal_token.encode()).hexdigest()
        return cache_key(self.api_url, "token", identity, self.organization_id, "")

    def prepare(self, *, wait: bool = False) -> bool:
        return True  # the key binds the personal token: every session under it is ours

    def owns(self, token: Token) -> bool:
        return True

    def opened(self, token: Token) -> Token:
        return token

    def obtain(self, withdrawn: Set[str]) -> tuple[api.Call, ...]:
        from . import _session_api as api  # noqa: PLC0415 - see the imports

        switch = api.switch(self.api_url, self.organization_id, self.personal_token, self.seon_fp)
        access = api.access_token(self.api_url, self.organization_id, self.personal_token, self.validity)
        calls = {"auto": (switch, access), "switch": (switch,), "access_token": (access,)}[self.mode]
        # A peer's cache entry may say the switch is gone: "auto" goes straight to the access
        # token; "switch", which the user asked for, asks anyway and reports what it gets.
        return tuple(call for call in calls if call.action not in withdrawn) or calls

    def renew(self, token: Token, withdrawn: Set[str]) -> api.Call | None:
        # The personal token is the long-lived credential: asking again is the renewal.
        return None


def source_for(
    settings: Settings,
    seon_fp: str | None,
    mode: OrganizationTokenMode = "auto",
    validity: float = DEFAULT_ORGANIZATION_TOKEN_VALIDITY,
) -> Source | None:
    """The source for these settings, or None for a personal access token used as is."""
    if settings.session_key:
        # The session of a password `koyeb-auth login`: renewed, never opened again (no password).
        from .cli._state import DEFAULT_PROFILE, LastLogin  # noqa: PLC0415

        return LastLogin(settings.api_url, settings.email, settings.organization_id, settings.session_key,
                         profile=settings.profile or DEFAULT_PROFILE)
    if settings.email:
        return PasswordLogin(settings.api_url, settings.email, settings.password, settings.organization_id, seon_fp)
    if settings.token and settings.organization_id:
        return OrganizationToken(settings.api_url, settings.token, settings.organization_id, seon_fp, mode, validity)
    return None


def check_organization_token(mode: str, validity: float) -> None:
    """ConfigurationError unless `mode` is a known one and `validity` is within the API's limits."""
    if mode not in ORGANIZATION_TOKEN_MODES:
        raise ConfigurationError(f"organization_token must be one of {', '.join(ORGANIZATION_TOKEN_MODES)}, "
                                 f"not {mode!r}.")
    if not 0 < validity <= MAX_ORGANIZATION_TOKEN_VALIDITY:
        raise ConfigurationError("organization_token_validity must be more than 0 and at most 86400 seconds "
                                 "(24 h, the API's limit).")


def cache_key(api_url: str, kind: str, identity: str, organization_id: str | None, credential: str) -> str:
    material = "\n".join((api_url, kind, identity, organization_id or "", credential))
    return str(_sha256(material.encode()).hexdigest()[:32])


def password_salt(api_url: str, email: str) -> str:
    # What identifies the account, so that one hash cannot be tried against every user.
    return f"{api_url}\n{email.lower()}"


def password_hash(password: str, salt: str, *, wait: bool = True) -> str | None:
    """A deliberately slow hash of a password, derived once per process for each account.

    With `wait`, derived now, or waited for if a thread is deriving it. Without, None until it is
    derived, and its derivation started in a thread (scrypt releases the GIL) unless one is under
    way: a cold process needs it only once it finds or opens a session. At most
    MAX_BACKGROUND_HASHES threads at once (16 MiB each): beyond, or with no thread to be had, the
    caller derives it when it waits for it.
    """
    memo = _memo(password, salt)
    if (known := _hashes.get(memo)) is not None:
        return known
    if wait:
        if (thread := _deriving.get(memo)) is not None:
            # Registered once started (a forked child forgets the parent's): never joined too early.
            thread.join()
        if (known := _hashes.get(memo)) is None:
            known = _scrypt(password, salt)
            _keep(memo, known)
        return known
    with _hashing:
        # Under the lock, as `_derive` ends: a thread that just finished is not started again.
        if (known := _hashes.get(memo)) is not None or memo in _deriving or len(_deriving) >= MAX_BACKGROUND_HASHES:
            return known
        import threading  # noqa: PLC0415 - see the SHA-256 above: only a password needs it

        thread = threading.Thread(target=_derive, args=(memo, password, salt), daemon=True,
                                  name="koyeb-auth password hash")
        try:
            thread.start()  # before `password_hash` can see it: a thread not yet started cannot be joined
        except RuntimeError:  # no thread to be had (a limit, interpreter shutdown)
            return None
        _deriving[memo] = thread
    return None


def _derive(memo: bytes, password: str, salt: str) -> None:
    try:
        _keep(memo, _scrypt(password, salt))
    except BaseException:  # noqa: S110 - the caller that needs the hash derives it, and gets the error
        pass
    finally:
        with _hashing:
            _deriving.pop(memo, None)


def _scrypt(password: str, salt: str) -> str:
    import hashlib  # noqa: PLC0415 - see the SHA-256 above

    return hashlib.scrypt(password.encode(), salt=salt.encode(), **_SCRYPT).hex()


def derived_hash(password: str, salt: str) -> str | None:
    """The hash of `password` this process has derived (or adopted), without deriving it."""
    return _hashes.get(_memo(password, salt))


def adopt_hash(password: str, salt: str, derived: str) -> None:
    """Take the hash a parent process derived for `password` (carried to the workers of its pool by
    a pickle that carries the password itself), so that each worker does not derive it again."""
    _keep(_memo(password, salt), derived)


def _keep(memo: bytes, derived: str) -> None:
    with _hashing:
        if memo not in _hashes and len(_hashes) >= MAX_REMEMBERED_HASHES:
            del _hashes[next(iter(_hashes))]  # the oldest: a service that takes its users' passwords
        _hashes[memo] = derived


def _memo(password: str, salt: str) -> bytes:
    # Hashes are remembered by a digest, so the process keeps no copy of the password beyond its
    # KoyebAuth. The digest never leaves the process: a fast hash of the password would make it
    # cheap to guess.
    # The salt's length first: no other salt and password make the same text.
    return bytes(_sha256(f"{len(salt)}:{salt}{password}".encode()).digest())


# Bounds: a process that hashes many passwords (a service building a KoyebAuth per request) keeps
# a few, and derives a few at once in the background.
MAX_BACKGROUND_HASHES = 4
MAX_REMEMBERED_HASHES = 1024
_hashes: dict[bytes, str] = {}
_deriving: dict[bytes, threading.Thread] = {}
_hashing = _thread.allocate_lock()


def _reset_after_fork() -> None:
    # The child has none of the parent's threads: a lock one of them held stays held, and a
    # derivation under way in the parent never ends here.
    global _hashing
    _hashing = _thread.allocate_lock()
    _deriving.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
