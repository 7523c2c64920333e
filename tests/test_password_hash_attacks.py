"""Attacks on the password hash kept beside a cached session: planted hashes, a hash that cannot be
derived, the background thread's start, fork, and the bounds on threads and memory."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sys
import threading
import time
import uuid
import warnings
from typing import Any

import pytest

from koyeb_auth import Token, _logs, _sources
from koyeb_auth._sources import PasswordLogin
from koyeb_auth._token import entry_from_token, token_from_entry

from .test_engine import API_URL, HOUR, T0, make_rig


def _fresh_login() -> PasswordLogin:
    return PasswordLogin(API_URL, "ops@example.com", f"password {uuid.uuid4()}")


@pytest.mark.parametrize("planted", ["é" * 64, "z" * 64, "A" * 64, "a" * 63, "a" * 100_000, "", 64, None])
def test_a_planted_password_hash_that_is_no_hash_is_no_one_s_and_crashes_nothing(planted: object) -> None:
    """A store anyone may write holds anything: a non-ASCII string made hmac.compare_digest raise
    TypeError in every process of the account (file or Redis), before it could log in."""
    source = _fresh_login()
    rig = make_rig(source)
    entry = {**entry_from_token(Token("planted", obtained_at=T0, expires_at=T0 + HOUR)), "password_hash": planted}
    rig.store.token = token_from_entry(entry)
    assert rig.store.token is not None
    assert rig.manager.get_token().value != "planted"
    assert rig.api.actions() == ["login"]


def _no_memory(*args: Any, **kwargs: Any) -> bytes:
    raise MemoryError("scrypt")


def test_a_hash_that_cannot_be_derived_opens_one_session_not_one_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """scrypt failing (MemoryError in a memory-capped container, an OpenSSL without it) used to fail
    after the login: every call opened a session at the API, lost it, and raised (no backoff)."""
    monkeypatch.setattr(hashlib, "scrypt", _no_memory)
    source = _fresh_login()
    rig = make_rig(source)
    first = rig.manager.get_token()
    assert [rig.manager.get_token() for _ in range(5)] == [first] * 5
    assert rig.api.actions() == ["login"]
    # Owned by no one: a hash it cannot derive adopts nothing, and gives its session to no one.
    assert first.password_hash is None and not source.owns(first)


def test_a_hash_that_cannot_be_derived_is_warned_about_once_per_process(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """While scrypt kept failing, every adoption check and every session opened logged the same
    warning again: a worker renewing for days filled its log with it."""
    monkeypatch.setattr(hashlib, "scrypt", _no_memory)
    monkeypatch.setattr(_logs, "_warned", set())
    source = _fresh_login()
    token = Token("opened", obtained_at=T0, expires_at=T0 + HOUR)
    with caplog.at_level(logging.WARNING, logger="koyeb_auth"):
        for _ in range(3):
            assert source.prepare(wait=True) is False
            assert source.opened(token).password_hash is None
            assert not source.owns(token.replace(password_hash="a" * 64))
    warned = [record.getMessage() for record in caplog.records if "password's hash" in record.getMessage()]
    assert warned == ["Could not derive the password's hash (MemoryError): this process shares no session with "
                      "the others"]


def test_an_email_with_a_line_feed_shares_no_remembered_hash_with_another_account() -> None:
    """The memo of a hash joined salt and password with a line feed: the account `ops@example.com`
    with the password `b\\nx` had the memo of the account `ops@example.com\\nb` with the password `x`,
    so a process holding both got the first's hash for the second."""
    suffix = str(uuid.uuid4())
    first_salt = _sources.password_salt(API_URL, "ops@example.com\nb")
    second_salt = _sources.password_salt(API_URL, "ops@example.com")
    first = _sources.password_hash(f"x{suffix}", first_salt)
    second = _sources.password_hash(f"b\nx{suffix}", second_salt)
    assert second == _sources._scrypt(f"b\nx{suffix}", second_salt) != first


def test_a_hash_thread_that_cannot_start_does_not_break_the_password_for_good(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread limit reached once (RuntimeError: can't start new thread) left a never-started
    thread in _deriving: every later call joined it and raised, after sending a login."""
    real_start = threading.Thread.start
    refused: list[str] = []

    def refuse_once(thread: threading.Thread) -> None:
        if thread.name == "koyeb-auth password hash" and not refused:
            refused.append(thread.name)
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", refuse_once)
    source = _fresh_login()
    rig = make_rig(source)
    assert refused
    token = rig.manager.get_token()
    assert source.owns(token)
    assert make_rig(source).manager.get_token().value != ""  # another manager of the same password


def test_a_hash_is_not_joined_before_its_thread_has_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """The background derivation registered its thread, released the lock, then started it: a thread
    that needed the hash meanwhile joined a thread not yet started (RuntimeError)."""
    real_start = threading.Thread.start
    starting = threading.Event()

    def slow_start(thread: threading.Thread) -> None:
        if thread.name == "koyeb-auth password hash":
            starting.set()
            time.sleep(0.05)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", slow_start)
    password, salt = f"password {uuid.uuid4()}", "salt"
    preparing = threading.Thread(target=_sources.password_hash, args=(password, salt), kwargs={"wait": False})
    preparing.start()
    assert starting.wait(5)
    try:
        assert _sources.password_hash(password, salt) == _sources._scrypt(password, salt)
    finally:
        preparing.join()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_child_forked_while_the_memo_lock_is_held_can_still_hash() -> None:
    """A fork while a hash thread held _hashing (its `finally`) left the child's copy held: the
    child hung in its first background derivation."""
    with _sources._hashing, warnings.catch_warnings():  # what a hash thread holds for a moment
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running: the point
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            signal.alarm(5)
            _sources.password_hash(f"child {uuid.uuid4()}", "salt", wait=False)
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "the child hung (SIGALRM) or failed"


def test_background_hashes_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A service that builds a KoyebAuth per request: each refused login returned while its 16 MiB
    scrypt ran on in a thread, with no bound (200 concurrent requests: 44 at once, 849 MiB)."""
    release = threading.Event()
    real = hashlib.scrypt

    def held(*args: Any, **kwargs: Any) -> bytes:
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "scrypt", held)
    try:
        for _ in range(50):
            _sources.password_hash(f"password {uuid.uuid4()}", "salt", wait=False)
        running = sum(t.name == "koyeb-auth password hash" for t in threading.enumerate())
        assert running <= _sources.MAX_BACKGROUND_HASHES
    finally:
        release.set()


def test_the_memo_of_hashes_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sources, "_scrypt", lambda password, salt: hashlib.sha256(password.encode()).hexdigest())
    bound = _sources.MAX_REMEMBERED_HASHES
    for number in range(bound + 100):
        _sources.password_hash(f"password {number}", "salt")
    assert len(_sources._hashes) <= bound


def test_a_password_login_without_a_password_owns_no_session() -> None:
    """KOYEB_EMAIL without a password: its hash is that of "", which anyone can compute (the salt
    is public), so a planted session carrying it was adopted."""
    source = PasswordLogin(API_URL, "ops@example.com", None)
    planted = Token("planted", obtained_at=T0, expires_at=T0 + HOUR,
                    password_hash=_sources._scrypt("", _sources.password_salt(API_URL, "ops@example.com")))
    assert not source.owns(planted)


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("fork and signals")
