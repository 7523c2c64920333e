"""Planted password_hash values in a real cache file: who adopts the planted session, who crashes."""
import json, tempfile, time
from pathlib import Path
from koyeb_auth import KoyebAuth, _sources
from koyeb_auth.errors import KoyebAuthError
from koyeb_auth.testing import FakeKoyebAPI

with FakeKoyebAPI() as api, tempfile.TemporaryDirectory() as tmp:
    api.users["other@example.com"] = "other-password"
    salt = _sources.password_salt(api.url, api.EMAIL)
    right = _sources._scrypt(api.PASSWORD, salt)
    variants = {
        "missing": ..., "None": None, "int": 123, "list": [right], "dict": {"h": right}, "empty": "",
        "non-hex": "z" * 64, "upper-case right hash": right.upper(), "right hash + space": right + " ",
        "non-ASCII": "é" * 64, "huge ASCII (900 kB)": "a" * 900_000,
        "other account's hash": _sources._scrypt("other-password", _sources.password_salt(api.url, "other@example.com")),
        "same password, other API URL's salt": _sources._scrypt(api.PASSWORD, _sources.password_salt("https://x.example", api.EMAIL)),
        "hash of the empty password": _sources._scrypt("", salt),
        "right hash (control)": right,
    }
    for name, value in variants.items():
        for who, email, pw in (("right pw", api.EMAIL, api.PASSWORD), ("wrong pw", api.EMAIL, "guess"),
                               ("UPPER-case email, right pw", api.EMAIL.upper(), api.PASSWORD)):
            cache = Path(tmp) / f"{abs(hash((name, who)))}.json"
            key = _sources.PasswordLogin(api.url, api.EMAIL, None).key
            entry = {"token": "planted-token", "obtained_at": time.time(), "expires_at": time.time() + 3600}
            if value is not ...:
                entry["password_hash"] = value
            cache.write_text(json.dumps({"version": 1, "tokens": {key: entry}})); cache.chmod(0o600)
            before = api.stats.get("login", 0)
            try:
                got = KoyebAuth(email, pw, api_url=api.url, cache_path=cache).get_token()
                out = "ADOPTED planted" if got == "planted-token" else "logged in"
            except KoyebAuthError as exc:
                out = type(exc).__name__
            except Exception as exc:
                out = f"CRASH {type(exc).__name__}"
            print(f"{name:38} {who:27} {out}  (+{api.stats.get('login', 0) - before} login)")
