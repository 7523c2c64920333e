"""The file store: atomic private writes, every kind of bad file is a miss or a clear error."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import platformdirs
import pytest

from koyeb_auth import CacheFileError, FileTokenStore, KoyebAuth, Token
from koyeb_auth.file_store import user_cache_dir
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


def test_a_cache_directory_that_cannot_be_created_is_a_clear_error_before_any_login(
    tmp_path: Path, fake: FakeKoyebAPI
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    auth = KoyebAuth(fake.EMAIL, fake.PASSWORD, api_url=fake.url, cache_path=blocker / "tokens.json")
    with pytest.raises(CacheFileError, match="cannot be used"):
        auth.get_token()
    assert fake.stats == {}


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
