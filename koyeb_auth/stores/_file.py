"""The default token store: a JSON file shared by every process of the user, with a lock file.

The file is written atomically and guarded by a separate lock file. Locks are kernel `flock`
locks (through filelock), so a process that dies holding one releases it: no stale lock.

Only regular files we own are used, and none is opened in a way that can wait: a FIFO planted at
either path would otherwise hang every caller (and freeze an async caller's event loop).
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._logs import logger
from .._token import Token, entry_from_token, json_value, token_from_entry
from ..errors import CacheFileError, Hint
from ..stores import _private_file as private_file

if TYPE_CHECKING:
    import filelock

__all__ = ["FileTokenStore"]

FORMAT_VERSION = 1
MAX_CACHE_BYTES = 1 << 20
# While the cache directory cannot be used (a read-only file system, no permission, no inode left
# for the lock file), the store is tried again at most this often: a directory that comes back is
# shared again, and one that stays broken costs one failed open per interval, not one per renewal.
UNUSABLE_RETRY = 30.0
# The errors of a directory that cannot be used, as opposed to those of a process short of file
# descriptors or a failing disk, which must not make it skip the lock that peers rely on.
_DIRECTORY_UNUSABLE = frozenset(
    {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.ENOENT}
)


def default_cache_path() -> Path:
    return Path(user_cache_dir()) / "tokens.json"


def user_cache_dir() -> str:
    """platformdirs' user cache directory for koyeb-auth, found without platformdirs where every
    version of it agrees: on Linux, with $XDG_CACHE_HOME absolute, or unset (or empty) and $HOME
    absolute. A warm `koyeb-auth token` loads only what reads the cache, not platformdirs (with
    tempfile, shutil and random); `test_store.py` checks that both give the same directory. Anything
    else, platformdirs decides."""
    xdg, home = os.environ.get("XDG_CACHE_HOME", ""), os.environ.get("HOME", "")
    if sys.platform == "linux" and "ANDROID_DATA" not in os.environ:
        if os.path.isabs(xdg):
            return os.path.join(xdg, "koyeb-auth")
        if not xdg and os.path.isabs(home):
            return os.path.join(home, ".cache", "koyeb-auth")
    import platformdirs  # noqa: PLC0415

    return platformdirs.user_cache_dir("koyeb-auth", appauthor=False)


class FileTokenStore:
    """Tokens in a JSON file (0600, in a 0700 directory) with a separate lock file beside it.

    A missing, empty, corrupt, foreign or unknown-version file is a cache miss, and the next good
    token replaces it; so is a FIFO, a directory or anything else that is not a regular file,
    which is never opened. A symlink or a file owned by another user is refused with
    CacheFileError: reading it could hand us someone else's token, and replacing it could clobber
    their file. A lock file that is not a regular file of ours is refused the same way.

    A lock file the system will not let us open or create (a read-only file system, a directory
    we may not enter, no inode or quota left, a regular file where the directory should be) is
    not an error: the process goes on alone, its token in memory, with its in-process lock only
    and nothing written, after one warning. The file lock is tried again every UNUSABLE_RETRY
    seconds, when a renewal asks for it: once it works, tokens are shared through the file again.
    """

    path: Path
    """The cache file."""
    lock_path: Path
    """The lock file beside it, never deleted."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        """A store on the cache file `path`; nothing is opened until the first call.

        `path` defaults to `tokens.json` in the user cache directory (`~/.cache/koyeb-auth/` on Linux).
        The lock file is beside it, its name with `.lock` added; neither directory nor file is created
        before a token is written or the lock taken.
        """
        self.path = Path(path) if path is not None else default_cache_path()
        # The lock file is separate and never deleted: unlinking a flock'ed file lets a waiter lock a
        # dead inode while a newcomer locks a new file of the same name (filelock#574).
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock: filelock.BaseFileLock | None = None
        self._lock_pid = 0
        # The last file read, by identity: waiters poll the store, and a stat is far cheaper than a
        # parse. Every write is a rename to a new inode, so a changed file never looks the same.
        self._seen: tuple[tuple[int, ...], _Entries] | None = None
        # While the directory cannot be used: the time.monotonic() before which the file lock is not
        # tried again; and whether the lock held now is the in-process one only (nothing is written).
        self._retry_at: float | None = None
        self._alone = False

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    def __reduce__(self) -> tuple[type[FileTokenStore], tuple[Path]]:
        # Pickled as its path, resolved here: the copy shares this very file (whatever the other
        # process's cache directory), and builds its own lock and read cache when first used.
        return type(self), (self.path,)

    # --- locking -------------------------------------------------------------------------------

    def try_lock(self, timeout: float = 0.0) -> bool:
        """Take the file lock, waiting up to `timeout` seconds (by default, not at all); True at once,
        with no file lock, while the directory cannot be used.

        Callers hold this store's in-process lock (see `_engine.Admission`), which is then the only one.
        """
        import filelock  # noqa: PLC0415 - loaded only by a process that takes the lock

        if self._retry_at is not None and time.monotonic() < self._retry_at:
            self._alone = True
            return True
        try:
            # Not blocking at 0: one attempt, whatever filelock makes of a zero timeout.
            self._checked_file_lock().acquire(timeout=max(timeout, 0.0), blocking=timeout > 0, poll_interval=0.01)
            acquired = True
        except filelock.Timeout:
            acquired = False  # held by a peer: the file itself can be opened
        except OSError as exc:
            if exc.errno not in _DIRECTORY_UNUSABLE:  # EMFILE, EIO...: this moment's fault, not the directory's
                raise self._unusable(exc) from None
            self._go_alone(exc)
            return True
        if self._retry_at is not None:
            self._usable_again()
        return acquired

    def lock(self, timeout: float, blocking: bool = True) -> bool:
        """`try_lock`, waiting up to `timeout` seconds if `blocking`."""
        return self.try_lock(timeout if blocking else 0.0)

    def unlock(self) -> None:
        """Release the lock `try_lock` or `lock` took (in the process that took it)."""
        if self._alone:
            self._alone = False
        elif self._lock is not None and self._lock_pid == os.getpid():
            # A lock object inherited through fork() is the parent's, and its descriptor too: releasing
            # it here would release the parent's flock. (The child never took it.)
            self._lock.release()

    def _go_alone(self, exc: OSError) -> None:
        if self._retry_at is None:  # one warning when the directory fails, none per retry
            logger().warning(
                "The token cache %s cannot be used (%s): this process keeps its token in memory and "
                "renews it by itself, sharing it with no other process. Fix its directory (a read-only "
                "file system, permissions, free space or inodes) or use another cache path; it is tried "
                "again every %g s.", self.path, exc.strerror or exc, UNUSABLE_RETRY)
        else:
            logger().debug("The token cache %s still cannot be used (%s)", self.path, exc.strerror or exc)
        self._retry_at = time.monotonic() + UNUSABLE_RETRY
        self._alone = True

    def _usable_again(self) -> None:
        self._alone = False
        self._retry_at = None
        logger().info("The token cache %s can be used again: tokens are shared through it", self.path)

    def _checked_file_lock(self) -> filelock.BaseFileLock:
        """This process's file lock, once its lock file is known to be a regular file of ours (or none).

        filelock opens the lock file itself, read-write (filelock 3.x without O_NONBLOCK, so a
        device there could block it), and would lock a FIFO or another user's file as readily as
        its own: so it is checked on each attempt, with lstat, which opens nothing. The path can
        still change between this check and filelock's open, but only by someone who can write to
        the cache directory (0700 when we create it), and filelock opens with O_NOFOLLOW: at worst
        we lock a file that is not ours, never follow a link, and the next lock attempt refuses it.
        """
        # A lock object inherited through fork() belongs to the parent: build a new one in the child.
        if self._lock is None or self._lock_pid != os.getpid():
            import filelock  # noqa: PLC0415 - see lock()

            private_file.ensure_directory(self.path.parent)
            # thread_local=False: the manager's in-process lock already admits one thread at a time,
            # and an async caller may release from a different thread than it acquired on.
            self._lock = filelock.FileLock(self.lock_path, mode=0o600, thread_local=False)
            self._lock_pid = os.getpid()
        try:
            info = os.stat(self.lock_path, follow_symlinks=False)
        except FileNotFoundError:
            return self._lock  # filelock creates it, 0600
        if not stat.S_ISREG(info.st_mode):
            raise CacheFileError(
                f"The token lock file {self.lock_path} is {private_file.kind(info.st_mode)}, not a regular file. "
                "Remove it (it is created again).",
                Hint.CACHE_PATH,
            )
        private_file.check_owner(self.lock_path, "The token lock file", info)
        return self._lock

    # --- reading -------------------------------------------------------------------------------

    def load(self, key: str) -> Token | None:
        """The token under `key`, or None for any kind of miss (see the class).

        Raises CacheFileError for a symlink or a file owned by another user.
        """
        tokens = self._read()  # not the entry as a local: _Entries keeps its token out of tracebacks
        return token_from_entry(tokens[key]) if key in tokens else None

    def _read(self) -> _Entries:
        """The `tokens` mapping of the cache file, or {} for any kind of miss."""
        try:
            info = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return _Entries()
        identity = (info.st_ino, info.st_dev, info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_mode)
        if self._seen is not None and self._seen[0] == identity:
            return _Entries(self._seen[1])
        tokens = _Entries(self._parse(info))
        self._seen = (identity, tokens)
        return _Entries(tokens)

    def _parse(self, seen: os.stat_result) -> dict[str, Any]:
        try:
            raw = private_file.read(self.path, "The token cache", MAX_CACHE_BYTES, seen)
        except OSError as exc:
            logger().warning("Ignoring the token cache %s: %s", self.path, exc.strerror or exc)
            return {}
        if raw is None:
            return {}
        try:
            document = json_value(raw)
        except ValueError:  # includes UnicodeDecodeError, and JSON nested too deeply
            logger().warning("Ignoring the token cache %s: it is not valid JSON; it will be replaced", self.path)
            return {}
        tokens = document.get("tokens") if isinstance(document, dict) else None
        if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION or not isinstance(tokens, dict):
            logger().warning("Ignoring the token cache %s: unknown format; it will be replaced", self.path)
            return {}
        return tokens

    # --- writing (always under the lock) -------------------------------------------------------

    def save(self, key: str, token: Token) -> None:
        """Write `token` under `key`, replacing the file atomically.

        Other accounts' tokens that expired before this one was issued are dropped, so the file cannot
        grow. Nothing is written while the directory cannot be used. Raises CacheFileError when the
        file cannot be written.
        """
        if self._alone:
            # Without the file lock, a write could lose a peer's token or remove its temp file.
            return
        # Drop other accounts' tokens that expired before this one was issued, so the file cannot grow.
        tokens = _Entries()
        for other, entry in self._read().items():
            kept = token_from_entry(entry)
            if kept is not None and kept.usable(token.obtained_at):
                tokens[other] = entry
        tokens[key] = entry_from_token(token)
        private_file.replace(self.path, {"version": FORMAT_VERSION, "tokens": tokens}, "The token cache")

    def delete(self, key: str) -> None:
        """Remove the token under `key`, if there is one (nothing while the directory cannot be used)."""
        if self._alone:
            return  # see save()
        tokens = self._read()
        if tokens.pop(key, None) is not None:
            private_file.replace(self.path, {"version": FORMAT_VERSION, "tokens": tokens}, "The token cache")

    def _unusable(self, exc: OSError) -> CacheFileError:
        return CacheFileError(
            f"The token cache {self.path} cannot be used: {exc.strerror or exc}. Fix its directory (permissions, "
            "free space).",
            Hint.CACHE_PATH,
        )


class _Entries(dict[str, Any]):
    """The cache file's entries: their tokens stay out of reprs and tracebacks' locals."""

    def __repr__(self) -> str:
        return f"<{len(self)} token entries>"
