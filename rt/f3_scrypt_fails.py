"""scrypt that fails (MemoryError: a memory-capped container; ValueError: an OpenSSL without it)
after the change: every get_token sends a login, loses the session, raises; nothing backs off."""
import hashlib, tempfile
from pathlib import Path
from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI

def no_memory(*a, **k):
    raise MemoryError("scrypt: 16 MiB")
hashlib.scrypt = no_memory

with FakeKoyebAPI() as api, tempfile.TemporaryDirectory() as tmp:
    auth = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=Path(tmp) / "tokens.json")
    errors = set()
    for _ in range(20):
        try:
            auth.get_token()
        except BaseException as exc:
            errors.add(f"{type(exc).__name__}: {exc}")
    print("errors:", errors)
    print("logins the API answered:", api.stats.get("login"), "sessions live at the API:", len(api.live_tokens()))
