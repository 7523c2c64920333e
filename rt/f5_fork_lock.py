"""A fork while a hash thread holds _sources._hashing (its `finally`, or a prepare in another
thread): the child's copy of the lock stays held, and its first prepare_password_hash hangs."""
import hashlib, os, signal, sys, threading, time, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
from koyeb_auth import _sources
_sources._scrypt = lambda pw, salt: hashlib.sha256((salt + pw).encode()).hexdigest()  # fast stand-in
sys.setswitchinterval(1e-6)
stop = False
def churn():
    i = 0
    while not stop:
        i += 1; _sources.prepare_password_hash(f"pw{i}", "salt")
        _sources.password_hash(f"pw{i}", "salt")
threading.Thread(target=churn, daemon=True).start()
hung = 0
for n in range(300):
    pid = os.fork()
    if pid == 0:
        signal.alarm(2)  # a hung child dies of SIGALRM
        _sources.prepare_password_hash("child password", "salt")
        _sources.password_hash("child password", "salt")
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM:
        hung += 1
stop = True
print(f"children that hung in prepare_password_hash: {hung} of 300")
