"""Count the koyeb_auth functions a warm request and a cold login run through (`sys.setprofile`).

    python -m benchmarks.calls

Sync httpx, the file store, the bundled fake API on loopback. A "call" is one Python-level call
of a function defined in the koyeb_auth package; the table gives calls, distinct functions and
files for each path (the construction of KoyebAuth and the client is not counted). The first
request of a new KoyebAuth also reads its configuration (the credential chain, the API URL, the
store key), once per object; the cold login is the same request with the configuration already
read (`auth.settings` read first).
"""

from __future__ import annotations

import functools
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import httpx

import koyeb_auth
from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

from .common import table

PACKAGE = str(Path(koyeb_auth.__file__).parent)
FIRST_REQUEST = "cold first request (reads the configuration, logs in)"
COLD_LOGIN = "cold login (the configuration read)"
WARM_REQUEST = "warm request"


def trace(run: Callable[[], object]) -> Counter[tuple[str, str]]:
    """(file, function) -> how many times `run` called it."""
    seen: Counter[tuple[str, str]] = Counter()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGE):
            code = frame.f_code
            seen[(code.co_filename[len(PACKAGE) + 1:], code.co_qualname)] += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return seen


def measure() -> dict[str, Counter[tuple[str, str]]]:
    figures = {}
    for path, configured in ((FIRST_REQUEST, False), (COLD_LOGIN, True)):
        with FakeKoyebAPI() as api, tempfile.TemporaryDirectory() as cache:
            auth = KoyebAuth(email=api.EMAIL, password=api.PASSWORD, api_url=api.url,
                             cache_path=Path(cache) / "token.json")
            if configured:
                assert auth.settings.email == api.EMAIL
            with httpx.Client(auth=auth, base_url=api.url) as client:
                figures[path] = trace(functools.partial(client.get, "/v1/apps"))
                warm = trace(functools.partial(client.get, "/v1/apps"))
    return {**figures, WARM_REQUEST: warm}


def main() -> None:
    figures = measure()
    rows = [(path, sum(c.values()), len(c), len({f for f, _ in c})) for path, c in figures.items()]
    print(table(["path", "calls", "functions", "files"], rows))
    if "-v" in sys.argv:
        for path, counts in figures.items():
            print(f"\n{path}:")
            for (file, function), n in sorted(counts.items()):
                print(f"  {n:3d}  {file}:{function}")


if __name__ == "__main__":
    main()
