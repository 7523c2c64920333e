"""How long a first aget_token blocks the event loop: a ticker measures the longest gap."""
import asyncio, sys, tempfile, time
from pathlib import Path
from koyeb_auth import KoyebAuth, _sources
from koyeb_auth.testing import FakeKoyebAPI

async def measure(coro):
    gaps, done = [], False
    async def ticker():
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001); now = time.perf_counter(); gaps.append(now - last); last = now
    t = asyncio.create_task(ticker()); await asyncio.sleep(0.01)
    try:
        await coro
    except Exception as exc:
        print("   ", type(exc).__name__)
    done = True; await t
    return max(gaps) * 1000

async def main(api, tmp):
    cache = Path(tmp) / "tokens.json"
    await KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=cache).aget_token()
    for case, pw in (("right password, session cached", api.PASSWORD), ("wrong password, session cached", "guess-1"),
                     ("wrong password, another", "guess-2")):
        _sources._hashes.clear()
        auth = KoyebAuth(api.EMAIL, pw, api_url=api.url, cache_path=cache)
        print(f"{case}: loop blocked up to {await measure(auth.aget_token()):.0f} ms")
    # Empty store: wrong password, nothing to compare
    _sources._hashes.clear()
    auth = KoyebAuth(api.EMAIL, "guess-3", api_url=api.url, cache_path=Path(tmp) / "empty.json")
    print(f"wrong password, empty store: loop blocked up to {await measure(auth.aget_token()):.0f} ms")

with FakeKoyebAPI() as api, tempfile.TemporaryDirectory() as tmp:
    asyncio.run(main(api, tmp))
