"""KoyebAuth, its stores and its errors pickle and copy: what worker pools, Celery and joblib need.

A pickled KoyebAuth carries its configuration (the arguments as given), never a token; the copy
shares the store, so a pool of worker processes given one KoyebAuth logs in once.
"""

from __future__ import annotations

import base64
import copy
import inspect
import multiprocessing
import pickle
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import httpx2
import pytest

from koyeb_auth import (
    ConfigurationError,
    FileTokenStore,
    Httpx2KoyebAuth,
    KoyebAuth,
    KoyebAuthError,
    MemoryTokenStore,
    RedisTokenStore,
    errors,
)
from koyeb_auth._token import fingerprint
from koyeb_auth.testing import FakeKoyebAPI

from . import pool_tasks

# --- errors --------------------------------------------------------------------------------------

# Errors whose constructor takes more than a message, with a value for each extra argument.
EXTRA_ARGUMENTS: dict[type[KoyebAuthError], tuple[object, ...]] = {
    errors.RateLimitedError: (12.5,),
    errors.APIError: (503,),
    errors.EndpointWithdrawnError: ("login", 410),
}
ALL_ERRORS = sorted((cls for _, cls in inspect.getmembers(errors, inspect.isclass)
                     if issubclass(cls, KoyebAuthError)), key=lambda cls: cls.__name__)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda cls: cls.__name__)
def test_every_error_pickles_and_unpickles_with_its_attributes(cls: type[KoyebAuthError]) -> None:
    error = cls("Koyeb login failed: try again", *EXTRA_ARGUMENTS.get(cls, ()))
    restored = pickle.loads(pickle.dumps(error))
    assert type(restored) is cls
    assert str(restored) == str(error) and restored.args == error.args
    assert vars(restored) == vars(error)
    assert copy.deepcopy(error).args == error.args


def test_the_errors_with_extra_arguments_keep_them() -> None:
    assert len(ALL_ERRORS) >= 15
    limited = pickle.loads(pickle.dumps(errors.RateLimitedError("slow down", 12.5)))
    assert limited.retry_after == 12.5
    failed = pickle.loads(pickle.dumps(errors.APIError("bad gateway", 502)))
    assert failed.status == 502


# --- KoyebAuth -----------------------------------------------------------------------------------


def issued_in(data: bytes, fake: FakeKoyebAPI) -> bool:
    return any(token.encode() in data for token in fake.issued)


def test_a_pickled_koyeb_auth_carries_its_configuration_and_shares_the_cache(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], cache_path: Path
) -> None:
    auth = make_auth(refresh_margin=120, timeout=5.0, lock_timeout=7.0, seon_fp="fp-1")
    token = auth.get_token()
    data = pickle.dumps(auth)
    leaked = issued_in(data, fake)  # a bool: a failure must not print the pickled bytes
    assert not leaked  # never a token

    restored = pickle.loads(data)
    assert type(restored) is KoyebAuth and restored is not auth
    assert repr(restored) == repr(auth)
    assert restored._credentials == auth._credentials and restored._timing == auth._timing
    assert restored._seon_fp == "fp-1"
    assert isinstance(restored.store, FileTokenStore) and restored.store.path == cache_path
    # The copy adopts the cached token: no second login.
    assert fingerprint(restored.get_token()) == fingerprint(token)
    with httpx.Client(base_url=fake.url, auth=restored) as client:
        assert client.get("/v1/apps").status_code == 200
    assert fake.stats["login"] == 1

    # A password given as an argument travels: the copy can log in by itself.
    cache_path.unlink()
    assert fingerprint(pickle.loads(data).get_token()) != fingerprint(token)
    assert fake.stats["login"] == 2


def test_credentials_from_the_environment_are_not_pickled_the_copy_reads_its_own(
    fake: FakeKoyebAPI, cache_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOYEB_EMAIL", fake.EMAIL)
    monkeypatch.setenv("KOYEB_PASSWORD", fake.PASSWORD)
    monkeypatch.setenv("KOYEB_URL", fake.url)
    auth = KoyebAuth(cache_path=cache_path)
    auth.get_token()
    data = pickle.dumps(auth)
    # A boolean per value, so that a failure does not print the password.
    carried = [name for name, value in (("password", fake.PASSWORD), ("email", fake.EMAIL), ("url", fake.url))
               if value.encode() in data]
    assert carried == []
    leaked = issued_in(data, fake)
    assert not leaked

    for name in ("KOYEB_EMAIL", "KOYEB_PASSWORD", "KOYEB_URL"):
        monkeypatch.delenv(name)
    with pytest.raises(ConfigurationError, match="No Koyeb credentials found"):
        pickle.loads(data).get_token()
    assert fake.stats["login"] == 1


def test_a_personal_token_given_as_an_argument_travels(fake: FakeKoyebAPI, cache_path: Path) -> None:
    auth = KoyebAuth(token=fake.PERSONAL_TOKEN, api_url=fake.url, cache_path=cache_path)
    restored = pickle.loads(pickle.dumps(auth))
    assert fingerprint(restored.get_token()) == fingerprint(fake.PERSONAL_TOKEN)
    assert repr(restored) == f"KoyebAuth(token=<redacted>, api_url={fake.url!r})"


def test_network_settings_travel(fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], tmp_path: Path) -> None:
    auth = make_auth(verify=str(tmp_path / "ca.pem"), proxy="http://proxy.internal:3128")
    assert pickle.loads(pickle.dumps(auth))._network == auth._network
    # A transport that pickles goes along, and the copy's session calls use it.
    mocked = make_auth(transport=httpx.MockTransport(_unavailable))
    with pytest.raises(errors.APIError, match="503"):
        pickle.loads(pickle.dumps(mocked)).get_token()
    assert fake.stats == {}


def _unavailable(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, json={"error": "unavailable"})


@pytest.mark.parametrize(("argument", "value", "advice"), [
    ("verify", ssl.create_default_context(), "path of a CA bundle"),
    ("transport", httpx.HTTPTransport(), "in each process"),
    ("async_transport", httpx.AsyncHTTPTransport(), "in each process"),
    ("on_event", lambda event: None, "top level of a module"),
])
def test_an_argument_that_cannot_be_pickled_is_named(
    cache_path: Path, argument: str, value: object, advice: str
) -> None:
    auth = KoyebAuth("me@example.com", "my-password", cache_path=cache_path, **{argument: value})
    with pytest.raises(ConfigurationError) as caught:
        pickle.dumps(auth)
    assert f"its {argument}= (" in str(caught.value) and advice in str(caught.value)
    # Copies in this process need no pickling: they share the object.
    assert copy.deepcopy(auth)._network == auth._network


def test_a_memory_store_refuses_to_be_pickled_and_is_shared_by_copies() -> None:
    store = MemoryTokenStore()
    with pytest.raises(ConfigurationError, match="each worker would log in by itself"):
        pickle.dumps(store)
    auth = KoyebAuth("me@example.com", "my-password", store=store)
    with pytest.raises(ConfigurationError, match="MemoryTokenStore cannot be pickled"):
        pickle.dumps(auth)
    assert copy.copy(store) is store and copy.deepcopy(store) is store
    assert copy.deepcopy(auth).store is store


def test_a_file_store_pickles_as_its_path(cache_path: Path) -> None:
    store = FileTokenStore(cache_path)
    store.try_lock()  # a store in use holds a lock object and a read cache: neither travels
    try:
        restored = pickle.loads(pickle.dumps(store))
    finally:
        store.unlock()
    assert type(restored) is FileTokenStore and restored.path == cache_path
    assert restored.lock_path == store.lock_path and restored._lock is None


# A list of three KoyebAuth pickled by the flat layout of koyeb-auth 0.x (koyeb_auth.config,
# koyeb_auth.file_store, koyeb_auth.token ... named in it): a personal token with a FileTokenStore and
# timeout=7, email and password with a cache_path, and an organization token with a RedisTokenStore.
_FLAT_LAYOUT_PICKLE = (
    "gASVyQQAAAAAAABdlCiMD2tveWViX2F1dGguYXV0aJSMCUtveWViQXV0aJSTlCmBlH2UKIwMX2NyZWRlbnRpYWxzlIwRa295ZWJf"
    "YXV0aC5jb25maWeUjAtDcmVkZW50aWFsc5STlCmBlH2UKIwFZW1haWyUTowIcGFzc3dvcmSUTowFdG9rZW6UjBBrb3llYl9hdXRo"
    "LnRva2VulIwIUmVkYWN0ZWSUk5SMQHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0"
    "dHR0dHR0dHR0dHSUhZSBlIwPb3JnYW5pemF0aW9uX2lklE6MB2FwaV91cmyUTnVijAdfdGltaW5nlIwUa295ZWJfYXV0aC5wcm92"
    "aWRlcnOUjAZUaW1pbmeUk5QpgZR9lCiMDnJlZnJlc2hfbWFyZ2lulEdAcsAAAAAAAIwHdGltZW91dJRLB4wMbG9ja190aW1lb3V0"
    "lEdATgAAAAAAAHVijAhfbmV0d29ya5SMFGtveWViX2F1dGgudHJhbnNwb3J0lIwHTmV0d29ya5STlCmBlH2UKIwGdmVyaWZ5lE6M"
    "BXByb3h5lE6MCXRyYW5zcG9ydJROjA9hc3luY190cmFuc3BvcnSUTnVijAZfc3RvcmWUjBVrb3llYl9hdXRoLmZpbGVfc3RvcmWU"
    "jA5GaWxlVG9rZW5TdG9yZZSTlIwHcGF0aGxpYpSMCVBvc2l4UGF0aJSTlCiMAS+UjAtub25leGlzdGVudJSMCmtveWViLWF1dGiU"
    "jAt0b2tlbnMuanNvbpR0lFKUhZRSlIwIX3Nlb25fZnCUTowJX29uX2V2ZW50lE6ME19vcmdhbml6YXRpb25fdG9rZW6UjARhdXRv"
    "lEdArCAAAAAAAIaUjBVfc3RvcmVfb2ZfZW52aXJvbm1lbnSUiXViaAMpgZR9lChoBmgJKYGUfZQoaAyMBWFAYi5jlGgNaBGMAnB3"
    "lIWUgZRoDk5oFU5oFmgRjBVodHRwczovL2FwcC5rb3llYi5jb22UhZSBlHViaBdoGimBlH2UKGgdR0BeAAAAAAAAaB5HQC4AAAAA"
    "AABoH0dATgAAAAAAAHViaCBoIymBlH2UKGgmTmgnTmgoTmgpTnViaCpoLWgwKGgxaDJoM4wGYy5qc29ulHSUUpSFlFKUaDlOaDpO"
    "aDtoPEdArCAAAAAAAIaUaD6JdWJoAymBlH2UKGgGaAkpgZR9lChoDE5oDU5oDmgRjEB0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0"
    "dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0lIWUgZRoFYwDb3JnlGgWTnViaBdoGimBlH2UKGgdR0BywAAA"
    "AAAAaB5HQC4AAAAAAABoH0dATgAAAAAAAHViaCBoIymBlH2UKGgmTmgnTmgoTmgpTnViaCqMFmtveWViX2F1dGgucmVkaXNfc3Rv"
    "cmWUjAlfZnJvbV91cmyUk5QoaBGMFXJlZGlzOi8vMTI3LjAuMC4xOjEvMJSFlIGUjAprb3llYi1hdXRolEdATgAAAAAAAEdAAAAA"
    "AAAAAHSUUpRoOU5oOk5oO2g8R0CsIAAAAAAAhpRoPol1YmUu"
)


# (KoyebAuth(token="t" * 64), KoyebAuth("a@b.c", "pw", api_url="https://app.koyeb.com")), both with
# FileTokenStore("/nonexistent/koyeb-auth/tokens.json"), pickled by 0.2.0: its Credentials was a
# dataclass, pickled as a dict of its fields.
_RELEASE_0_2_PICKLE = (
    "gASVxwMAAAAAAACMD2tveWViX2F1dGguYXV0aJSMCUtveWViQXV0aJSTlCmBlH2UKIwMX2NyZWRlbnRpYWxzlIwSa295ZWJfYXV0"
    "aC5fY29uZmlnlIwLQ3JlZGVudGlhbHOUk5QpgZR9lCiMBWVtYWlslE6MCHBhc3N3b3JklE6MBXRva2VulIwTa295ZWJfYXV0aC5f"
    "c2VjcmV0c5SMCFJlZGFjdGVklJOUjEB0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0dHR0"
    "dHR0dHR0dHR0dHR0lIWUgZSMD29yZ2FuaXphdGlvbl9pZJROjAdhcGlfdXJslE6MB3Byb2ZpbGWUTowKY2FjaGVfcGF0aJROdWKM"
    "B190aW1pbmeUjBNrb3llYl9hdXRoLl9tYW5hZ2VylIwGVGltaW5nlJOUKYGUfZQojA5yZWZyZXNoX21hcmdpbpRHQHLAAAAAAACM"
    "B3RpbWVvdXSUR0AuAAAAAAAAjAxsb2NrX3RpbWVvdXSUR0BOAAAAAAAAdWKMCF9uZXR3b3JrlIwVa295ZWJfYXV0aC5fdHJhbnNw"
    "b3J0lIwHTmV0d29ya5STlCmBlH2UKIwGdmVyaWZ5lE6MBXByb3h5lE6MCXRyYW5zcG9ydJROjA9hc3luY190cmFuc3BvcnSUTnVi"
    "jAZfc3RvcmWUjBdrb3llYl9hdXRoLnN0b3Jlcy5fZmlsZZSMDkZpbGVUb2tlblN0b3JllJOUjAdwYXRobGlilIwJUG9zaXhQYXRo"
    "lJOUKIwBL5SMC25vbmV4aXN0ZW50lIwKa295ZWItYXV0aJSMC3Rva2Vucy5qc29ulHSUUpSFlFKUjAhfc2Vvbl9mcJROjAlfb25f"
    "ZXZlbnSUTowTX29yZ2FuaXphdGlvbl90b2tlbpSMBGF1dG+UR0CsIAAAAAAAhpSMFV9zdG9yZV9vZl9lbnZpcm9ubWVudJSJjA5f"
    "cGFzc3dvcmRfaGFzaJROdWJoAimBlH2UKGgFaAgpgZR9lChoC4wFYUBiLmOUaAxoEIwCcHeUhZSBlGgNTmgUTmgVaBCMFWh0dHBz"
    "Oi8vYXBwLmtveWViLmNvbZSFlIGUaBZOaBdOdWJoGGgbKYGUfZQoaB5HQHLAAAAAAABoH0dALgAAAAAAAGggR0BOAAAAAAAAdWJo"
    "IWgkKYGUfZQoaCdOaChOaClOaCpOdWJoK2guaDEoaDJoM2g0aDV0lFKUhZRSlGg6Tmg7Tmg8aD1HQKwgAAAAAACGlGg/iWhATnVi"
    "hpQu"
)


def test_a_koyeb_auth_pickled_by_0_2_still_loads() -> None:
    token, password = pickle.loads(base64.b64decode(_RELEASE_0_2_PICKLE))
    assert repr(password) == "KoyebAuth(email='a@b.c', api_url='https://app.koyeb.com')"
    assert password._credentials.password == "pw"
    assert token.get_token() == "t" * 64
    assert pickle.loads(pickle.dumps(password))._credentials == password._credentials


def test_a_koyeb_auth_pickled_by_the_flat_layout_still_loads() -> None:
    token, password, organization = pickle.loads(base64.b64decode(_FLAT_LAYOUT_PICKLE))
    assert [type(auth) for auth in (token, password, organization)] == [KoyebAuth] * 3
    assert repr(password) == "KoyebAuth(email='a@b.c', api_url='https://app.koyeb.com')"
    assert repr(organization) == "KoyebAuth(token=<redacted>, organization_id='org')"
    assert isinstance(token.store, FileTokenStore)
    assert token.store.path == Path("/nonexistent/koyeb-auth/tokens.json")
    assert isinstance(organization.store, RedisTokenStore)
    assert token.get_token() == "t" * 64  # a personal token alone is sent as is: no I/O
    assert pickle.loads(pickle.dumps(token)).get_token() == "t" * 64  # and it pickles again



def test_copy_and_deepcopy_share_the_store_and_the_token(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    auth = make_auth(verify=ssl.create_default_context())  # an SSLContext does not pickle, nor need to
    token = auth.get_token()
    for clone in (copy.copy(auth), copy.deepcopy(auth)):
        assert clone is not auth and clone.store is auth.store and clone._network is auth._network
        assert fingerprint(clone.get_token()) == fingerprint(token)
    twice = copy.deepcopy([auth, auth])
    assert twice[0] is twice[1] and twice[0] is not auth
    assert fake.stats["login"] == 1


def test_httpx2_koyeb_auth_pickles_and_copies(fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]) -> None:
    auth = Httpx2KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=make_auth().store.path)
    for clone in (pickle.loads(pickle.dumps(auth)), copy.deepcopy(auth)):
        assert type(clone) is Httpx2KoyebAuth
        with httpx2.Client(base_url=fake.url, auth=clone) as client:
            assert client.get("/v1/apps").status_code == 200
    assert fake.stats["login"] == 1 and fake.stats["api"] == 2


def test_an_unpickled_copy_and_its_original_in_one_process_log_in_once(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth]
) -> None:
    # Two store objects on one file (the copy's is new): the file lock still admits one of them.
    auth = make_auth()
    copies = [auth, pickle.loads(pickle.dumps(auth))] * 4
    start = threading.Barrier(len(copies))
    seen: list[str] = []

    def run(each: KoyebAuth) -> None:
        start.wait(timeout=30)
        seen.append(fingerprint(each.get_token()))

    threads = [threading.Thread(target=run, args=(each,)) for each in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(seen) == len(copies) and len(set(seen)) == 1
    assert fake.stats["login"] == 1


# --- worker pools --------------------------------------------------------------------------------

WORKERS = 4


@pytest.mark.parametrize("method", multiprocessing.get_all_start_methods())
# Forking this multi-threaded process (the fake API's threads) is what the fork case tests; Python
# 3.12+ warns of it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_pool_of_workers_given_one_koyeb_auth_logs_in_once(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], method: str
) -> None:
    auth = make_auth()  # never used here: the workers start cold, all at once
    context = multiprocessing.get_context(method)
    start = context.Barrier(WORKERS)
    with context.Pool(WORKERS, initializer=pool_tasks.init_worker, initargs=(start,)) as pool:
        # map_async and a timeout: a worker that died would leave a plain map() waiting forever.
        results = pool.map_async(pool_tasks.fetch_apps, [auth] * WORKERS, chunksize=1).get(timeout=180)
    pids = {pid for pid, _, _ in results}
    assert len(pids) == WORKERS  # one task per worker: each waited for the others
    statuses = [status for _, each, _ in results for status in each]
    assert statuses == [200] * WORKERS * pool_tasks.REQUESTS_PER_TASK
    assert len({token for _, _, token in results}) == 1
    assert fake.stats["login"] == 1
    assert fake.stats["api"] == WORKERS * pool_tasks.REQUESTS_PER_TASK
    assert fake.stats.get("unauthorized", 0) == 0
    # The parent's own KoyebAuth finds the workers' token too.
    auth.get_token()
    assert fake.stats["login"] == 1


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_the_workers_of_a_pool_do_not_derive_the_password_hash_again(
    fake: FakeKoyebAPI, make_auth: Callable[..., KoyebAuth], method: str
) -> None:
    auth = make_auth()
    parents = fingerprint(auth.get_token())  # the parent derives the hash and logs in
    context = multiprocessing.get_context(method)
    # Each worker's scrypt raises: the hash must travel with the pickled KoyebAuth.
    with context.Pool(2, initializer=pool_tasks.refuse_to_hash) as pool:
        tokens = pool.map_async(pool_tasks.token_of, [auth] * 4, chunksize=1).get(timeout=120)
    assert tokens == [parents] * 4
    assert fake.stats["login"] == 1


def test_a_password_read_from_the_environment_sends_no_hash_with_the_pickle(
    fake: FakeKoyebAPI, cache_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KOYEB_EMAIL", fake.EMAIL)
    monkeypatch.setenv("KOYEB_PASSWORD", fake.PASSWORD)
    auth = KoyebAuth(api_url=fake.url, cache_path=cache_path)
    auth.get_token()
    assert auth.__getstate__()["_password_hash"] is None  # the pickle carries no password: no hash either
    given = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=cache_path)
    given.get_token()
    salt, derived = given.__getstate__()["_password_hash"]
    # The slow hash itself, never the process's fast digest of the password.
    assert len(bytes.fromhex(derived)) == 32 and fake.PASSWORD not in salt
