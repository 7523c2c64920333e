"""2. Cold-start fan-out: N processes start at once against an API whose login takes 100 ms."""

from __future__ import annotations

import tempfile
from pathlib import Path

from koyeb_auth.testing import FakeKoyebAPI

from .common import go, results, spawn, table, wait_ready

LOGIN_DELAY = 0.1


def measure(sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)) -> tuple[str, dict[str, float]]:
    rows, summary = [], {}
    with FakeKoyebAPI(login_delay=LOGIN_DELAY) as fake:
        for size in sizes:
            row: list[object] = [size]
            for mode in ("koyeb", "naive"):
                fake.reset_stats()
                with tempfile.TemporaryDirectory() as tmp:
                    procs = [spawn("benchmarks.fanout_worker", mode, str(Path(tmp) / "tokens.json"), fake.url)
                             for _ in range(size)]
                    wait_ready(procs)
                    started = go(procs)
                    wall = max(r["ready_at"] for r in results(procs)) - started
                row += [fake.stats.get("login", 0), f"{wall * 1000:.0f}"]
                summary[f"{mode}_{size}_logins"], summary[f"{mode}_{size}_ms"] = fake.stats.get("login", 0), wall * 1000
            rows.append(row)
    text = (f"Login latency {LOGIN_DELAY * 1000:.0f} ms. Wall time from the release of the ready processes until "
            "the last one holds a token.\n\n"
            + table(["processes", "KoyebAuth logins", "KoyebAuth ms", "naive logins", "naive ms"], rows))
    return text, summary


if __name__ == "__main__":
    print(measure()[0])
