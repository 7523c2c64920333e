"""Run every benchmark and print the markdown the README quotes (about four minutes on 2 cores)."""

from __future__ import annotations

import os
import platform
import sys
import time
import warnings
from importlib.metadata import PackageNotFoundError, version

from . import command, fanout, longrun, redis_store, storm, warm


def _versions() -> str:
    names = ["koyeb-auth", "httpx", "requests", "filelock", "redis", "authlib", "httpx-auth", "google-auth"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def main() -> None:
    warnings.simplefilter("ignore")  # peers' deprecation notices would break the markdown
    started = time.monotonic()
    print(f"Measured on {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()} "
          f"({platform.system()}); {_versions()}.\n")
    for number, (title, module) in enumerate(
        [("Warm per-request cost", warm), ("Cold-start fan-out", fanout), ("Refresh storm", storm),
         ("Long-running worker", longrun), ("Redis store", redis_store), ("The command in a shell script", command)],
        1,
    ):
        text, _ = module.measure()
        print(f"### {number}. {title}\n\n{text}\n", flush=True)
    print(f"(all benchmarks: {time.monotonic() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
