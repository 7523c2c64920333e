"""6. The command in a shell script: a warm `koyeb-auth token`, next to the cost of starting Python.

A warm call finds the credentials (the last `koyeb-auth login`, the environment or the Koyeb CLI's
`~/.koyeb.yaml`) and prints the cached token: no network, no lock, and no HTTP client loaded. It
is timed as a script sees it (a whole process, wall clock) beside `python -c pass` (the floor:
the interpreter alone) and `python -c "import httpx"` (the yardstick of the goals). The variants alternate
inside each round, so that drift hits all of them alike; figures are medians over the rounds, and
each ratio is the median of the per-round ratios (paired runs).

A fourth variant imports only the standard modules the command needs: argparse for its grammar,
json for the two files it reads, pathlib for their paths and typing; the distance from it to the
warm call is what koyeb-auth's own code costs. A fifth derives one scrypt of a password, as
koyeb-auth does, in a fresh process: the floor of a warm call with KOYEB_EMAIL/KOYEB_PASSWORD.

It is timed for each source of credentials: a token login with an organization (the
recommended path: the organization token is cached), a password login (a profile), `KOYEB_TOKEN`
alone, `KOYEB_TOKEN` with `KOYEB_ORGANIZATION`, `~/.koyeb.yaml`, and `KOYEB_EMAIL`/`KOYEB_PASSWORD`
(finding the session then costs the slow hash of the password, on purpose: its goal is 1.0x). Also:
what `import koyeb_auth` costs (`python -X importtime`).

Everything is timed in a venv of its own where this checkout alone is installed (`pip install .`,
as users get it), from a directory outside the checkout. The checkout's own venv would flatter
koyeb-auth: with the extras' rich and click installed, `import httpx` also loads httpx's command
line (117 ms instead of 74), and the editable install adds an import hook to every call.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import koyeb_auth
from koyeb_auth._sources import _SCRYPT
from koyeb_auth.testing import FakeKoyebAPI

from .common import table

CHECKOUT = Path(koyeb_auth.__file__).parents[1]
GOAL, PASSWORD_GOAL = 0.5, 1.0
PASS, HTTPX = "`python -c pass`", '`python -c "import httpx"`'
NEEDED_MODULES = "argparse, json, pathlib, typing"
NEEDED = f'`python -c "import {NEEDED_MODULES}"`'
SCRYPT = f"hashlib.scrypt(b'password', salt=b'salt', **{_SCRYPT!r})"
HASH_ALONE = "`python -c` one scrypt of a password, as koyeb-auth derives it"
WARM = "**`koyeb-auth token`**, after `koyeb-auth login --token-stdin --organization ...`"
PASSWORD_LOGIN = "`koyeb-auth token --profile pw`, after a password `login --profile pw`"
ENV_TOKEN = "`koyeb-auth token`, KOYEB_TOKEN set"
ENV_ORGANIZATION = "`koyeb-auth token`, KOYEB_TOKEN and KOYEB_ORGANIZATION set"
CLI_FILE = "`koyeb-auth token`, the token of `~/.koyeb.yaml`"
ENV_PASSWORD = "`koyeb-auth token`, KOYEB_EMAIL/KOYEB_PASSWORD set"
# Each source of credentials that needs no slow hash, and its goal against `import httpx`.
GOALS = {WARM: GOAL, PASSWORD_LOGIN: GOAL, ENV_TOKEN: GOAL, ENV_ORGANIZATION: GOAL, CLI_FILE: GOAL,
         ENV_PASSWORD: PASSWORD_GOAL}


def _lean_python(directory: Path) -> str:
    """The Python of a new venv in `directory` where this checkout alone is installed."""
    subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
    python = str(directory / "bin" / "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(CHECKOUT)],
                   check=True)
    return python


def _wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=env["HOME"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def _import_ms(python: str, statement: str, env: dict[str, str], runs: int) -> float:
    """What running `statement` spends importing koyeb_auth and all it loads, in ms (`-X importtime`,
    the cumulative times of the top-level koyeb_auth modules; the median of `runs`)."""
    figures = []
    for _ in range(runs):
        result = subprocess.run([python, "-X", "importtime", "-c", statement], env=env, cwd=env["HOME"],
                                capture_output=True, text=True, check=True)
        lines = [line.split("|") for line in result.stderr.splitlines() if line.startswith("import time:")]
        figures.append(sum(int(cumulative) for _, cumulative, name in lines
                           if re.fullmatch(r" koyeb_auth(\.\w+)*", name)) / 1000)
    return statistics.median(figures)


def measure(rounds: int = 41) -> tuple[str, dict[str, float]]:
    """The table as markdown, and the figures (`token_vs_httpx` is the goal's ratio)."""
    with FakeKoyebAPI() as fake, tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as venv:
        python = _lean_python(Path(venv))
        # Not PYTHONPATH either: a checkout on it would be imported instead of the venv's install.
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("KOYEB_") and name != "PYTHONPATH"}
        env |= {"HOME": home, "XDG_CACHE_HOME": f"{home}/cache", "KOYEB_URL": fake.url}
        command = [str(Path(python).with_name("koyeb-auth"))]
        subprocess.run([*command, "login", "--token-stdin", "--organization", fake.ORGANIZATION_ID],
                       input=fake.PERSONAL_TOKEN, text=True, env=env, cwd=home, capture_output=True, check=True)
        subprocess.run([*command, "login", "--profile", "pw", "--email", fake.EMAIL, "--password-stdin"],
                       input=fake.PASSWORD, text=True, env=env, cwd=home, capture_output=True, check=True)
        # The Koyeb CLI's file, in a home of its own: a login would come before it in the chain.
        cli_home = Path(home) / "cli"
        cli_home.mkdir()
        (cli_home / ".koyeb.yaml").write_text(f"token: {fake.PERSONAL_TOKEN}\nurl: {fake.url}\n")
        cli_env = {**env, "HOME": str(cli_home), "XDG_CACHE_HOME": str(cli_home / "cache")}
        variants = {
            PASS: ([python, "-c", "pass"], env),
            HTTPX: ([python, "-c", "import httpx"], env),
            NEEDED: ([python, "-c", f"import {NEEDED_MODULES}"], env),
            HASH_ALONE: ([python, "-c", f"import hashlib; {SCRYPT}"], env),
            WARM: ([*command, "token"], env),
            PASSWORD_LOGIN: ([*command, "token", "--profile", "pw"], env),
            ENV_TOKEN: ([*command, "token"], {**env, "KOYEB_TOKEN": fake.PERSONAL_TOKEN}),
            ENV_ORGANIZATION: ([*command, "token"], {**env, "KOYEB_TOKEN": fake.PERSONAL_TOKEN,
                                                     "KOYEB_ORGANIZATION": fake.ORGANIZATION_ID}),
            CLI_FILE: ([*command, "token"], cli_env),
            ENV_PASSWORD: ([*command, "token"], {**env, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD}),
        }
        for argv, variant_env in variants.values():
            _wall(argv, variant_env)  # warm-up: the page cache, the first token in the cache
        figures: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for turn in range(rounds):
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                figures[name].append(_wall(*variants[name]))
        logins = sum(fake.stats.get(action, 0) for action in ("login", "access_token", "switch"))
        # (`import koyeb_auth.auth` is what `from koyeb_auth import KoyebAuth` loads, as import statements.)
        imports = {statement: _import_ms(python, statement, env, 21) for statement in ("import koyeb_auth",
                                                                                      "import koyeb_auth.auth")}
    return _report(figures, imports, rounds, logins)


def _report(figures: dict[str, list[float]], imports: dict[str, float], rounds: int,
            logins: int) -> tuple[str, dict[str, float]]:
    def paired(name: str, base: str) -> float:
        return statistics.median(a / b for a, b in zip(figures[name], figures[base], strict=True))

    def verdict(name: str) -> str:
        if name not in GOALS:
            return ""
        return f"{GOALS[name]}x: {'met' if paired(name, HTTPX) <= GOALS[name] else '**not met**'}"

    rows = [[name, f"{statistics.median(values) * 1000:.1f}", f"{paired(name, HTTPX):.3f}x",
             f"{paired(name, PASS):.2f}x", verdict(name)] for name, values in figures.items()]
    summary = {"token_vs_httpx": paired(WARM, HTTPX), "token_vs_pass": paired(WARM, PASS),
               "needed_vs_httpx": paired(NEEDED, HTTPX),
               "env_password_vs_httpx": paired(ENV_PASSWORD, HTTPX),
               **{f"{name} vs httpx": paired(name, HTTPX) for name in GOALS},
               **{f"{statement} ms": ms for statement, ms in imports.items()}}
    text = (f"Wall time of a whole process, median of {rounds} alternating rounds; ratios are medians of the "
            f"per-round ratios. The warm calls made {logins} login(s) or exchange(s) in all (those before the "
            "rounds).\n\n"
            + table(["command", "median ms", f"vs {HTTPX}", f"vs {PASS}", "goal (vs httpx)"], rows)
            + f"\n\nThe standard modules the command needs, alone: {summary['needed_vs_httpx']:.3f}x {HTTPX}; "
            f"one scrypt in a fresh process (the floor of the KOYEB_PASSWORD row, which must derive it to "
            f"adopt the cached session): {paired(HASH_ALONE, HTTPX):.3f}x.\n\n"
            + table(["import", "ms (`-X importtime`, median of 21)"],
                    [[f"`{statement}`", f"{ms:.1f}"] for statement, ms in imports.items()]))
    return text, summary


if __name__ == "__main__":
    print(measure()[0])
