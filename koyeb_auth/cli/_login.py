"""`koyeb-auth login` and `logout`: a new session, or a personal access token, made the one every
command (and a `KoyebAuth()`) uses, for the default profile or a named one; and its end.

The login always reaches the API, whatever the cache holds: a wrong password or a revoked token
must fail here, and a right one replaces the cached session. Prompts go to the user's terminal,
even when standard input is a pipe (`--password-stdin`); without a terminal (CI, cron) a missing
answer is an error, never a read of the wrong stream.
"""

from __future__ import annotations

import getpass
import io
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Literal, TextIO

from .. import _session_api as api
from .._config import Config, Credentials, Settings, personal_token
from .._engine import locked
from .._secrets import Redacted
from .._sources import OrganizationToken, PasswordLogin
from .._token import Token
from .._transport import Network, SessionClient
from ..cli import _state as state
from ..errors import ConfigurationError, Hint, InvalidCredentialsError, KoyebAuthError, TokenStoreError
from ._account import Account, Options, store_for

__all__ = ["LoginWith", "ask", "describe", "log_in", "log_out"]

# How the command was told to log in: a password (flags, environment, prompts), a personal access
# token from standard input (--token-stdin), or one typed at a prompt (--token).
LoginWith = Literal["password", "password-stdin", "token-stdin", "token"]
# How `_session_api` ends the message of a refused login, in the library's terms.
_LIBRARY_LOGIN_HINT = "Check the email and password (KOYEB_EMAIL, KOYEB_PASSWORD)."


def log_in(options: Options, environ: Mapping[str, str], stdin: TextIO, how: LoginWith) -> tuple[Account, Token]:
    """Log in as `how` says, cache the new token for every process, and remember the login (in
    `options.profile`, else the default profile) for the next commands and `KoyebAuth()`."""
    # The profile is chosen as for every command: --profile, else $KOYEB_AUTH_PROFILE, else the default.
    if options.profile:
        options = options._replace(profile=state.profile_name(options.profile, "--profile"))
    elif named := environ.get(state.PROFILE_VARIABLE):
        options = options._replace(profile=state.profile_name(named, state.PROFILE_VARIABLE))
    if how in ("token", "token-stdin"):
        if options.email:
            raise ConfigurationError(f"--email is for a password login: drop it, or --{how}.")
        return _log_in_with_token(options, environ, _token_given(stdin, how))
    return _log_in_with_password(options, environ, stdin, how == "password-stdin")


def describe(account: Account) -> str:
    """Who logged in, for the message of `login`: never the token."""
    who = f"as {account.email}" if account.email else "with a personal access token"
    where = f" to {account.api_url}" + (f" (organization {account.organization_id})" if account.organization_id else "")
    profile = "" if account.profile in (None, state.DEFAULT_PROFILE) else f", profile {account.profile!r}"
    return f"Logged in {who}{where}{profile}."


def _token_given(stdin: TextIO, how: LoginWith) -> Redacted:
    if how == "token-stdin":
        # Redacted as soon as it is read: a traceback's locals never show it.
        token = Redacted(stdin.readline().strip())
        if not token:
            raise ConfigurationError("--token-stdin read no token: standard input was empty.")
        return personal_token(token, "standard input (--token-stdin)")
    typed = Redacted(ask("Personal access token: ", "token", "--token-stdin or set KOYEB_TOKEN", secret=True))
    return personal_token(typed, "the token typed at the prompt (--token)")


def _log_in_with_token(options: Options, environ: Mapping[str, str], token: Redacted) -> tuple[Account, Token]:
    """Check the personal access token with the API (for an organization, exchange it for one of
    its tokens, which is cached), then keep it in the profile's login file."""
    given = Credentials(token=token, organization_id=options.organization_id, api_url=options.api_url)
    settings = Config(environ).settings(given)
    profile = options.profile or state.DEFAULT_PROFILE
    account = Account(api_url=settings.api_url, email=None, organization_id=settings.organization_id,
                      found_in="standard input", source=None, store=store_for(options, environ), options=options,
                      personal_token=token, profile=profile)
    login = state.LastLogin(settings.api_url, None, settings.organization_id, "", token, profile)
    if settings.organization_id is None:
        _check_token(settings, options.timeout)
        with _locked(account):
            state.save(account.state_path, login)
        return account, Token(token, obtained_at=0.0)
    # The access token endpoint, not the deprecated switch: its token is the one `token` then prints.
    source = OrganizationToken(settings.api_url, token, settings.organization_id, mode="access_token")
    token_of_organization = _obtain(source.obtain(frozenset())[0], options.timeout)
    with _locked(account):
        account.store.save(source.key, token_of_organization)
        state.save(account.state_path, login)
    return account, token_of_organization


def _check_token(settings: Settings, timeout: float) -> None:
    """InvalidCredentialsError unless the API takes the personal access token (`api.check`, a cheap
    authenticated GET; a 403 still says the token authenticates)."""
    assert settings.token is not None
    call = api.check(settings.api_url, settings.token)
    reply = SessionClient(Network(), timeout).send(call)
    if reply.status == 401:
        raise InvalidCredentialsError(f"The API at {settings.api_url} refused the personal access token (HTTP 401): "
                                      "it is revoked, expired or mistyped. Create one in the Koyeb console "
                                      "(Settings, API), and pass it again.")
    if reply.status >= 300 and reply.status != 403:
        raise api.error_for(call, reply)


def _signs_in_through_workos(source: PasswordLogin, timeout: float) -> bool:
    try:
        reply = SessionClient(Network(), timeout).send(api.login_method(source.api_url, source.email))
    except KoyebAuthError:  # unreachable: the refusal stands as it is
        return False
    return api.signs_in_through_workos(reply)


def _obtain(call: api.Call, timeout: float) -> Token:
    sent = time.time()
    reply = SessionClient(Network(), timeout).send(call)
    return api.token_from(call, reply, sent, time.time())


def _log_in_with_password(options: Options, environ: Mapping[str, str], stdin: TextIO,
                          password_stdin: bool) -> tuple[Account, Token]:
    """Log in with the email and password given (flags, environment, standard input or prompts)."""
    email_from = "--email" if options.email else "KOYEB_EMAIL" if environ.get("KOYEB_EMAIL") else "the Email: prompt"
    email = options.email or environ.get("KOYEB_EMAIL") or ask("Email: ", "email", "--email or set KOYEB_EMAIL")
    # Redacted as soon as it is read: a traceback's locals never show it.
    if password_stdin:
        password_from = "standard input (--password-stdin)"
        password = Redacted(stdin.readline().rstrip("\r\n"))
        if not password:
            raise ConfigurationError("--password-stdin read no password: standard input was empty.")
    else:
        password_from = "KOYEB_PASSWORD" if environ.get("KOYEB_PASSWORD") else "the Password: prompt"
        password = Redacted(environ.get("KOYEB_PASSWORD") or ask("Password: ", "password",
                                                                 "--password-stdin or set KOYEB_PASSWORD", secret=True))
    given = Credentials(email, password, organization_id=options.organization_id, api_url=options.api_url)
    settings = Config(environ).settings(given)
    source = PasswordLogin(settings.api_url, email, password, settings.organization_id)
    source.prepare()  # the password's hash, derived while the login is in flight
    token = _refused_names_the_sources(source, options.timeout, f"the email ({email_from}) and the password "
                                                                 f"({password_from})")
    account = Account.configured(settings, source, store_for(options, environ), options)
    account.profile = options.profile or state.DEFAULT_PROFILE
    token = source.opened(token)
    with _locked(account):
        account.store.save(source.key, token)
        _check_kept(account, source.key, token)
        state.save(account.state_path, state.LastLogin(settings.api_url, email, settings.organization_id, source.key,
                                                       profile=account.profile))
    return account, token


def _refused_names_the_sources(source: PasswordLogin, timeout: float, sources: str) -> Token:
    """The login's token; a refusal's hint names where the email and password came from (a flag,
    a variable, a prompt), not the variables the library reads, or that the account signs in
    through WorkOS, which no password can."""
    try:
        return _obtain(source.obtain(frozenset())[0], timeout)
    except InvalidCredentialsError as exc:
        if not exc.problem.endswith(_LIBRARY_LOGIN_HINT):
            raise
        problem = exc.problem.removesuffix(_LIBRARY_LOGIN_HINT) + f"Check {sources}."
    if _signs_in_through_workos(source, timeout):
        raise api.workos_account(source.email)
    raise InvalidCredentialsError(problem) from None  # outside the handler: no context to show


def _check_kept(account: Account, key: str, token: Token) -> None:
    """TokenStoreError unless the store now holds `token`: a cache file that cannot be written
    drops it after a warning, which would leave the next commands asking for the password."""
    kept = account.store.load(key)
    if kept is None or kept.value != token.value:
        raise TokenStoreError(f"Logged in, but the session could not be kept in {account.store!r} (see the "
                              "warning above), so the next commands could not use it. Fix the cache's "
                              "directory (permissions, free space, a read-only file system).", Hint.CACHE_PATH)


def log_out(account: Account) -> bool:
    """End the account's session and drop it from the cache; forget the last login if it was this one.

    The login of a personal access token is forgotten (the token itself is revoked in the console).
    False if there was no session to end."""
    if account.profile is not None and account.email is None:
        return _forget_token_login(account)
    if account.source is None:
        raise ConfigurationError("A personal access token cannot be logged out: revoke it in the Koyeb console "
                                 "(Settings, API), and unset KOYEB_TOKEN.")
    ended = account.provider().logout()
    key = account.source.key
    with _locked(account):
        last = state.load(account.state_path)
        # Not with another password's session still cached (logout leaves it): that login stands.
        if last is not None and last.key == key and not account.foreign_session():
            state.forget(account.state_path)
    return ended


def _forget_token_login(account: Account) -> bool:
    with _locked(account):
        if account.source is not None:
            account.store.delete(account.source.key)
        if state.load(account.state_path, account.profile or state.DEFAULT_PROFILE) is None:
            return False
        state.forget(account.state_path)
    return True


@contextmanager
def _locked(account: Account) -> Iterator[None]:
    """Hold the token lock, which every writer of the cache and of the state file takes."""
    with locked(account.store, account.options.lock_timeout):
        yield


def ask(prompt: str, what: str, otherwise: str, secret: bool = False) -> str:
    """`what` (a word), typed on the user's terminal (not echoed if `secret`), even when standard
    input is a pipe. ConfigurationError, naming `otherwise` (how else to give it), when there is no
    terminal, or the user ends the input (Ctrl-D) or answers nothing.
    """
    tty = _open_tty()
    if tty is None and not sys.stdin.isatty():
        raise ConfigurationError(f"No {what} given, and no terminal to ask on: pass {otherwise}.")
    try:
        answer = _typed(tty, prompt, secret)
    except EOFError:
        print(file=sys.stderr)  # Ctrl-D leaves the cursor after the prompt
        answer = ""
    finally:
        if tty is not None:
            tty.close()
    if not answer.strip():
        raise ConfigurationError(f"Login cancelled: no {what} entered. Type it, or pass {otherwise}.")
    return answer if secret else answer.strip()


def _open_tty() -> TextIO | None:
    """The controlling terminal, where getpass itself prompts; None without one (CI, cron, Windows)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    return io.TextIOWrapper(io.FileIO(fd, "w+"), encoding=sys.stdin.encoding or "utf-8")


def _typed(tty: TextIO | None, prompt: str, secret: bool) -> str:
    if secret:
        return getpass.getpass(prompt)  # on the terminal, wherever the platform keeps it
    return _read_line(tty, prompt) if tty is not None else input(prompt)


def _read_line(tty: TextIO, prompt: str) -> str:
    tty.write(prompt)
    tty.flush()
    line = tty.readline()
    if not line:
        raise EOFError
    return line
