"""Files of ours that only we may read, replaced atomically: the hygiene of koyeb-auth's own files.

Reading never follows a symlink and accepts only a regular file that this user owns and nobody
else can read; writing puts a new 0600 file in place with one rename, so a reader sees the old
file or the new one, never half of one. (The token cache has the same rules, in `file_store`.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from .errors import CacheFileError, Hint

__all__ = ["read", "replace"]

# O_NOFOLLOW: a symlink planted at the path must not make us read another file. O_NONBLOCK: a FIFO
# planted there must not hang the open (it is refused below, as any file that is not regular).
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)


def read(path: Path, what: str, limit: int) -> bytes | None:
    """The bytes of the file `what` (e.g. "The login state file") at `path`; None if there is none.

    CacheFileError for a symlink or a file of another user: reading it could hand us someone
    else's data. OSError for any other file we must not use (not a regular file, readable by
    others, larger than `limit`).
    """
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CacheFileError(f"{what} {path} is a symlink; koyeb-auth does not follow links: remove it.",
                                 Hint.CACHE_PATH) from None
        raise
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        # Owners exist where the platform has them (not on Windows, where the directory's ACL rules).
        if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
            raise CacheFileError(f"{what} {path} belongs to another user (uid {info.st_uid}): remove it.",
                                 Hint.CACHE_PATH)
        if info.st_mode & 0o077:
            raise OSError(errno.EPERM, "readable by other users")
        raw = file.read(limit + 1)
    if len(raw) > limit:
        raise OSError(errno.EFBIG, "larger than it can be")
    return raw


def replace(path: Path, data: bytes) -> None:
    """Put `data` at `path` in a new 0600 file (its directory 0700 if we create it), atomically.

    Callers hold a lock that every writer of `path` takes: a temporary file left beside it is then
    from a writer that was killed mid-write, and is removed.
    """
    import tempfile  # noqa: PLC0415 - only writers need it, not the warm `koyeb-auth token`

    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    prefix = f".{path.name}."
    for stale in directory.glob(prefix + "*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
    # mkstemp creates the file 0600 with O_EXCL, so it never opens a file planted by someone else.
    fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the name points at it
        # A symlink at the path is replaced, not written through.
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    # Makes the rename itself durable across a power loss. Not possible on every platform.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
