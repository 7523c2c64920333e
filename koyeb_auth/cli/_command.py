"""The `koyeb-auth` command: a managed token for shell users and existing Koyeb tooling.

Kept light, so that scripts can call `koyeb-auth token` per request: this module loads argparse and
the errors only, and each command loads what it needs when it runs. A warm `token` reads the state
file and the cache (see `_account`) and never loads an HTTP client.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from .. import __version__, errors
from .. import _logs as logs
from .._secrets import ENVIRONMENT
from .._token import Token, format_timestamp
from ..errors import Hint
from ._grammar import build

if TYPE_CHECKING:
    import logging

    from ._account import Account, Options

EXIT_NO_TOKEN = 1
EXIT_USAGE = 2
# What a shell answers for a command it cannot run (found but not executable), or cannot find.
EXIT_CANNOT_RUN, EXIT_NOT_FOUND = 126, 127
EXIT_INTERRUPTED = 130
# 128 + SIGPIPE: what a shell reports for a writer whose reader quit (`koyeb-auth token | head -c0`).
EXIT_STDOUT_CLOSED = 141
# Distinct exit codes, so scripts can tell failures apart without parsing messages.
EXIT_CODES: tuple[tuple[type[errors.KoyebAuthError], int], ...] = (
    (errors.ConfigurationError, 3),
    (errors.InvalidCredentialsError, 4),
    (errors.AccessDeniedError, 4),
    (errors.RateLimitedError, 5),
    (errors.APIUnreachableError, 6),
    (errors.APIError, 6),
    (errors.LockTimeoutError, 7),
    (errors.TokenStoreError, 7),
)
# What the library's hints say to a Python caller, said to a shell user: flags and variables.
CLI_HINTS = {
    Hint.PASSWORD: "Set KOYEB_PASSWORD, or run `koyeb-auth login`.",
    Hint.CREDENTIALS: ("Run `koyeb-auth login --token`, set KOYEB_TOKEN (or KOYEB_EMAIL and KOYEB_PASSWORD), "
                       "or run `koyeb login` to write ~/.koyeb.yaml."),
    Hint.PERSONAL_TOKEN: ("Use a personal access token instead: create one in the Koyeb console (Settings, API), "
                          "then run `koyeb-auth login --token` or set KOYEB_TOKEN."),
    Hint.CACHE_PATH: "Or pass another --cache-path.",
    Hint.LOCK_TIMEOUT: "To wait longer, pass --lock-timeout SECONDS.",
    Hint.TIMEOUT: "To wait longer, pass --timeout SECONDS.",
    Hint.CA_CERTIFICATE: "Behind a TLS-inspecting proxy, set SSL_CERT_FILE to its CA certificate.",
}

# What `exec` removes from the child's environment: it gets KOYEB_TOKEN instead (and the store's
# URL, $KOYEB_AUTH_STORE, may hold Redis's password).
CREDENTIALS_KEPT_FROM_CHILD = frozenset({"KOYEB_EMAIL", "KOYEB_PASSWORD", "KOYEB_AUTH_STORE"})



def main(argv: Sequence[str] | None = None) -> int:
    """Run the `koyeb-auth` command with `argv` (default: `sys.argv[1:]`) and return its exit code.

    A KoyebAuthError is printed, not raised, and its kind of failure sets the exit code (see EXIT_CODES).
    """
    try:
        try:
            return _main(sys.argv[1:] if argv is None else argv)
        finally:
            sys.stdout.flush()  # here, where a reader that quit can be handled, rather than at exit
    except BrokenPipeError:
        return _stdout_closed()


def _main(argv: Sequence[str]) -> int:
    args = build(argv, COMMANDS, __version__).parse_args(argv)
    logs.when_made(_show_library_records)
    try:
        code: int = args.run(args)
    except errors.KoyebAuthError as exc:
        print(f"koyeb-auth: {explain(exc)}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


def exit_code(exc: errors.KoyebAuthError) -> int:
    """The exit code that tells `exc`'s kind of failure apart (see EXIT_CODES)."""
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)


def _stdout_closed() -> int:
    """End quietly when the reader of our output quit: Python ignores SIGPIPE, so the write raised
    BrokenPipeError instead of ending the process. Standard output goes to /dev/null, so that the
    interpreter's last flush at exit does not fail again on what is still buffered (as
    https://docs.python.org/3/library/signal.html#note-on-sigpipe recommends)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # an in-process caller's stdout, with no descriptor
        pass
    finally:
        os.close(devnull)
    return EXIT_STDOUT_CLOSED


def explain(exc: errors.KoyebAuthError) -> str:
    """The error's message, with its hint in the command's terms (flags, variables)."""
    return f"{exc.problem} {CLI_HINTS[exc.hint]}" if exc.hint is not None else str(exc)


# --- subcommands ---------------------------------------------------------------------------------


def cmd_token(args: argparse.Namespace) -> int:
    account = _account(args)
    token = _renewed(account) if args.refresh else account.token()
    if args.json or args.format == "json":
        expires = token.expires_at
        print(json.dumps({"token": token.value, "expires_at": format_timestamp(expires) if expires else None,
                          "expires_in_seconds": round(expires - time.time()) if expires else None}))
    else:
        print(token.value)
    return 0


def _renewed(account: Account) -> Token:
    """A token renewed now, even if the cached one looks valid (`token --refresh`, after a 401).

    Renewed the way a refused request renews it: one process at a time, and one that finds the
    token already replaced by a peer takes the peer's, so scripts that retry together renew once.
    """
    provider = account.provider()
    current = provider.cached()
    if current is None:
        return provider.get_token()
    renewed = provider.renew_rejected(current)
    if renewed is None:
        print("koyeb-auth: nothing to renew: a personal access token is used as is; if the API refuses it, it "
              "was revoked: create another in the Koyeb console (Settings, API).", file=sys.stderr)
        return current
    return renewed


def cmd_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise errors.ConfigurationError("Give the command to run after `--`, e.g. koyeb-auth exec -- koyeb apps list")
    env = {name: value for name, value in os.environ.items() if name not in CREDENTIALS_KEPT_FROM_CHILD}
    env.update(_for_the_child(_account(args)))
    try:
        return _run_as_this_process(command, env)
    except FileNotFoundError:
        missing = "no such file" if os.sep in command[0] else "command not found"  # in the directory, or on PATH
        print(f"koyeb-auth: {command[0]}: {missing}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except OSError as exc:  # not executable, a directory, not a format the system runs
        print(f"koyeb-auth: {command[0]}: cannot run: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN


def _for_the_child(account: Account) -> dict[str, str]:
    """The child gets a token, never the credentials that made it (as credential-exec tools do), and
    the API URL it is for, wherever it came from (a flag, a login): a child `koyeb` uses that API.
    The names of Koyeb's Python SDK are replaced too where they were set: its KOYEB_API_TOKEN may
    be the personal access token that made this token."""
    token = account.token().value
    child = {"KOYEB_TOKEN": token, "KOYEB_URL": account.api_url}
    child.update({"KOYEB_API_TOKEN": token} if os.environ.get("KOYEB_API_TOKEN") else {})
    child.update({"KOYEB_API_HOST": account.api_url} if os.environ.get("KOYEB_API_HOST") else {})
    return child


def _run_as_this_process(command: list[str], env: dict[str, str]) -> int:
    """Run `command` in place of this process where the platform can (POSIX): a process of ours
    waiting beside the child would keep the credentials in its own environment, which the child
    (or anything of this user) could read in /proc/<pid>/environ. Its exit code is the child's."""
    if os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvpe(command[0], command, env)  # noqa: S606 - the user's command; does not return
    import subprocess  # noqa: PLC0415 - each command loads what it needs

    return subprocess.call(command, env=env)  # noqa: S603 - the user's command


def cmd_login(args: argparse.Namespace) -> int:
    from ._login import describe, log_in  # noqa: PLC0415

    account, token = log_in(_options(args), ENVIRONMENT, sys.stdin, args.how)
    print(f"{describe(account)} {_describe_expiry(token)}")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    from ._login import log_out  # noqa: PLC0415

    account: Account | errors.ConfigurationError | None
    try:
        account = _configured(args)
    except errors.ConfigurationError:
        if not _profile_not_logged_in(args):
            raise
        account = None  # the profile named has no login: logged out already
    if account is None or isinstance(account, errors.ConfigurationError):
        print("Already logged out: no account is named or remembered.")
        return 0
    who = account.email or f"the {account.kind}"
    try:
        ended = log_out(account)
    except (errors.ConfigurationError, errors.LockTimeoutError, errors.TokenStoreError):
        raise  # a personal token (nothing to forget), or a cache that forgetting would fail on too
    except errors.KoyebAuthError as exc:
        _forget_here(account)
        print(f"koyeb-auth: logged out here only: {who}'s session was forgotten (removed from {account.store!r}), "
              f"but the API could not revoke it, so it stays valid until it expires. {explain(exc)}", file=sys.stderr)
        return exit_code(exc)
    if not ended:
        print(f"Already logged out: no session of {who} in {account.store!r}.")
        return 0
    print(f"Logged out {who}; the session was removed from {account.store!r}.")
    return 0


def _profile_not_logged_in(args: argparse.Namespace) -> bool:
    """True if a profile is named (--profile, else $KOYEB_AUTH_PROFILE) and has no login file: `logout`
    of a profile twice (the second time, the chain says it is not logged in) is no error."""
    from ..stores._file import FileTokenStore  # noqa: PLC0415
    from . import _state as state  # noqa: PLC0415

    named = args.profile or os.environ.get(state.PROFILE_VARIABLE)
    if not named or not state.PROFILE_NAME.fullmatch(named):
        return False
    return not os.path.lexists(state.path_for(FileTokenStore(args.cache_path).path, named))


def _forget_here(account: Account) -> None:
    """Drop the account's session from the store, and the record of its login: what logout does
    after the API revoked the session, done when the API could not be asked."""
    from ._login import _locked, log_out  # noqa: PLC0415

    assert account.source is not None  # log_out refuses a personal token before any call
    with _locked(account):
        if not account.foreign_session():
            account.store.delete(account.source.key)
    log_out(account)  # with no session left to revoke, it only forgets the remembered login


def cmd_status(args: argparse.Namespace) -> int:
    from ._status import profile_line, report, unconfigured  # noqa: PLC0415

    account = _configured(args)
    if isinstance(account, errors.ConfigurationError):  # still a report, in the shape scripts read
        status, code = unconfigured(explain(account)), exit_code(account)
    else:
        status, code = report(account, online=not args.offline, explain=explain)
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for name, value in status.items():
            shown = ", ".join(map(profile_line, value)) if isinstance(value, list) else value
            print(f"{name.replace('_', ' '):>20}: {'-' if shown is None else shown}")
    return code


def cmd_fake_api(args: argparse.Namespace) -> int:
    from ._fake_api import run_fake_api  # noqa: PLC0415

    return run_fake_api(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo  # noqa: PLC0415

    return run_demo(workers=args.workers, seconds=args.seconds, ttl=args.ttl, without=frozenset(args.without),
                    password=args.password)


# --- helpers -------------------------------------------------------------------------------------


def _options(args: argparse.Namespace) -> Options:
    from ._account import Options  # noqa: PLC0415

    return Options(args.api_url, args.cache_path, args.email, args.organization, args.timeout, args.lock_timeout,
                   args.store, args.profile)


def _account(args: argparse.Namespace) -> Account:
    from ._account import resolve  # noqa: PLC0415

    return resolve(_options(args), ENVIRONMENT)


def _configured(args: argparse.Namespace) -> Account | errors.ConfigurationError:
    """The account the flags, environment or last login name; if none does, the error that says so
    (for the commands that report it rather than fail: `status`, `logout`)."""
    try:
        return _account(args)
    except errors.ConfigurationError as exc:
        if exc.hint is not Hint.CREDENTIALS:
            raise
        return exc


def _describe_expiry(token: Token) -> str:
    if token.expires_at is None:
        return "The token does not expire."
    hours = (token.expires_at - time.time()) / 3600
    return f"The token expires at {format_timestamp(token.expires_at)} (in {hours:.1f} h); it is renewed automatically."


def _show_library_records(library: logging.Logger) -> None:
    """The library's warnings on stderr; and on a terminal, what a long wait is waiting for."""
    import logging  # noqa: PLC0415 - only once the library logs (a warm `token` never does)

    handler = _stderr_handler()
    handler.setStream(sys.stderr)  # this run's stderr (an in-process caller may have replaced it)
    library.addHandler(handler)
    if sys.stderr.isatty():
        logging.getLogger("koyeb_auth.wait").setLevel(logging.INFO)


@functools.cache  # one handler, however many times main() runs in a process
def _stderr_handler() -> logging.StreamHandler[TextIO]:
    import logging  # noqa: PLC0415

    class Lines(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            level = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
            return f"koyeb-auth: {level}{record.getMessage()}"

    handler = logging.StreamHandler()
    handler.setFormatter(Lines())
    return handler


COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str]] = {
    "token": (cmd_token, "Print a valid token, logging in or refreshing through the shared cache."),
    "exec": (cmd_exec, "Run a command with KOYEB_TOKEN set to a valid token."),
    "login": (cmd_login, "Log in with a personal access token (--token-stdin, --token) or an email and password "
                         "(prompted, no echo); remember it (--profile NAME) for the other commands and KoyebAuth()."),
    "logout": (cmd_logout, "Log out, remove the session from the shared cache, forget the last login."),
    "status": (cmd_status, "Who is logged in and until when, checked with one call to the API."),
    "fake-api": (cmd_fake_api, "Run the bundled fake Koyeb API in the foreground, for tests."),
    "demo": (cmd_demo, "Offline demo: N worker processes sharing tokens from one fake API, renewed live."),
}



if __name__ == "__main__":
    sys.exit(main())
