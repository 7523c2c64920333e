"""The README's usage examples, run as written against the fake API (only the URL and credentials swapped)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from koyeb_auth.testing import FakeKoyebAPI

README = (Path(__file__).parents[1] / "README.md").read_text()


def usage_examples() -> dict[str, str]:
    """Each ```python block of the `## Use` section that is a whole program, by its heading."""
    section = README.split("\n## Use\n", 1)[1].split("\n## ", 1)[0]
    examples = {}
    for part in section.split("\n### ")[1:]:
        heading, _, body = part.partition("\n")
        for number, code in enumerate(re.findall(r"```python\n(.*?)```", body, re.DOTALL)):
            if code.startswith("import "):  # snippets that go on from a previous one start otherwise
                examples[f"{heading} {number}"] = code
    return examples


EXAMPLES = usage_examples()


def test_every_client_has_an_example() -> None:
    headings = " ".join(EXAMPLES)
    for client in ("httpx", "httpx.AsyncClient", "requests", "koyeb-sdk", "httpx2", "aiohttp", "niquests"):
        assert client in headings


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_readme_example_runs_as_written(name: str, fake: FakeKoyebAPI, tmp_path: Path) -> None:
    code = EXAMPLES[name]
    for real, local in (("https://app.koyeb.com", fake.url), ("me@example.com", fake.EMAIL),
                        ("my-password", fake.PASSWORD)):
        code = code.replace(real, local)
    env = {**os.environ, "KOYEB_EMAIL": fake.EMAIL, "KOYEB_PASSWORD": fake.PASSWORD, "KOYEB_URL": fake.url,
           "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert fake.stats["login"] == 1 and fake.stats["api"] >= 1
    assert fake.stats.get("unauthorized", 0) == 0
