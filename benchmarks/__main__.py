"""Run every benchmark and print the markdown the README quotes (about five minutes on 2 cores).

    python -m benchmarks [--charts DIR] [NAME ...]

With `--charts DIR`, also draw the fan-out, the warm overhead and the refresh storm as PNG files in
DIR (matplotlib, in the `bench` extra), from the same runs as the tables. NAMEs (warm, fanout,
storm, longrun, redis_store, command) run only those benchmarks.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

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
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--charts", type=Path, metavar="DIR", help="also draw PNG charts in DIR")
    parser.add_argument("names", nargs="*", metavar="NAME", help="run only these benchmarks")
    arguments = parser.parse_args()
    charts_dir: Path | None = arguments.charts
    warnings.simplefilter("ignore")  # peers' deprecation notices would break the markdown
    started = time.monotonic()
    print(f"Measured on {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()} "
          f"({platform.system()}); {_versions()}.\n")
    for number, (title, module) in enumerate(
        [("Warm per-request cost", warm), ("Cold-start fan-out", fanout), ("Refresh storm", storm),
         ("Long-running worker", longrun), ("Redis store", redis_store), ("The command in a shell script", command)],
        1,
    ):
        if arguments.names and module.__name__.rsplit(".", 1)[-1] not in arguments.names:
            continue
        text, figures = module.measure()
        print(f"### {number}. {title}\n\n{text}\n", flush=True)
        if charts_dir is not None:
            _chart(module.__name__.rsplit(".", 1)[-1], figures, charts_dir)
    print(f"(all benchmarks: {time.monotonic() - started:.0f} s)", file=sys.stderr)


def _chart(name: str, figures: dict[str, Any], directory: Path) -> None:
    from . import charts  # matplotlib: only when charts are asked for

    drawers = {"warm": lambda: charts.warm(figures, directory / "warm.png"),
               "fanout": lambda: charts.fanout(figures, fanout.SIZES, directory / "fanout.png"),
               "storm": lambda: charts.storm(figures, directory / "storm.png")}
    if name in drawers:
        drawers[name]()
        print(f"(drew {directory / name}.png)", file=sys.stderr)


if __name__ == "__main__":
    main()
