"""A cache entry whose password_hash is a non-ASCII str crashes every process of the account."""
import json, sys, tempfile, time, traceback
from pathlib import Path
from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

with FakeKoyebAPI() as api, tempfile.TemporaryDirectory() as tmp:
    cache = Path(tmp) / "tokens.json"
    good = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=cache)
    good.get_token()
    tok = good.cached_token()
    print("right password cached:", tok is not None)
    data = json.loads(cache.read_text())
    print("file keys:", list(data) if isinstance(data, dict) else type(data))
    # Plant: the same entry, password_hash replaced by a non-ASCII string
    def plant(obj):
        if isinstance(obj, dict):
            if "password_hash" in obj:
                obj["password_hash"] = "é" * 64
            for v in obj.values():
                plant(v)
    plant(data)
    cache.write_text(json.dumps(data))
    for who, pw in (("right password, new process", api.PASSWORD), ("wrong password", "guess")):
        auth = KoyebAuth(api.EMAIL, pw, api_url=api.url, cache_path=cache)
        try:
            t = auth.get_token(); print(who, "-> token (str)", len(t)); continue
            pass
        except Exception as exc:
            print(who, "->", type(exc).__name__, exc)
        try:
            print(who, "logout ->", auth.logout())
        except Exception as exc:
            print(who, "logout ->", type(exc).__name__, exc)
