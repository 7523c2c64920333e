"""1. The warm per-request cost: KoyebAuth with a valid cached token, next to the floor and the peers.

Every variant sends the same requests through httpx.MockTransport (or a canned requests adapter),
so what differs is only what the auth layer does. Variants alternate inside each round to cancel
drift; the figure is the median of the rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import requests

from koyeb_auth import FileTokenStore, KoyebAuth, Token, TokenStore
from koyeb_auth._sources import PasswordLogin

from .common import API_URL, canned_session, median, median_us, table

URL = API_URL + "/v1/apps"
EMAIL, PASSWORD = "bench@example.com", "bench-password"
FLOOR, KOYEB = "constant header (floor)", "**KoyebAuth**"
_WATCHED = ("open", "os.", "socket.", "fcntl.", "shutil.", "tempfile.", "glob.")
_audit = {"on": False, "events": 0}


def _audit_hook(event: str, args: object) -> None:
    if _audit["on"] and event.startswith(_WATCHED):
        _audit["events"] += 1


class ConstantHeader(httpx.Auth, requests.auth.AuthBase):
    """The floor: the least any auth can do, set one constant header."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = "Bearer constant"
        yield request

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = "Bearer constant"
        return r


def koyeb_auth(directory: Path) -> KoyebAuth:
    """A KoyebAuth whose cache file already holds a valid token, as a warm worker's would."""
    return warm_auth(FileTokenStore(directory / "tokens.json"))


def warm_auth(store: TokenStore, kind: type[KoyebAuth] = KoyebAuth) -> KoyebAuth:
    """A KoyebAuth whose store already holds a valid token, adopted into memory."""
    now = time.time()
    assert store.try_lock()
    source = PasswordLogin(API_URL, EMAIL, PASSWORD)
    store.save(source.key, source.opened(Token("cached-token", now, now + 3600)))  # with the password's hash
    store.unlock()
    auth = kind(EMAIL, PASSWORD, api_url=API_URL, store=store)
    auth.get_token()  # adopt it into memory, as the first request of a process does
    return auth


def _token_handler(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"access_token": "peer-token", "token_type": "bearer", "expires_in": 3600})


def httpx_variants(directory: Path, client: type[Any]) -> dict[str, Any]:
    """The same variants for httpx.Client or httpx.AsyncClient, or their httpx2 twins."""
    flavour = sys.modules[client.__module__.split(".")[0]]
    mock = flavour.MockTransport(lambda request: flavour.Response(200, content=b"{}"))
    store = FileTokenStore(directory / f"{flavour.__name__}.json")
    variants: dict[str, Any] = {
        "no auth": client(transport=mock),
        FLOOR: client(transport=mock, auth=ConstantHeader() if flavour is httpx else _constant_header_httpx2()),
        KOYEB: client(transport=mock, auth=warm_auth(store, _koyeb_auth_for(flavour))),
    }
    try:
        from authlib.integrations import httpx_client

        oauth = httpx_client.OAuth2Client if "Async" not in client.__name__ else httpx_client.AsyncOAuth2Client
        # authlib runs on httpx2 when httpx2 is installed: it is compared on the client it uses.
        if issubclass(oauth, (flavour.Client, flavour.AsyncClient)):
            token = {"access_token": "peer", "token_type": "bearer", "expires_at": time.time() + 3600}
            variants[f"authlib {oauth.__name__}"] = oauth(token=token, transport=mock)
    except ImportError:
        pass
    try:
        import httpx_auth

        if flavour is httpx:
            token_client = httpx.Client(transport=httpx.MockTransport(_token_handler))
            peer = httpx_auth.OAuth2ClientCredentials(API_URL + "/token", "id", "secret", client=token_client)
            variants["httpx-auth OAuth2ClientCredentials"] = client(transport=mock, auth=peer)
    except ImportError:
        pass
    return variants


def _koyeb_auth_for(flavour: Any) -> type[KoyebAuth]:
    if flavour is httpx:
        return KoyebAuth
    from koyeb_auth import Httpx2KoyebAuth

    return Httpx2KoyebAuth


def _constant_header_httpx2() -> Any:
    import httpx2

    class ConstantHeader2(httpx2.Auth):  # type: ignore[misc]
        def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
            request.headers["Authorization"] = "Bearer constant"
            yield request

    return ConstantHeader2()


def requests_variants(directory: Path) -> dict[str, requests.Session]:
    variants = {
        "no auth": canned_session(None),
        FLOOR: canned_session(ConstantHeader()),
        KOYEB: canned_session(koyeb_auth(directory)),
    }
    try:
        from google.auth.transport.requests import AuthorizedSession
        from google.oauth2.credentials import Credentials

        expiry = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=1)
        session = AuthorizedSession(Credentials(token="peer", expiry=expiry))
        session.mount("https://", canned_session(None).get_adapter("https://"))
        variants["google-auth AuthorizedSession"] = session
    except ImportError:
        pass
    return variants


def _rows(figures: dict[str, list[float]]) -> list[list[object]]:
    floor, floor_min = median(figures[FLOOR]), min(figures[FLOOR])
    return [[name, f"{median(values):.1f}", f"{median(values) / floor:.3f}x", f"{min(values):.1f}",
             f"{min(values) / floor_min:.3f}x"] for name, values in figures.items()]


def _ratio(values: list[float], floor: list[float]) -> float:
    return min(values) / min(floor)


def measure(count: int = 300, rounds: int = 41) -> tuple[str, dict[str, float]]:
    """The tables as markdown; the KoyebAuth/floor ratio by client, and each variant's median µs by
    `client|variant`."""
    sys.addaudithook(_audit_hook)
    gc.disable()  # a collection landing in one variant's round would be charged to it alone
    try:
        return _measure(count, rounds)
    finally:
        gc.enable()


def _measure(count: int, rounds: int) -> tuple[str, dict[str, float]]:
    sections, ratios = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        sync = httpx_variants(directory, httpx.Client)
        calls: dict[str, Callable[[], Any]] = {name: (lambda c=c: c.get(URL)) for name, c in sync.items()}
        sessions = requests_variants(directory)
        req_calls: dict[str, Callable[[], Any]] = {n: (lambda s=s: s.get(URL)) for n, s in sessions.items()}
        by_client = {title: _alternate(variants, count, rounds)
                     for title, variants in (("httpx.Client", calls), ("requests", req_calls))}
        async_clients = httpx_variants(directory, httpx.AsyncClient)
        by_client["httpx.AsyncClient"] = asyncio.run(_alternate_async(async_clients, count, rounds))
        with contextlib.suppress(ImportError):  # httpx2, when installed: Httpx2KoyebAuth on its clients
            import httpx2

            sync2 = httpx_variants(directory, httpx2.Client)
            by_client["httpx2.Client"] = _alternate({n: (lambda c=c: c.get(URL)) for n, c in sync2.items()},
                                                    count, rounds)
            async2 = httpx_variants(directory, httpx2.AsyncClient)
            by_client["httpx2.AsyncClient"] = asyncio.run(_alternate_async(async2, count, rounds))
        for title, figures in by_client.items():
            sections.append(f"**{title}** (µs per request over {rounds} rounds of {count}: the median round "
                            "and the best one)\n\n"
                            + table(["auth", "median µs", "vs floor", "best µs", "vs floor"], _rows(figures)))
            ratios[title] = _ratio(figures[KOYEB], figures[FLOOR])
            # Each variant's median µs, for the chart (benchmarks/charts.py).
            ratios |= {f"{title}|{name}": median(values) for name, values in figures.items()}
        sections.append(_auth_step_alone(sync, sessions, count * 10, rounds))
        events = _audited(calls[KOYEB], count) + _audited(req_calls[KOYEB], count)
    sections.append(f"File-system and network audit events (`sys.addaudithook`: open, os.*, socket.*, fcntl.*) "
                    f"during {2 * count} warm KoyebAuth requests: **{events}**.")
    return "\n\n".join(sections), ratios


def _auth_step_alone(sync: dict[str, httpx.Client], sessions: dict[str, requests.Session], count: int,
                     rounds: int) -> str:
    """What the auth layer itself costs: its httpx flow driven by hand, its requests hook called."""
    request, response = httpx.Request("GET", URL), httpx.Response(200)
    prepared = requests.Request("GET", URL).prepare()

    def drive(auth: httpx.Auth) -> Callable[[], None]:
        def step() -> None:
            flow = auth.sync_auth_flow(request)
            next(flow)
            with contextlib.suppress(StopIteration):
                flow.send(response)

        return step

    def call(auth: Any) -> Callable[[], None]:
        def step() -> None:
            prepared.hooks = {"response": []}
            auth(prepared)

        return step

    steps = {f"httpx flow: {name}": drive(client.auth) for name, client in sync.items() if client.auth is not None}
    steps |= {f"requests hook: {name}": call(session.auth) for name, session in sessions.items()
              if session.auth is not None}
    figures = _alternate(steps, count, rounds)
    rows = [[name, f"{median(values):.2f}"] for name, values in figures.items()]
    return (f"**The auth step alone** (µs per call, median of {rounds} rounds of {count}): the part of each "
            "request that an auth library controls; httpx's own wrapper generator is counted for the floor, "
            "which relies on the default `sync_auth_flow`.\n\n" + table(["auth step", "µs/call"], rows))


def _alternate(variants: dict[str, Callable[[], Any]], count: int, rounds: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {name: [] for name in variants}
    for call in variants.values():
        call()  # warm-up: imports, first-request work, the KoyebAuth memory copy
    names = list(variants)
    for turn in range(rounds):
        for name in names[turn % len(names):] + names[:turn % len(names)]:  # rotate: no fixed position
            figures[name] += median_us(variants[name], count, 1)
    return figures


async def _alternate_async(variants: dict[str, httpx.AsyncClient], count: int, rounds: int) -> dict[str, list[float]]:
    figures: dict[str, list[float]] = {name: [] for name in variants}
    for client in variants.values():
        await client.get(URL)
    names = list(variants)
    for turn in range(rounds):
        for name in names[turn % len(names):] + names[:turn % len(names)]:
            client = variants[name]
            start = time.perf_counter()
            for _ in range(count):
                await client.get(URL)
            figures[name].append((time.perf_counter() - start) / count * 1e6)
    return figures


def _audited(call: Callable[[], Any], count: int) -> int:
    _audit["events"], _audit["on"] = 0, True
    try:
        for _ in range(count):
            call()
    finally:
        _audit["on"] = False
    return _audit["events"]


if __name__ == "__main__":
    text, _ = measure()
    print(text)
