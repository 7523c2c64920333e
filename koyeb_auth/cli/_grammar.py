"""The grammar of the `koyeb-auth` command: its commands' options, help texts and examples.

Only the command that runs gets a parser built (all of them for the top-level help or a wrong
name): a warm `koyeb-auth token` builds one parser, not every one with its gettext lookups.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

__all__ = ["EXAMPLES", "build"]

EXIT_CODES_HELP = """\
exit codes:
  0    success (exec: the command's own exit code)
  1    no usable token (status: none cached, or the API refused it)
  2    usage: unknown command or option
  3    configuration: no credentials, nothing typed at a prompt, no terminal to ask on
  4    the API refused the credentials, or denied access
  5    rate limited by the API
  6    the API is unreachable or failing
  7    the token lock timed out, or the cache or state file cannot be used
  126  exec: the command was found but cannot be run
  127  exec: the command was not found
  141  standard output was closed early (e.g. `| head`), as for a process ended by SIGPIPE
  130  interrupted (Ctrl-C)"""

# The fake API's demo account (koyeb_auth.testing.FakeKoyebAPI), written out so that --help does
# not load the fake's HTTP server; tests/test_cli.py checks that they agree.
FAKE_CREDENTIALS = "email demo@koyeb.com and password demo-password, or a personal access token of 64 letters k"

EXAMPLES = {
    "token": 'curl -H "Authorization: Bearer $(koyeb-auth token)" https://app.koyeb.com/v1/apps',
    "exec": "koyeb-auth exec -- koyeb apps list",
    "login": "printf '%s' \"$PASSWORD\" | koyeb-auth login --email me@example.com --password-stdin",
    "logout": "koyeb-auth logout",
    "status": "koyeb-auth status --json",
    "fake-api": "koyeb-auth fake-api --port 8000 --ttl 60 --latency 0.2 --fail api:2 --without login",
    "demo": "koyeb-auth demo --workers 8 --seconds 10 --ttl 3",
}


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0")
    return value


def build(argv: Sequence[str], commands: Mapping[str, tuple[Callable[[argparse.Namespace], int], str]],
          version: str) -> argparse.ArgumentParser:
    """The parser of `argv`: `commands` maps each command's name to what runs it and its summary."""
    hidden = _maybe_secret(argv)
    parser = _Parser(
        prog="koyeb-auth", epilog=EXIT_CODES_HELP, formatter_class=_Help, hidden=hidden,
        description="A managed Koyeb API token: logs in once, refreshes before expiry, shared by every process.",
    )
    parser.add_argument("--version", action="version", version=f"koyeb-auth {version}")
    subparsers = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    chosen = next((arg for arg in argv if not arg.startswith("-")), "")
    for name in [chosen] if chosen in commands else list(commands):
        run, summary = commands[name]
        sub = subparsers.add_parser(name, help=summary, description=summary, epilog=f"example:\n  {EXAMPLES[name]}",
                                    formatter_class=_Help, hidden=hidden)
        sub.set_defaults(run=run)
        _OPTIONS[name](sub)
    return parser


# What a usage error of `login` says instead of argparse's message, when that would show a value.
_HIDDEN_ERROR = ("a value on the command line is not one `login` takes (not shown: it may be a token or a "
                 "password). Pass a personal access token on standard input (--token-stdin) or at the prompt "
                 "(--token), a password with --password-stdin or KOYEB_PASSWORD; see `koyeb-auth login --help`.")


def _maybe_secret(argv: Sequence[str]) -> tuple[str, ...]:
    """The words of a `login` command line that may be a token or a password: all but the command
    and the option names (`--token=VALUE` gives VALUE)."""
    if "login" not in argv:
        return ()
    words = (arg.partition("=")[2] if arg.startswith("--") else arg for arg in argv)
    return tuple(word for word in words if word and word != "login")


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors never show `hidden`: `login --token $KOYEB_TOKEN` in a
    CI script would otherwise have "unrecognized arguments: <the token>" printed to the job's log."""

    def __init__(self, *args: Any, hidden: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hidden = hidden

    def error(self, message: str) -> NoReturn:
        super().error(_HIDDEN_ERROR if any(word in message for word in self.hidden) else message)


class _Help(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, told the terminal's width. argparse makes one for each option it adds;
    without a width, each asks shutil, whose import (with zlib, bz2 and lzma) a warm
    `koyeb-auth token` does without. The width is found by shutil's rule: $COLUMNS,
    else the terminal's, else 80."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_columns() - 2)  # the 2 that argparse takes off shutil's width


def _columns() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):  # no stdout, a closed or detached one, not a terminal
        return 80


def _account_options(sub: argparse.ArgumentParser) -> None:
    """The options of every command that works with an account."""
    sub.add_argument("--api-url", help="API URL (default $KOYEB_URL, $KOYEB_API_HOST, the login's, ~/.koyeb.yaml, "
                                       "https://app.koyeb.com)")
    sub.add_argument("--cache-path", help="the shared token cache file (default: in the user cache directory)")
    sub.add_argument("--email", help="account email (default $KOYEB_EMAIL, else the last `koyeb-auth login`); "
                                     "the password comes from $KOYEB_PASSWORD")
    sub.add_argument("--organization", help="organization id (default $KOYEB_ORGANIZATION)")
    sub.add_argument("--profile", metavar="NAME", help="the login of `koyeb-auth login --profile NAME`, where "
                                                       "`login` keeps it (default $KOYEB_AUTH_PROFILE, else the "
                                                       "default profile)")
    sub.add_argument("--store", metavar="URL", help="share the token through the Redis at this redis:// or "
                                                    "rediss:// URL (default $KOYEB_AUTH_STORE)")
    sub.add_argument("--timeout", type=_seconds, default=15.0, metavar="SECONDS",
                     help="limit on each call to the API (default 15)")
    sub.add_argument("--lock-timeout", type=_seconds, default=60.0, metavar="SECONDS",
                     help="limit on waiting for another process's login or refresh (default 60)")


def _token_options(sub: argparse.ArgumentParser) -> None:
    _account_options(sub)
    _json_option(sub, "token, expires_at, expires_in_seconds (default: the token alone)")
    # The spelling before --json, kept working (hidden) for the scripts that use it.
    sub.add_argument("--format", choices=("text", "json"), default="text", help=argparse.SUPPRESS)
    sub.add_argument("--refresh", action="store_true",
                     help="renew the token now, even if it looks valid: after the API refused it (HTTP 401)")


def _exec_options(sub: argparse.ArgumentParser) -> None:
    _account_options(sub)
    sub.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments, after --")


def _login_options(sub: argparse.ArgumentParser) -> None:
    _account_options(sub)
    how = sub.add_mutually_exclusive_group()
    how.add_argument("--token-stdin", dest="how", action="store_const", const="token-stdin",
                     help="log in with a personal access token read from standard input (checked with the API, "
                          "kept in a private file)")
    how.add_argument("--token", dest="how", action="store_const", const="token",
                     help="log in with a personal access token typed at a prompt (no echo)")
    how.add_argument("--password-stdin", dest="how", action="store_const", const="password-stdin",
                     help="read the password from standard input")
    sub.set_defaults(how="password")


def _status_options(sub: argparse.ArgumentParser) -> None:
    _account_options(sub)
    _json_option(sub, "every field as one object (default: one field a line)")
    sub.add_argument("--offline", action="store_true", help="do not ask the API whether the token is still good")


def _json_option(sub: argparse.ArgumentParser, what: str) -> None:
    """--json, spelled so on every command that has a machine-readable output."""
    sub.add_argument("--json", action="store_true", help=f"print JSON: {what}")


def _fake_api_options(sub: argparse.ArgumentParser) -> None:
    sub.epilog = f"The fake API's account: {FAKE_CREDENTIALS}.\n\n{sub.epilog}"
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sub.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    sub.add_argument("--ttl", type=float, default=3600.0, help="token lifetime in seconds (default 3600)")
    _without_option(sub)
    sub.add_argument("--latency", type=_delay, default=0.0, metavar="SECONDS",
                     help="seconds every answer waits (default 0)")
    sub.add_argument("--skew", type=_finite, default=0.0, metavar="SECONDS",
                     help="seconds the fake's clock runs ahead of this machine's, behind if negative (default 0)")
    sub.add_argument("--fail", type=_fault, action="append", default=[], metavar="ACTION:N",
                     help="answer the next N calls of ACTION with a 503 (repeatable); ACTION: api, login, "
                          "login_method, refresh, switch, access_token, logout")
    sub.add_argument("--workos", action="append", default=[], metavar="EMAIL",
                     help="an account that signs in through WorkOS: login_method says WORKOS and its password "
                          "login is refused (repeatable)")


def _delay(text: str) -> float:
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds, 0 or more")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not abs(value) < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def _fault(text: str) -> tuple[str, int]:
    from ..testing import ACTIONS  # noqa: PLC0415 - loaded only for the commands of the fake

    action, _, count = text.partition(":")
    if action not in ACTIONS or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not ACTION:N, with N above 0 and ACTION among "
                                         f"{', '.join(sorted(ACTIONS))}")
    return action, int(count)


def _demo_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    sub.add_argument("--seconds", type=float, default=8.0, help="how long the workers run (default 8)")
    sub.add_argument("--ttl", type=float, default=3.0, help="token lifetime in seconds (default 3)")
    sub.add_argument("--password", action="store_true",
                     help="log the workers in with email and password (deprecated endpoints) instead of a "
                          "personal access token and an organization")
    _without_option(sub)



def _without_option(sub: argparse.ArgumentParser) -> None:
    # Koyeb's deprecated session endpoints, withdrawn in the fake API (answering 404), to rehearse it.
    sub.add_argument("--without", type=_endpoints, default=[], metavar="ENDPOINTS",
                     help="endpoints the fake API answers 404 to, comma-separated: login, refresh, switch, "
                          "access_token, logout, login_method")


def _endpoints(names: str) -> list[str]:
    from ..testing import SESSION_ENDPOINTS  # noqa: PLC0415 - loaded only for the commands of the fake

    endpoints = [name.strip() for name in names.split(",") if name.strip()]
    if unknown := [name for name in endpoints if name not in SESSION_ENDPOINTS]:
        raise argparse.ArgumentTypeError(f"unknown endpoint {unknown[0]!r}: use {', '.join(sorted(SESSION_ENDPOINTS))}")
    return endpoints


_OPTIONS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "token": _token_options,
    "exec": _exec_options,
    "login": _login_options,
    "logout": _account_options,
    "status": _status_options,
    "fake-api": _fake_api_options,
    "demo": _demo_options,
}
