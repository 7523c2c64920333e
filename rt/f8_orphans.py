"""A service that builds a KoyebAuth per request from the user's credentials, one request at a
time (a single worker): a refused login returns at once, its hash thread runs on. Nothing bounds
how many 16 MiB scrypts run at once, and every password's hash stays in _hashes for good."""
import resource, sys, tempfile, threading, time
from pathlib import Path
from koyeb_auth import KoyebAuth, _sources
from koyeb_auth.errors import KoyebAuthError
from koyeb_auth.testing import FakeKoyebAPI

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
with FakeKoyebAPI() as api, tempfile.TemporaryDirectory() as tmp:
    cache = Path(tmp) / "tokens.json"
    peak, t0 = 0, time.monotonic()
    for i in range(N):
        auth = KoyebAuth(f"user{i}@example.com", f"guess {i}", api_url=api.url, cache_path=cache)
        try:
            auth.get_token()
        except KoyebAuthError:
            pass
        peak = max(peak, sum(t.name == "koyeb-auth password hash" for t in threading.enumerate()))
    served = time.monotonic() - t0
    while any(t.name == "koyeb-auth password hash" for t in threading.enumerate()):
        time.sleep(0.05)
    print(f"{N} refused requests served in {served:.2f} s; hash threads alive at once, peak: {peak}; "
          f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB; "
          f"_hashes entries: {len(getattr(_sources, '_hashes', {}))}")
