"""Two threads of one process with the same password: one has registered its hash thread in
_deriving but not started it yet (prepare_password_hash starts it after releasing _hashing); the
other joins it. The window is widened here with a 50 ms pause before Thread.start."""
import tempfile, threading, time
from pathlib import Path
from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

real_start = threading.Thread.start
def slow_start(self):
    if self.name == "koyeb-auth password hash":
        time.sleep(0.05)  # what a busy 2-core machine can do between two lines
    return real_start(self)
threading.Thread.start = slow_start

with FakeKoyebAPI() as api, tempfile.TemporaryDirectory() as tmp:
    cache = Path(tmp) / "tokens.json"
    KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=Path(tmp) / "seed.json")  # nothing derived
    from koyeb_auth import _sources
    results = []
    def worker():
        auth = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=cache)
        try:
            auth.get_token(); results.append("ok")
        except BaseException as exc:
            results.append(f"{type(exc).__name__}: {exc}")
    a = threading.Thread(target=worker); a.start()
    time.sleep(0.01)  # a is inside slow_start
    # b: the CLI-like path that needs the hash now (owns / opened), e.g. another KoyebAuth's flow
    try:
        _sources.password_hash(api.PASSWORD, _sources.password_salt(api.url, api.EMAIL)); results.append("b ok")
    except BaseException as exc:
        results.append(f"b {type(exc).__name__}: {exc}")
    a.join()
    print(results)
