"""A logout registered with atexit (a common clean-up): does its hash thread start at shutdown?"""
import atexit, tempfile, sys
from pathlib import Path
from koyeb_auth import KoyebAuth
from koyeb_auth.testing import FakeKoyebAPI
api = FakeKoyebAPI().start(); tmp = tempfile.mkdtemp()
auth = KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=Path(tmp) / "t.json")
def bye():
    try:
        print("atexit logout ->", KoyebAuth(api.EMAIL, api.PASSWORD, api_url=api.url, cache_path=Path(tmp) / "t.json").logout())
    except BaseException as exc:
        print("atexit logout ->", type(exc).__name__, exc)
atexit.register(bye)
auth.get_token(); print(sys.version.split()[0], "logged in")
from koyeb_auth import _sources; _sources._hashes.clear()  # the atexit KoyebAuth must derive it
