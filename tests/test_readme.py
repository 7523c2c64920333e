"""Every ```python block of the README and of docs/*.md runs here, against the fake API, as written.

Only the API URL and the example credentials are swapped for the fake's. Each block runs as a
script of its own (so `if __name__ == "__main__":` and spawned worker pools work as they do for a
user); a block that defines `test_` functions runs under pytest. A block that cannot run as it is
must be listed in NOT_RUN with the reason. Shell and text blocks are not run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from koyeb_auth.testing import FakeKoyebAPI

ROOT = Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(`{3,})(\w*)\s*$")


def python_blocks() -> dict[str, str]:
    """Every ```python block, named "<file> > <heading> <n>" (n counts the blocks under one heading)."""
    blocks: dict[str, str] = {}
    for path in DOCUMENTS:
        heading, counts = "(top)", {}  # type: str, dict[str, int]
        fence, language, lines = "", "", []  # type: str, str, list[str]
        for line in path.read_text().splitlines(keepends=True):
            marker = FENCE.match(line)
            if fence:
                if marker and marker.group(1) == fence and not marker.group(2):
                    if language == "python":
                        number = counts[heading] = counts.get(heading, -1) + 1
                        blocks[f"{path.relative_to(ROOT).as_posix()} > {heading} {number}"] = "".join(lines)
                    fence = ""
                else:
                    lines.append(line)
            elif marker:
                fence, language, lines = marker.group(1), marker.group(2), []
            elif line.startswith("#"):
                heading = line.lstrip("#").strip()
    return blocks


BLOCKS = python_blocks()

# Blocks that cannot run as they are, with the reason. (None today: keep it that way.)
NOT_RUN: dict[str, str] = {}

# What the fake API must have seen, where it is not the usual "one login, some API calls, no 401".
EXPECTED_STATS: dict[str, dict[str, int]] = {
    "docs/usage.md > The token itself 0": {"login": 1, "logout": 1},
    # Its own fake API, inside the tests it shows.
    "docs/testing.md > Without the plugin: `FakeKoyebAPI` as a context manager 0": {},
    # Building a store does no I/O; the example builds one and stops.
    "docs/redis.md > Fleets on many hosts: the Redis store 0": {},
    # Fakes of their own: the pytest plugin's fixtures, and one started by hand.
    "docs/testing.md > The pytest plugin 0": {},
    "docs/testing.md > Outside pytest 0": {},
}
# What a block must print, where it says in a comment what it prints.
EXPECTED_OUTPUT: dict[str, str] = {
    "docs/usage.md > Token events: metrics and alerts 0": "{'obtained': 1}\n",
    "docs/testing.md > Without the plugin: `FakeKoyebAPI` as a context manager 0": "3 passed",
    "docs/testing.md > The pytest plugin 0": "5 passed",
    "docs/testing.md > Outside pytest 0": "demo\n",
}


def test_every_client_has_an_example_in_the_use_section() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Use\n", 1)[1].split("\n## ", 1)[0]
    headings = [line.removeprefix("### ") for line in section.splitlines() if line.startswith("### ")]
    for client in ("httpx", "httpx.AsyncClient", "requests", "koyeb-sdk", "httpx2", "aiohttp", "niquests"):
        heading = next(h for h in headings if client in h)
        assert f"README.md > {heading} 0" in BLOCKS


def test_the_lists_of_exceptions_name_blocks_that_exist() -> None:
    assert len(BLOCKS) >= 15
    for listed in (NOT_RUN, EXPECTED_STATS, EXPECTED_OUTPUT):
        assert set(listed) <= set(BLOCKS), set(listed) - set(BLOCKS)
    assert all(reason.strip() for reason in NOT_RUN.values())


@pytest.mark.parametrize("name", sorted(set(BLOCKS) - set(NOT_RUN)))
def test_the_example_runs_as_written(name: str, fake: FakeKoyebAPI, tmp_path: Path) -> None:
    code = BLOCKS[name]
    for real, local in (("https://app.koyeb.com", fake.url), ("me@example.com", fake.EMAIL),
                        ("my-password", fake.PASSWORD)):
        code = code.replace(real, local)
    env = {**os.environ, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD, "KOYEB_URL": fake.url,
           "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    if re.search(r"^def test_", code, re.MULTILINE):
        script, command = tmp_path / "test_example.py", ["-m", "pytest", "-q", "-p", "no:cacheprovider"]
    else:
        script, command = tmp_path / "example.py", []
    script.write_text(code)
    result = subprocess.run([sys.executable, *command, script.name], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if name in EXPECTED_OUTPUT:
        assert EXPECTED_OUTPUT[name] in result.stdout
    stats = fake.stats
    if name in EXPECTED_STATS:
        assert stats == EXPECTED_STATS[name]
    else:
        assert stats["login"] == 1 and stats["api"] >= 1
        assert stats.get("unauthorized", 0) == 0


def test_the_readme_reads_in_minutes_and_its_links_resolve() -> None:
    # The README is the first ten minutes; the rest lives in docs/ (the site builds it with --strict).
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 250
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [target for target in targets if "://" not in target]
    assert local and [target for target in local if not (ROOT / target).is_file()] == []
