"""An asyncio service: N concurrent requests, each with its own KoyebAuth (user-supplied password)."""
import asyncio, resource, sys, tempfile, threading, time
from pathlib import Path
from koyeb_auth import KoyebAuth, _sources
from koyeb_auth.errors import KoyebAuthError
from koyeb_auth.testing import FakeKoyebAPI

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
peak = 0
def watch():
    global peak
    while True:
        peak = max(peak, sum(t.name == "koyeb-auth password hash" for t in threading.enumerate()))
        time.sleep(0.002)
threading.Thread(target=watch, daemon=True).start()
async def one(api, cache, i):
    try:
        await KoyebAuth(f"user{i}@example.com", f"guess {i}", api_url=api.url, cache_path=cache / f"{i}.json").aget_token()
    except KoyebAuthError:
        pass
async def main(api, cache):
    t0 = time.monotonic()
    await asyncio.gather(*(one(api, cache, i) for i in range(N)))
    served = time.monotonic() - t0
    while any(t.name == "koyeb-auth password hash" for t in threading.enumerate()):
        await asyncio.sleep(0.05)
    print(f"{N} concurrent refused requests in {served:.2f} s; hash threads at once, peak {peak}; "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
with FakeKoyebAPI(login_delay=0.2) as api, tempfile.TemporaryDirectory() as tmp:
    asyncio.run(main(api, Path(tmp)))
