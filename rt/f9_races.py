"""Races in one process against a real file store, with a peer PROCESS holding the file lock:
(a) Ctrl-C while waiting for the hash; (b) a peer saves a session another password opened while we
wait; (c) the hash thread dies of MemoryError while we wait."""
import hashlib, json, multiprocessing as mp, os, signal, sys, tempfile, time
from pathlib import Path
from koyeb_auth import KoyebAuth, _sources
from koyeb_auth._token import Token
from koyeb_auth.stores import FileTokenStore
from koyeb_auth.testing import FakeKoyebAPI

def peer(cache, hold, plant, go):
    store = FileTokenStore(cache)
    assert store.try_lock()
    go.set()
    time.sleep(hold)
    if plant is not None:
        store.save(plant[0], plant[1])
    store.unlock()

def run(case, api, tmp, slow_hash, plant=None, interrupt_after=None, hold=0.6):
    cache = Path(tmp) / f"{case}.json"
    _sources._hashes.clear()
    auth = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=cache, lock_timeout=5)
    go = mp.get_context("fork").Event()
    p = mp.get_context("fork").Process(target=peer, args=(cache, hold, plant, go)); p.start(); go.wait()
    hashlib.scrypt = slow_hash
    if interrupt_after:
        signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
        signal.setitimer(signal.ITIMER_REAL, interrupt_after)
    t0 = time.monotonic()
    try:
        auth.get_token(); out = "token"
    except BaseException as exc:
        out = type(exc).__name__
    hashlib.scrypt = REAL
    first = f"{out} after {time.monotonic() - t0:.2f}s"
    p.join()
    try:
        auth.get_token(); again = "token"
    except BaseException as exc:
        again = f"{type(exc).__name__}: {exc}"
    print(f"{case}: {first}; again: {again}; logins so far {api.stats.get('login')}")

REAL = hashlib.scrypt
def slow(*a, **k):
    time.sleep(0.4); return REAL(*a, **k)
def dies(*a, **k):
    time.sleep(0.2); raise MemoryError("scrypt")

with FakeKoyebAPI() as api, tempfile.TemporaryDirectory() as tmp:
    run("ctrl-c while the hash is derived", api, tmp, slow, interrupt_after=0.2)
    key = _sources.PasswordLogin(api.url, api.EMAIL, "x").key
    other = Token("planted-by-other-password", time.time(), time.time() + 3600,
                  password_hash=_sources._scrypt("old password", _sources.password_salt(api.url, api.EMAIL)))
    run("peer saves another password's session", api, tmp, slow, plant=(key, other))
    run("hash thread MemoryError while waiting", api, tmp, dies)
