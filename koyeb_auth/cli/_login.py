"""`koyeb-auth login` and `logout`: a new session with the credentials given, made the one every
command uses; and its end.

The login always reaches the API, whatever the cache holds: a wrong password must fail here, and a
right one replaces the cached session. Prompts go to the user's terminal, even when standard input
is a pipe (`--password-stdin`); without a terminal (CI, cron) a missing answer is an error, never
a read of the wrong stream.
"""

from __future__ import annotations

import getpass
import io
import os
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TextIO

from .. import _session_api as api
from .._config import Config, Credentials
from .._engine import INSIDE, Gate, Wait
from .._secrets import Redacted
from .._sources import PasswordLogin
from .._token import Token
from .._transport import Network, SessionClient
from ..cli import _state as state
from ..errors import ConfigurationError, Hint, TokenStoreError
from ._account import Account, Options, store_for

__all__ = ["ask", "log_in", "log_out"]


def log_in(options: Options, environ: Mapping[str, str], stdin: TextIO, password_stdin: bool) -> tuple[Account, Token]:
    """Log in with the email and password given (flags, environment, standard input or prompts),
    cache the new session for every process, and remember the account for the next commands."""
    email = options.email or environ.get("KOYEB_EMAIL") or ask("Email: ", "email", "--email or set KOYEB_EMAIL")
    # Redacted as soon as it is read: a traceback's locals never show it.
    if password_stdin:
        password = Redacted(stdin.readline().rstrip("\r\n"))
        if not password:
            raise ConfigurationError("--password-stdin read no password: standard input was empty.")
    else:
        password = Redacted(environ.get("KOYEB_PASSWORD") or ask("Password: ", "password",
                                                                 "--password-stdin or set KOYEB_PASSWORD", secret=True))
    given = Credentials(email, password, organization_id=options.organization_id, api_url=options.api_url)
    settings = Config(environ).settings(given)
    source = PasswordLogin(settings.api_url, email, password, settings.organization_id)
    (call,) = source.obtain(frozenset())
    sent = time.time()
    reply = SessionClient(Network(), options.timeout).send(call)
    token = api.token_from(call, reply, sent, time.time())
    account = Account.configured(settings, source, store_for(options, environ), options)
    with _locked(account, source.key):
        account.store.save(source.key, token)
        _check_kept(account, source.key, token)
        state.save(account.state_path, state.LastLogin(settings.api_url, email, settings.organization_id, source.key))
    return account, token


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

    False if there was no session to end."""
    if account.source is None:
        raise ConfigurationError("A personal access token cannot be logged out: revoke it in the Koyeb console "
                                 "(Settings, API), and unset KOYEB_TOKEN.")
    ended = account.provider().logout()
    key = account.source.key
    with _locked(account, key):
        last = state.load(account.state_path)
        if last is not None and last.key == key:
            state.forget(account.state_path)
    return ended


@contextmanager
def _locked(account: Account, key: str) -> Iterator[None]:
    """Hold the token lock, which every writer of the cache and of the state file takes."""
    lock_timeout = account.options.lock_timeout
    with Gate(account.store, key, lock_timeout).entry(Wait(True, time.monotonic() + lock_timeout)) as admission:
        assert admission == INSIDE
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
