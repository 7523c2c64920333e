"""PNG charts of the fan-out, the warm overhead and the refresh storm (`python -m benchmarks --charts DIR`).

Each function takes the figures a benchmark's `measure()` returned and writes one image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a CI machine

import matplotlib.pyplot as plt  # after the backend is chosen
from matplotlib import ticker

from .common import LOGIN_DELAY
from .storm import REFRESH_DELAY
from .warm import FLOOR, KOYEB

_FANOUT_LINES = {"token": "-o", "password": "-s", "pool spawn": "-^", "pool forkserver": "-v", "pool fork": "-D",
                 "naive token": ":o", "naive password": ":s", "hash alone": "k:x"}


def fanout(summary: dict[str, Any], sizes: tuple[int, ...], path: Path) -> None:
    """Milliseconds until the last process holds a token, and the logins, against the processes."""
    figure, (wall, logins) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, style in _FANOUT_LINES.items():
        if f"{name}_{sizes[0]}_ms" not in summary:
            continue
        wall.plot(sizes, [summary[f"{name}_{size}_ms"] for size in sizes], style, label=name)
        if name != "hash alone":  # no login: nothing to draw on a log scale
            logins.plot(sizes, [summary[f"{name}_{size}_logins"] for size in sizes], style, label=name)
    if f"floor_{sizes[0]}_ms" in summary:
        wall.plot(sizes, [summary[f"floor_{size}_ms"] for size in sizes], "k--", linewidth=1,
                  label="password floor: max(login, N x hash / cores)")
    wall.axhline(LOGIN_DELAY * 1000, color="grey", linewidth=0.8)
    wall.set(title="Cold start: until the last process holds a token", xlabel="processes", ylabel="ms")
    logins.set(title="Logins and token exchanges the API saw", xlabel="processes", ylabel="sessions opened",
               yscale="log")
    for axis in (wall, logins):
        axis.set_xscale("log")
        _label_sizes(axis.xaxis, sizes)
    _label_sizes(logins.yaxis, sizes)
    wall.legend(fontsize=7)
    logins.legend(fontsize=7)
    _save(figure, path)


def warm(figures: dict[str, Any], path: Path) -> None:
    """Median µs per request of each auth, per client, as a multiple of the constant header's."""
    clients = sorted({key.split("|")[0] for key in figures if "|" in key}, key=_client_order)
    figure, axes = plt.subplots(1, len(clients), figsize=(3 * len(clients), 4), sharey=True, squeeze=False)
    for axis, client in zip(axes[0], clients, strict=True):
        names = [key.split("|", 1)[1] for key in figures if key.startswith(client + "|")]
        floor = figures[f"{client}|{FLOOR}"]
        ratios = [figures[f"{client}|{name}"] / floor for name in names]
        colours = ["tab:green" if name == KOYEB else "grey" if name == FLOOR else "tab:blue" for name in names]
        axis.bar(range(len(names)), ratios, color=colours)
        axis.set_xticks(range(len(names)), [_short(name) for name in names], rotation=60, ha="right", fontsize=7)
        axis.axhline(1.0, color="black", linewidth=0.8)
        axis.set_title(client, fontsize=9)
    axes[0][0].set_ylabel("median µs per request / floor's")
    figure.suptitle("Warm requests: each auth against a constant header (the floor)")
    _save(figure, path)


def storm(figures: dict[str, Any], path: Path) -> None:
    """Each request's latency against when it started, with the refreshes shaded."""
    figure, axis = plt.subplots(figsize=(9, 4))
    starts = [start for start, _ in figures["samples"]]
    latencies = [latency * 1000 for _, latency in figures["samples"]]
    axis.scatter(starts, latencies, s=1, alpha=0.3, label="a request of the main process")
    for number, end in enumerate(figures["refreshed"]):
        axis.axvspan(end - REFRESH_DELAY, end, color="tab:orange", alpha=0.3,
                     label="the refresh in flight (any process)" if number == 0 else None)
    axis.set(title="Refresh storm: 1000 tasks and 32 threads here, 7 more processes",
             xlabel="s after the first request", ylabel="request latency, ms", yscale="log")
    axis.legend(fontsize=8, loc="upper left")
    _save(figure, path)


def _label_sizes(axis: Any, sizes: tuple[int, ...]) -> None:
    """Ticks at the fleet sizes only, written as numbers (a log axis writes 3 x 10^0 otherwise)."""
    axis.set_ticks(list(sizes), [str(size) for size in sizes])
    axis.set_minor_locator(ticker.NullLocator())


def _client_order(client: str) -> int:
    order = ["httpx.Client", "httpx.AsyncClient", "requests", "httpx2.Client", "httpx2.AsyncClient"]
    return order.index(client) if client in order else len(order)


def _short(name: str) -> str:
    return {FLOOR: "floor", KOYEB: "KoyebAuth"}.get(name, name.replace(" OAuth2ClientCredentials", "").replace(
        " AuthorizedSession", ""))


def _save(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
