"""2. Cold-start fan-out: N processes start at once against an API whose login (or token exchange)
takes 100 ms: a personal access token with an organization (the recommended path), a password, and
each one's naive twin, where every process asks for itself."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .common import cold_starts


def measure(sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> tuple[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        variants = {"token": ("token", {}), "naive token": ("naive-token", {}),
                    "password": ("koyeb", {}), "naive password": ("naive", {})}
        return cold_starts(sizes, variants, Path(tmp))


if __name__ == "__main__":
    print(measure()[0])
