"""A thread that cannot be started (the process's thread limit, RLIMIT_NPROC, interpreter shutdown)
leaves a never-started Thread in _deriving: that password is broken in this process for good."""
import tempfile, threading
from pathlib import Path
from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

real_start = threading.Thread.start
def refuse_once(self):
    if self.name == "koyeb-auth password hash":
        threading.Thread.start = real_start  # only this once
        raise RuntimeError("can't start new thread")
    return real_start(self)

with FakeKoyebAPI() as api, tempfile.TemporaryDirectory() as tmp:
    cache = Path(tmp) / "tokens.json"
    threading.Thread.start = refuse_once
    for attempt in range(3):
        auth = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=cache)  # a new one each time
        try:
            auth.get_token()
            print(attempt, "ok")
        except BaseException as exc:
            print(attempt, type(exc).__name__, exc)
    print("logins the API answered:", api.stats.get("login"))
