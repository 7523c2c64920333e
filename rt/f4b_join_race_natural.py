"""The same race with no pause added: only a short GIL switch interval and a fast stand-in for scrypt."""
import hashlib, sys, threading
from koyeb_auth import _sources
_sources._scrypt = lambda pw, salt: hashlib.sha256((salt + pw).encode()).hexdigest()
sys.setswitchinterval(1e-6)
N = 3000
barrier = threading.Barrier(2)
errors = []
def preparer():
    for i in range(N):
        barrier.wait(); _sources.prepare_password_hash(f"pw{i}", "salt")
def needer():
    for i in range(N):
        barrier.wait()
        try:
            _sources.password_hash(f"pw{i}", "salt")
        except RuntimeError as exc:
            errors.append(str(exc))
ts = [threading.Thread(target=preparer), threading.Thread(target=needer)]
[t.start() for t in ts]; [t.join() for t in ts]
print(f"{len(errors)} of {N}:", set(errors))
