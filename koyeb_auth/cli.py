"""The `koyeb-auth` command: a managed token for shell users and existing Koyeb tooling."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from . import errors
from .auth import KoyebAuth
from .config import STORE_VARIABLE, store_from_url

# Distinct exit codes, so scripts can tell failures apart without parsing messages.
EXIT_NO_TOKEN = 1
EXIT_USAGE = 2
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

# What `exec` removes from the child's environment: it gets KOYEB_TOKEN instead (and the store's
# URL may hold Redis's password).
CREDENTIALS_KEPT_FROM_CHILD = frozenset({"KOYEB_EMAIL", "KOYEB_PASSWORD", STORE_VARIABLE})

EXAMPLES = {
    "token": 'curl -H "Authorization: Bearer $(koyeb-auth token)" https://app.koyeb.com/v1/apps',
    "exec": "koyeb-auth exec -- koyeb apps list",
    "login": "printf '%s' \"$PASSWORD\" | koyeb-auth login --email me@example.com --password-stdin",
    "logout": "koyeb-auth logout",
    "status": "koyeb-auth status --json",
    "fake-api": "koyeb-auth fake-api --port 8000 --ttl 60",
    "demo": "koyeb-auth demo --workers 8 --seconds 10 --ttl 3",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except errors.KoyebAuthError as exc:
        print(f"koyeb-auth: {exc}", file=sys.stderr)
        return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)
    except KeyboardInterrupt:
        return 130
    return code


def _auth(args: argparse.Namespace, **overrides: Any) -> KoyebAuth:
    options: dict[str, Any] = {
        "email": args.email,
        "organization_id": args.organization,
        "api_url": args.api_url,
        "cache_path": args.cache_path,
        "store": store_from_url(args.store, "--store") if args.store else None,
    }
    return KoyebAuth(**{**options, **overrides})


# --- subcommands ---------------------------------------------------------------------------------


def cmd_token(args: argparse.Namespace) -> int:
    print(_auth(args).get_token())
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise errors.ConfigurationError("Give the command to run after `--`, e.g. koyeb-auth exec -- koyeb apps list")
    env = {name: value for name, value in os.environ.items() if name not in CREDENTIALS_KEPT_FROM_CHILD}
    # The child gets a token, never the credentials that made it (as credential-exec tools do).
    env["KOYEB_TOKEN"] = _auth(args).get_token()
    try:
        return subprocess.call(command, env=env)  # noqa: S603 - the user's command
    except OSError as exc:
        raise errors.ConfigurationError(f"Could not run {command[0]!r}: {exc.strerror or exc}") from None


def cmd_login(args: argparse.Namespace) -> int:
    email = args.email or os.environ.get("KOYEB_EMAIL") or input("Email: ").strip()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = os.environ.get("KOYEB_PASSWORD") or getpass.getpass("Password: ")
    auth = _auth(args, email=email, password=password)
    auth.get_token()
    print(f"Logged in as {email}. {_describe_expiry(auth)}")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    auth = _auth(args)
    if not auth.logout():
        print(f"No session to log out in {auth.store!r} for these credentials.", file=sys.stderr)
        return EXIT_NO_TOKEN
    print(f"Logged out; the token was removed from {auth.store!r}.")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    auth = _auth(args)
    token = auth.cached_token()
    settings = auth.settings
    now = time.time()
    status = {
        "logged_in": token is not None,
        "api_url": settings.api_url,
        "email": settings.email,
        "user_id": token.user_id if token else None,
        "organization_id": (token.organization_id if token else None) or settings.organization_id,
        "expires_at": _iso(token.expires_at) if token and token.expires_at else None,
        "expires_in_seconds": round(token.expires_at - now) if token and token.expires_at else None,
        "credentials_from": settings.found_in,
        "kind": "password login" if settings.email else "organization token" if settings.organization_id
        else "personal access token",
        "cache": repr(auth.store),
    }
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        for name, value in status.items():
            print(f"{name.replace('_', ' '):>20}: {'-' if value is None else value}")
    return 0 if token is not None else EXIT_NO_TOKEN


def cmd_fake_api(args: argparse.Namespace) -> int:
    from .testing import FakeKoyebAPI  # noqa: PLC0415 - loaded only for this command

    fake = FakeKoyebAPI(ttl=args.ttl, host=args.host, port=args.port, without=args.without)
    fake.bind()
    print(f"Fake Koyeb API at {fake.url} (email {fake.EMAIL}, password {fake.PASSWORD}; Ctrl-C stops it)",
          flush=True)
    fake.serve_forever()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # noqa: PLC0415 - loaded only for this command

    return run_demo(workers=args.workers, seconds=args.seconds, ttl=args.ttl, without=frozenset(args.without))


# --- helpers -------------------------------------------------------------------------------------


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


def _describe_expiry(auth: KoyebAuth) -> str:
    token = auth.cached_token()
    if token is None or token.expires_at is None:
        return "The token does not expire."
    left = token.expires_at - time.time()
    return f"The token expires at {_iso(token.expires_at)} (in {left / 3600:.1f} h); it is renewed automatically."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="koyeb-auth",
        description="A managed Koyeb API token: logs in once, refreshes before expiry, shared by every process.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", help="API URL (default $KOYEB_URL, ~/.koyeb.yaml, https://app.koyeb.com)")
    common.add_argument("--cache-path", help="the shared token cache file (default: in the user cache directory)")
    common.add_argument("--email", help="account email (default $KOYEB_EMAIL); the password comes from "
                                        "$KOYEB_PASSWORD")
    common.add_argument("--organization", help="organization id (default $KOYEB_ORGANIZATION)")
    common.add_argument("--store", metavar="URL", help="share the token through the Redis at this redis:// or "
                                                       f"rediss:// URL (default ${STORE_VARIABLE})")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], int], summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=summary, description=summary,
                                  epilog=f"example:\n  {EXAMPLES[name]}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(run=run)
        return sub

    command("token", cmd_token, "Print a valid token, logging in or refreshing through the shared cache.")
    sub = command("exec", cmd_exec, "Run a command with KOYEB_TOKEN set to a valid token.")
    sub.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments, after --")
    sub = command("login", cmd_login, "Log in with email and password (prompted, no echo) and cache the token.")
    sub.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    command("logout", cmd_logout, "Log out and remove the token from the shared cache.")
    sub = command("status", cmd_status, "Who is logged in and until when; exits 1 without a valid token.")
    sub.add_argument("--json", action="store_true", help="machine-readable output")
    sub = command("fake-api", cmd_fake_api, "Run the bundled fake Koyeb API in the foreground, for tests.")
    sub.add_argument("--host", default="127.0.0.1")
    sub.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    sub.add_argument("--ttl", type=float, default=3600.0, help="token lifetime in seconds (default 3600)")
    _without_option(sub)
    sub = command("demo", cmd_demo, "Offline demo: N worker processes, one fake API, one login, live refreshes.")
    sub.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    sub.add_argument("--seconds", type=float, default=8.0, help="how long the workers run (default 8)")
    sub.add_argument("--ttl", type=float, default=3.0, help="token lifetime in seconds (default 3)")
    _without_option(sub)
    return parser


def _without_option(sub: argparse.ArgumentParser) -> None:
    # Koyeb's deprecated session endpoints, withdrawn in the fake API (answering 404), to rehearse it.
    sub.add_argument("--without", type=_endpoints, default=[], metavar="ENDPOINTS",
                     help="endpoints the fake API answers 404 to, comma-separated: login, refresh, switch, "
                          "access_token, logout")


def _endpoints(names: str) -> list[str]:
    from .testing import SESSION_ENDPOINTS  # noqa: PLC0415 - loaded only for the commands of the fake

    endpoints = [name.strip() for name in names.split(",") if name.strip()]
    if unknown := [name for name in endpoints if name not in SESSION_ENDPOINTS]:
        raise argparse.ArgumentTypeError(f"unknown endpoint {unknown[0]!r}: use {', '.join(sorted(SESSION_ENDPOINTS))}")
    return endpoints


if __name__ == "__main__":
    sys.exit(main())
