"""The default token store: a JSON file shared by every process of the user, with a lock file.

The file is written atomically and guarded by a separate lock file. Locks are kernel `flock`
locks (through filelock), so a process that dies holding one releases it: no stale lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from .errors import CacheFileError, Hint
from .token import Token, entry_from_token, token_from_entry

if TYPE_CHECKING:
    import filelock

__all__ = ["FileTokenStore"]

log = logging.getLogger("koyeb_auth")

FORMAT_VERSION = 1
MAX_CACHE_BYTES = 1 << 20


def default_cache_path() -> Path:
    return Path(platformdirs.user_cache_dir("koyeb-auth", appauthor=False)) / "tokens.json"


class FileTokenStore:
    """Tokens in a JSON file (0600, in a 0700 directory) with a separate lock file beside it.

    A missing, empty, corrupt, foreign or unknown-version file is a cache miss, and the next good
    token replaces it. A symlink or a file owned by another user is refused with CacheFileError:
    reading it could hand us someone else's token, and replacing it could clobber their file.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        # The lock file is separate and never deleted: unlinking a flock'ed file lets a waiter lock a
        # dead inode while a newcomer locks a new file of the same name (filelock#574).
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock: filelock.BaseFileLock | None = None
        self._lock_pid = 0
        # The last file read, by identity: waiters poll the store, and a stat is far cheaper than a
        # parse. Every write is a rename to a new inode, so a changed file never looks the same.
        self._seen: tuple[tuple[int, ...], _Entries] | None = None

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    # --- locking -------------------------------------------------------------------------------

    def try_lock(self) -> bool:
        return self.lock(timeout=0.0, blocking=False)

    def lock(self, timeout: float, blocking: bool = True) -> bool:
        import filelock  # noqa: PLC0415 - 40 ms, paid only by a process that takes the lock

        try:
            self._file_lock().acquire(timeout=max(timeout, 0.0), blocking=blocking, poll_interval=0.01)
        except filelock.Timeout:
            return False
        except OSError as exc:
            raise self._unusable(exc) from None
        return True

    def unlock(self) -> None:
        self._file_lock().release()

    def _file_lock(self) -> filelock.BaseFileLock:
        # A lock object inherited through fork() belongs to the parent: build a new one in the child.
        if self._lock is None or self._lock_pid != os.getpid():
            import filelock  # noqa: PLC0415 - see lock()

            self._ensure_directory()
            # thread_local=False: the manager's in-process lock already admits one thread at a time,
            # and an async caller may release from a different thread than it acquired on.
            self._lock = filelock.FileLock(self.lock_path, mode=0o600, thread_local=False)
            self._lock_pid = os.getpid()
        return self._lock

    def _ensure_directory(self) -> None:
        # Only directories we create get 0700; an existing directory is the user's choice.
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    # --- reading -------------------------------------------------------------------------------

    def load(self, key: str) -> Token | None:
        return token_from_entry(self._read().get(key))

    def _read(self) -> _Entries:
        """The `tokens` mapping of the cache file, or {} for any kind of miss."""
        try:
            info = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return _Entries()
        identity = (info.st_ino, info.st_dev, info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_mode)
        if self._seen is not None and self._seen[0] == identity:
            return _Entries(self._seen[1])
        tokens = _Entries(self._parse())
        self._seen = (identity, tokens)
        return _Entries(tokens)

    def _parse(self) -> dict[str, Any]:
        try:
            raw = self._read_bytes()
        except OSError as exc:
            log.warning("Ignoring the token cache %s: %s", self.path, exc.strerror or exc)
            return {}
        if raw is None:
            return {}
        try:
            document = json.loads(raw)
        except ValueError:  # includes UnicodeDecodeError
            log.warning("Ignoring the token cache %s: it is not valid JSON; it will be replaced", self.path)
            return {}
        tokens = document.get("tokens") if isinstance(document, dict) else None
        if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION or not isinstance(tokens, dict):
            log.warning("Ignoring the token cache %s: unknown format; it will be replaced", self.path)
            return {}
        return tokens

    def _read_bytes(self) -> bytes | None:
        try:
            # O_NOFOLLOW: a symlink planted at the cache path must not make us read another file.
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CacheFileError(
                    f"The token cache {self.path} is a symlink; koyeb-auth does not follow links: remove it.",
                    Hint.CACHE_PATH,
                ) from None
            raise
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EISDIR, "not a regular file")
            if info.st_uid != os.geteuid():
                raise CacheFileError(
                    f"The token cache {self.path} belongs to another user (uid {info.st_uid}): remove it.",
                    Hint.CACHE_PATH,
                )
            if info.st_mode & 0o077:
                raise OSError(errno.EPERM, "readable by other users; it will be replaced by a private file")
            raw = file.read(MAX_CACHE_BYTES + 1)
        if len(raw) > MAX_CACHE_BYTES:
            raise OSError(errno.EFBIG, "larger than any token cache")
        return raw

    # --- writing (always under the lock) -------------------------------------------------------

    def save(self, key: str, token: Token) -> None:
        tokens = self._read()
        # Drop other accounts' tokens that expired before this one was issued, so the file cannot grow.
        tokens = _Entries({k: v for k, v in tokens.items() if not _expired_entry(v, token.obtained_at)})
        tokens[key] = entry_from_token(token)
        self._write(tokens)

    def delete(self, key: str) -> None:
        tokens = self._read()
        if tokens.pop(key, None) is not None:
            try:
                self._write(tokens)
            except OSError as exc:
                raise self._unusable(exc) from None

    def _unusable(self, exc: OSError) -> CacheFileError:
        return CacheFileError(
            f"The token cache {self.path} cannot be used: {exc.strerror or exc}. Fix its directory's permissions.",
            Hint.CACHE_PATH,
        )

    def _write(self, tokens: _Entries) -> None:
        directory = self.path.parent
        self._ensure_directory()
        prefix = f".{self.path.name}."
        # We hold the lock, so no peer is between mkstemp and replace: any temp file left is from a
        # writer that was killed mid-write. Remove them so they cannot pile up.
        for stale in directory.glob(prefix + "*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        # mkstemp creates the file 0600 with O_EXCL, so it never opens a file planted by someone else.
        fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                # No local holds the encoded file: a traceback's locals never show the tokens.
                file.write(json.dumps({"version": FORMAT_VERSION, "tokens": tokens}, indent=1).encode())
                file.flush()
                os.fsync(file.fileno())  # the data is on disk before the name points at it
            # Atomic: a reader sees the old file or the new one, never a torn one. A symlink at the
            # path is replaced, not written through.
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable across a power loss. Not possible on every platform.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Entries(dict[str, Any]):
    """The cache file's entries: their tokens stay out of reprs and tracebacks' locals."""

    def __repr__(self) -> str:
        return f"<{len(self)} token entries>"


def _expired_entry(entry: object, now: float) -> bool:
    token = token_from_entry(entry)
    return token is None or not token.usable(now)
