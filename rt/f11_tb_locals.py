"""Render the new failure paths with every frame's locals (as Sentry's capture_locals does): does a
password, a token or a password hash show?"""
import hashlib, json, tempfile, time, traceback
from pathlib import Path
from koyeb_auth import KoyebAuth, _sources
from koyeb_auth.testing import FakeKoyebAPI

def show(text, secrets):
    lines = text.splitlines()
    for k, v in secrets.items():
        for i, line in enumerate(lines):
            if v in line:
                ctx = [l for l in lines[:i] if l.strip().startswith('File "')][-1].strip()
                print(f"  {k}: {ctx[-70:]}  ::  {line.strip()[:120]}")

def render(exc):
    exc.__traceback__ = exc.__traceback__.tb_next  # not this script's own frame (it holds the secrets)
    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())

with FakeKoyebAPI() as api, tempfile.TemporaryDirectory() as tmp:
    cache = Path(tmp) / "t.json"
    KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=cache).get_token()
    doc = json.loads(cache.read_text()); (entry,) = doc["tokens"].values()
    secrets = {"password": api.PASSWORD, "token": entry["token"], "hash": entry["password_hash"]}
    # 1: scrypt fails in the caller (MemoryError), session cached
    _sources._hashes.clear(); real = hashlib.scrypt
    hashlib.scrypt = lambda *a, **k: (_ for _ in ()).throw(MemoryError())
    try:
        KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=cache).get_token()
    except MemoryError as exc:
        text = render(exc); print("MemoryError frames:", text.count('File "'), "| shows:", [k for k, v in secrets.items() if v in text]); show(text, secrets)
    # 2: after login (empty store): the new session's token is a local of _token_from
    try:
        KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=Path(tmp) / "e.json").get_token()
    except MemoryError as exc:
        text = render(exc); new = api.issued[-1]
        print("MemoryError after login frames:", text.count('File "'), "| shows:",
              [k for k, v in {**secrets, "new token": new}.items() if v in text])
    hashlib.scrypt = real
    # 3: TypeError from a non-ASCII planted hash
    entry["password_hash"] = "é" * 64; cache.write_text(json.dumps(doc))
    try:
        KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=cache).get_token()
    except TypeError as exc:
        text = render(exc); print("TypeError frames:", text.count('File "'), "| shows:", [k for k, v in secrets.items() if v in text])
    for k, v in secrets.items():
        for i, line in enumerate(text.splitlines()):
            if v in line:
                ctx = [l for l in text.splitlines()[:i] if l.strip().startswith('File "')][-1].strip()
                print(f"  {k}: {ctx[-90:]}  ::  {line.strip()[:160]}")
