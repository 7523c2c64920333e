"""fork / spawn / pickle while the parent's hash is in flight."""
import multiprocessing as mp, pickle, tempfile, time, warnings
from pathlib import Path
warnings.simplefilter("ignore", DeprecationWarning)
from koyeb_auth import KoyebAuth, _sources
from koyeb_auth.testing import FakeKoyebAPI

def child(auth, q):
    t0 = time.monotonic()
    try:
        auth.get_token(); q.put(("ok", round(time.monotonic() - t0, 3), len(_sources._deriving)))
    except BaseException as exc:
        q.put((type(exc).__name__, str(exc), None))

if __name__ == "__main__":
    with FakeKoyebAPI() as api, tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "tokens.json"
        seed = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=cache)
        seed.get_token()  # a session is cached, with the hash of the right password
        _sources._hashes.clear()  # as in a fresh parent that has not derived it
        for method in ("fork", "spawn", "forkserver"):
            auth = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=cache)
            auth.settings  # _setup: the hash thread starts
            print(method, "pickle carries a hash while in flight:", pickle.loads(pickle.dumps(auth)) and
                  auth.__getstate__()["_password_hash"] is not None, "| in flight:", len(_sources._deriving))
            ctx = mp.get_context(method); q = ctx.Queue()
            p = ctx.Process(target=child, args=(auth, q)); p.start(); print("  child:", q.get(timeout=30)); p.join()
            _sources._hashes.clear()
        # A wrong password's pickle with a carried hash: the hash of the RIGHT password, planted
        wrong = KoyebAuth(api.EMAIL, "guess", api_url=api.url, cache_path=cache)
        state = wrong.__getstate__()
        right_hash = _sources._scrypt(api.PASSWORD, _sources.password_salt(api.url, api.EMAIL))
        state["_password_hash"] = (_sources.password_salt(api.url, api.EMAIL), right_hash)
        forged = KoyebAuth.__new__(KoyebAuth); forged.__setstate__(state)
        try:
            forged.get_token(); print("forged pickle: GOT the session (but a pickle is code execution anyway)")
        except Exception as exc:
            print("forged pickle:", type(exc).__name__)
