"""2. Cold-start fan-out: N processes start at once against an API whose login takes 100 ms."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .common import cold_starts


def measure(sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> tuple[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        return cold_starts(sizes, {"KoyebAuth": ("koyeb", {}), "naive": ("naive", {})}, Path(tmp))


if __name__ == "__main__":
    print(measure()[0])
