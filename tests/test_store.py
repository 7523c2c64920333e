"""The file store: atomic private writes, every kind of bad file is a miss or a clear error."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import stat
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import platformdirs
import pytest
import requests
from freezegun import freeze_time

from koyeb_auth import CacheFileError, FileTokenStore, KoyebAuth, KoyebAuthError, Token
from koyeb_auth.stores._file import UNUSABLE_RETRY, user_cache_dir
from koyeb_auth.testing import FakeKoyebAPI

GOOD = Token("token-value", obtained_at=1000.0, expires_at=2000.0, user_id="u", organization_id="o")


def test_saved_token_round_trips_in_a_private_file_in_a_private_directory(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "new-dir" / "tokens.json")
    assert store.lock(timeout=1)
    store.save("k", GOOD)
    store.unlock()
    assert store.load("k") == GOOD
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


def test_one_file_holds_several_accounts_and_drops_those_expired(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save("old", Token("old", obtained_at=0, expires_at=500))
    store.save("a", GOOD)
    store.save("b", Token("other", obtained_at=1500, expires_at=3000))
    assert store.load("a") == GOOD
    assert store.load("b") is not None
    assert store.load("old") is None  # expired before "b" was issued: pruned
    store.delete("a")
    assert store.load("a") is None and store.load("b") is not None


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"null", b"[]", b'{"version": 99, "tokens": {}}', b'{"version": 1, "tokens": []}',
     b'{"version": 1, "tokens": {"k": {"token": 5, "obtained_at": 1}}}',
     b'{"version": 1, "tokens": {"k": {"token": "t", "obtained_at": "yesterday"}}}',
     b'{"version": 1, "tokens": {"k": {"token": "t", "obtained_at": 1, "expires_at": NaN}}}',
     b"\x00\xff garbage", "{\"version\": 1, \"tokens\": {\"k\": \"\u00e9\"}}".encode("latin-1")],
)
def test_a_corrupt_file_is_a_miss_and_is_replaced_by_the_next_token(tmp_path: Path, content: bytes) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.path.write_bytes(content)
    store.path.chmod(0o600)
    assert store.load("k") is None
    store.save("k", GOOD)
    assert store.load("k") == GOOD


def test_a_world_readable_file_is_not_trusted_and_gets_replaced_private(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save("k", GOOD)
    store.path.chmod(0o644)
    assert store.load("k") is None
    store.save("k", GOOD)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600 and store.load("k") == GOOD


def test_a_huge_file_is_a_miss(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.path.write_bytes(b" " * (2 << 20))
    store.path.chmod(0o600)
    assert store.load("k") is None


def test_a_directory_in_place_of_the_file_is_a_miss(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.path.mkdir()
    assert store.load("k") is None


def test_a_symlink_is_refused_and_neither_followed_nor_written_through(tmp_path: Path) -> None:
    victim = tmp_path / "victim.json"
    victim.write_text(json.dumps({"version": 1, "tokens": {"k": {"token": "planted", "obtained_at": 1}}}))
    victim.chmod(0o600)
    store = FileTokenStore(tmp_path / "tokens.json")
    store.path.symlink_to(victim)
    with pytest.raises(CacheFileError, match="symlink"):
        store.load("k")
    assert "planted" in victim.read_text()


def test_the_lock_file_is_separate_and_stays_after_release(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    assert store.try_lock()
    other = FileTokenStore(tmp_path / "tokens.json")  # another holder, as another process would be
    assert not other.try_lock()
    store.unlock()
    assert store.lock_path.exists() and store.lock_path != store.path
    assert other.try_lock()
    other.unlock()
    assert store.lock_path.exists()


def test_temp_files_left_by_a_killed_writer_are_cleaned_up(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    leftover = tmp_path / ".tokens.json.abc123.tmp"
    leftover.write_text("half a token")
    store.save("k", GOOD)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]



def test_a_cache_write_leaves_the_temp_files_of_the_login_files_beside_it(tmp_path: Path) -> None:
    # `koyeb-auth login --store redis://...` writes its login file beside this cache under Redis's
    # lock, not this file's: a cache writer that took its temporary file for a leftover of its own
    # would make that login fail ("cannot be written") at the rename.
    store = FileTokenStore(tmp_path / "tokens.json")
    mine = tmp_path / ".tokens.json.abc123.tmp"
    logins = [tmp_path / ".tokens.json.login.k2j4h6g8.tmp", tmp_path / ".tokens.json.profile-work.login.k2j4h6g8.tmp"]
    for path in [mine, *logins]:
        path.write_text("being written")
    store.save("k", GOOD)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["tokens.json", *(p.name for p in logins)])

def test_a_cache_whose_name_holds_glob_characters_cleans_its_own_leftovers_and_no_one_else_s(tmp_path: Path) -> None:
    # The leftovers were found by a glob of the cache's name, the user's: `tokens[1].json` took
    # `.tokens1.json.*.tmp` (another cache's file being written, under another lock) for its own,
    # and never matched its own.
    store = FileTokenStore(tmp_path / "tokens[1].json")
    mine = tmp_path / ".tokens[1].json.abc123.tmp"
    other = tmp_path / ".tokens1.json.abc123.tmp"
    for path in (mine, other):
        path.write_text("being written")
    store.save("k", GOOD)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["tokens[1].json", other.name])


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save("k", GOOD)
    before = store.path.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(CacheFileError, match="No space"):  # a clear error, naming the file
        store.save("k", Token("new", obtained_at=1, expires_at=3000))
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a file owned by another user")
def test_a_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save("k", GOOD)
    os.chown(store.path, 12345, 12345)
    with pytest.raises(CacheFileError, match="another user"):
        store.load("k")


def test_the_file_store_works_where_the_platform_has_no_owners(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeKoyebAPI
) -> None:
    # Windows has no os.geteuid, and its stat() makes up the permission bits (0o666 for any
    # writable file): owner and privacy checks apply only where the platform has owners.
    monkeypatch.delattr(os, "geteuid")
    store = FileTokenStore(tmp_path / "tokens.json")
    assert store.try_lock()
    store.save("k", GOOD)
    store.unlock()
    store.path.chmod(0o666)
    assert store.load("k") == GOOD
    path = tmp_path / "auth" / "tokens.json"
    first, second = (KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=path) for _ in range(2))
    adopted = first.get_token() == second.get_token()  # a bool: a failing test must not print a token
    assert adopted
    assert fake.stats == {"login": 1}


@pytest.mark.skipif(sys.platform != "linux", reason="the rule is computed without platformdirs on Linux only")
@pytest.mark.parametrize("xdg", [None, "", "   ", " /abs", "relative/cache", "~/cache", "/abs/xdg-cache",
                                 "/abs/trailing/"])
@pytest.mark.parametrize("home", [None, "", "relative-home", "/home/someone", "/home/slash/"])
def test_the_default_cache_directory_is_the_one_platformdirs_names(
        xdg: str | None, home: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("XDG_CACHE_HOME", xdg), ("HOME", home)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    expected = platformdirs.user_cache_dir("koyeb-auth", appauthor=False)
    assert os.path.normpath(user_cache_dir()) == os.path.normpath(expected)
    assert FileTokenStore().path == Path(expected) / "tokens.json"


class Refusing:
    """The OS refusing the files of one directory with `code`, injected at the os module's edge:
    root ignores file modes, and a test cannot remount a file system or use up its inodes.

    EACCES (a directory made unreadable) refuses everything in it; EROFS (a read-only remount)
    every write; ENOSPC and EDQUOT (no inode left, an inode quota) the creation of a file.
    """

    WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def __init__(self, monkeypatch: pytest.MonkeyPatch, directory: Path, code: int) -> None:
        self.inside, self.code, self.on = str(directory) + os.sep, code, True
        self.lock_opens = self.calls = 0
        for name in ("open", "stat", "lstat", "mkdir", "scandir", "replace", "rename", "unlink"):
            monkeypatch.setattr(os, name, self._wrap(name, getattr(os, name)))

    def _wrap(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(path: Any = ".", *args: Any, **kwargs: Any) -> Any:
            where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ""
            if isinstance(where, str) and where.startswith(self.inside):
                self.calls += 1
                self.lock_opens += name == "open" and where.endswith(".lock")
                if self.on and self._refused(name, where, args[0] if args else kwargs.get("flags", 0)):
                    raise OSError(self.code, os.strerror(self.code), where)
            return real(path, *args, **kwargs)

        return call

    def _refused(self, name: str, path: str, flags: Any) -> bool:
        if self.code == errno.EACCES:
            return True
        if self.code == errno.EROFS:
            return name in ("mkdir", "replace", "rename", "unlink") or (name == "open" and bool(flags & self.WRITES))
        creates = name == "open" and bool(flags & os.O_CREAT)
        return name == "mkdir" or (creates and not os.path.lexists(path))


INJECTED = {"read-only file system": errno.EROFS, "unreadable directory": errno.EACCES,
            "no inode left": errno.ENOSPC, "inode quota": errno.EDQUOT}


def unusable_cache(cause: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache path whose directory the system will not let us use, for `cause`."""
    if cause == "a file where the directory is":  # ENOTDIR, for real
        (tmp_path / "not-a-directory").write_text("")
        return tmp_path / "not-a-directory" / "tokens.json"
    if cause == "sysfs":  # no file can be created there, not even by root
        if not os.path.isdir("/sys/kernel"):
            pytest.skip("no sysfs here")
        return Path("/sys/koyeb-auth-tokens.json")
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    Refusing(monkeypatch, directory, INJECTED[cause])
    return directory / "tokens.json"


def koyeb_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("koyeb_auth") and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("cause", [*INJECTED, "a file where the directory is", "sysfs"])
def test_an_unusable_cache_directory_costs_one_login_and_one_warning_not_an_error(
    cause: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeKoyebAPI, caplog: pytest.LogCaptureFixture
) -> None:
    path = unusable_cache(cause, tmp_path, monkeypatch)
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=path)
    statuses: list[int] = []
    start = threading.Barrier(8)

    def work(client: str) -> None:
        start.wait()
        for _ in range(5):
            try:
                if client == "httpx":
                    statuses.append(httpx.get(f"{fake.url}/v1/apps", auth=auth).status_code)
                else:
                    statuses.append(requests.get(f"{fake.url}/v1/apps", auth=auth, timeout=10).status_code)
            except KoyebAuthError:  # counted: the request failed
                statuses.append(-1)

    async def tasks() -> list[int]:
        async with httpx.AsyncClient(auth=auth) as client:
            replies = await asyncio.gather(*(client.get(f"{fake.url}/v1/apps") for _ in range(10)))
        return [reply.status_code for reply in replies]

    with caplog.at_level(logging.DEBUG, logger="koyeb_auth"):
        threads = [threading.Thread(target=work, args=(client,)) for client in ["httpx", "requests"] * 4]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        statuses += asyncio.run(tasks())
    assert statuses == [200] * 50  # 8 threads of httpx and requests, then 10 asyncio tasks
    assert fake.stats.get("login") == 1  # the in-process lock still makes it one login
    warnings = koyeb_warnings(caplog)
    assert len(warnings) == 1 and str(path) in warnings[0]
    monkeypatch.undo()  # the directory usable again, to look at it
    assert not path.exists()


def test_a_process_out_of_file_descriptors_does_not_skip_the_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # EMFILE is this process's fault of the moment: going on without the lock would let it renew
    # beside a peer that holds it. It is an error, and the next attempt takes the lock as usual.
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    refusing = Refusing(monkeypatch, directory, errno.EMFILE)
    store = FileTokenStore(directory / "tokens.json")
    with pytest.raises(CacheFileError, match="Too many open files") as caught:
        store.try_lock()
    assert caught.value.__suppress_context__
    refusing.on = False
    assert store.try_lock()
    store.unlock()


def test_a_cache_directory_that_works_again_is_shared_again_after_one_retry_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeKoyebAPI, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    refusing = Refusing(monkeypatch, directory, errno.EROFS)
    store = FileTokenStore(directory / "tokens.json")
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, store=store)

    def renewal() -> tuple[int, int]:
        """A request whose token the API revoked: its 401 renews it. The lock file opened, and logins."""
        fake.revoke()
        opens, logins = refusing.lock_opens, fake.stats.get("login", 0)
        assert httpx.get(f"{fake.url}/v1/apps", auth=auth).status_code == 200
        return refusing.lock_opens - opens, fake.stats.get("login", 0) - logins

    # Frozen, not ticking: a ticking clock's tick() drops the real time that ran before it.
    with freeze_time() as clock, caplog.at_level(logging.DEBUG, logger="koyeb_auth"):
        assert httpx.get(f"{fake.url}/v1/apps", auth=auth).status_code == 200
        calls = refusing.calls
        for _ in range(50):  # the warm path costs nothing, broken directory or not
            assert requests.get(f"{fake.url}/v1/apps", auth=auth, timeout=10).status_code == 200
        assert refusing.calls == calls
        assert renewal() == (0, 1)  # within the interval: the lock file is not even tried
        clock.tick(UNUSABLE_RETRY + 1)
        assert renewal() == (1, 1)  # tried once, still refused: alone again, no second warning
        refusing.on = False  # remounted read-write
        assert renewal() == (0, 1)  # the interval starts again from the last try
        assert not store.path.exists()
        clock.tick(UNUSABLE_RETRY + 1)
        assert renewal() == (1, 1)  # tried, and it works: the token is written for everyone
        other = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=store.path)
        assert httpx.get(f"{fake.url}/v1/apps", auth=other).status_code == 200
    assert fake.stats.get("login") == 5  # one, then one per renewal; the other KoyebAuth adopted the shared token
    assert len(koyeb_warnings(caplog)) == 1
    assert sum("can be used again" in r.getMessage() for r in caplog.records) == 1
