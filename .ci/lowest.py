"""The lowest versions pyproject.toml allows, as pip constraints: every `name>=X` floor becomes `name==X`.

`.ci/run` installs the package with these and runs the fast tests, so a floor we declare is one we
have tested. Without an argument, print the constraints; with `--requirements`, print what that run
installs: the package with its extras, and the test tools (not niquests, whose urllib3-future would
replace urllib3: this run is also where Koyeb's SDK is tested on the urllib3 its users have).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

PROJECT = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
EXTRAS = ("redis", "sdk", "httpx2", "aiohttp")
TEST_TOOLS = ("pytest", "freezegun", "hypothesis", "trustme", "trio")


def requirements() -> list[str]:
    listed = [*PROJECT["dependencies"], *(r for extra in PROJECT["optional-dependencies"].values() for r in extra)]
    return [r for r in listed if not r.startswith("koyeb-auth")]


def main() -> None:
    if sys.argv[1:] == ["--requirements"]:
        tools = [r for r in PROJECT["optional-dependencies"]["test"] if re.split(r"[<>=\[ ]", r)[0] in TEST_TOOLS]
        print("-e", f".[{','.join(EXTRAS)}]", *tools, sep="\n")
        return
    for requirement in requirements():
        if floor := re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9][0-9.]*)", requirement):
            print(f"{floor[1]}=={floor[2]}")


if __name__ == "__main__":
    main()
