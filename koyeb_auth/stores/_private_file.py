"""Files of ours that only we may read, replaced atomically: the token cache and the login state.

Reading never follows a symlink, never opens anything but a regular file that this user owns and
nobody else can read, and never blocks on a FIFO planted at the path. Writing puts a new 0600
file in place with one rename, so a reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from pathlib import Path

from ..errors import CacheFileError, Hint

__all__ = ["check_owner", "ensure_directory", "kind", "read", "replace"]

# O_NOFOLLOW: a symlink swapped in after the lstat must not make us read another file. O_NONBLOCK:
# nor may a FIFO swapped in hang the open (it is refused on the fstat that follows).
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def read(path: Path, what: str, limit: int, seen: os.stat_result | None = None) -> bytes | None:
    """The bytes of the file `what` (e.g. "The token cache") at `path`; None if there is none.

    `seen` is the path's lstat if the caller has it. CacheFileError for a symlink or another
    user's file: reading it could hand us someone else's data. OSError (a miss: the next write
    replaces the file) for a file of ours that is not a private regular file, or larger than `limit`.
    """
    try:
        # Checked before opening (lstat), so that a device or a FIFO is never opened, and again on
        # what was opened, since the path may have changed in between.
        _check(path, what, seen or os.stat(path, follow_symlinks=False))
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _symlink(path, what) from None
        raise
    try:
        _check(path, what, os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as file:
        raw = file.read(limit + 1)
    if len(raw) > limit:
        raise OSError(errno.EFBIG, "larger than it can be; it will be replaced")
    return raw


def _check(path: Path, what: str, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise _symlink(path, what)
    check_owner(path, what, info)
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, f"it is {kind(info.st_mode)}, not a regular file; it will be replaced")
    # Permission bits mean something only where owners do: Windows' stat() makes them up.
    if hasattr(os, "geteuid") and info.st_mode & 0o077:
        raise OSError(errno.EPERM, "readable by other users; it will be replaced by a private file")


def check_owner(path: Path, what: str, info: os.stat_result) -> None:
    """CacheFileError if the file belongs to another user (only where the platform has owners)."""
    geteuid = getattr(os, "geteuid", None)  # Windows has none: the directory's ACL rules there
    if geteuid is not None and info.st_uid != geteuid():
        raise CacheFileError(f"{what} {path} belongs to another user (uid {info.st_uid}): remove it.",
                             Hint.CACHE_PATH)


def _symlink(path: Path, what: str) -> CacheFileError:
    return CacheFileError(f"{what} {path} is a symlink; koyeb-auth does not follow links: remove it.",
                          Hint.CACHE_PATH)


def kind(mode: int) -> str:
    """What a file that is not a regular one is, for messages."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISLNK, "a symlink"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))
    return next((name for test, name in kinds if test(mode)), "an unknown kind of file")


def ensure_directory(directory: Path) -> None:
    """Create `directory` 0700 if it is missing, and each missing parent too (mkdir(parents=True)
    would give the parents the umask's mode: 0777 under umask 0). An existing directory is the
    user's choice and is left as it is."""
    missing = [directory]
    for parent in directory.parents:
        if parent.exists():
            break
        missing.append(parent)
    for each in reversed(missing):
        try:
            each.mkdir(mode=0o700, exist_ok=True)
        except FileExistsError:  # a file where the directory should be: "File exists" would not say so
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(each)) from None


def replace(path: Path, document: object, what: str) -> None:
    """Put `document` as JSON at `path` in a new 0600 file, atomically; CacheFileError naming
    `what` if it cannot (a read-only directory, a directory where the file should be, a full disk).

    Encoded as it is written: no frame holds the bytes (a token cache) as a local a traceback would
    show (the callers' documents keep their secrets out of their reprs). Callers hold a lock that
    every writer of `path` takes: a temporary file left beside it is then from a writer that was
    killed mid-write, and is removed.
    """
    import tempfile  # noqa: PLC0415 - only writers need it, not the warm `koyeb-auth token`

    directory = path.parent
    prefix = f".{path.name}."
    try:
        ensure_directory(directory)
        # Not glob(): the file's name is the user's, and may hold a glob's special characters
        # (`tokens[1].json` would take another cache's temporary files for its own, and miss its own).
        try:
            names = os.listdir(directory)
        except OSError:  # a directory we may write but not list: no leftover to find
            names = []
        for name in names:
            # mkstemp's random part has no dot: `.tokens.json.login.x.tmp` is the login file's, whose
            # writer may hold another lock than ours (`login --store redis://...`): not a leftover.
            if (name.startswith(prefix) and name.endswith(".tmp") and len(name) >= len(prefix) + len(".tmp")
                    and "." not in name[len(prefix):-len(".tmp")]):
                with contextlib.suppress(OSError):
                    (directory / name).unlink()
        # mkstemp creates the file 0600 with O_EXCL, so it never opens a file planted by someone else.
        fd, temp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(json.dumps(document, indent=1).encode())
                file.flush()
                os.fsync(file.fileno())  # the data is on disk before the name points at it
            # Atomic: a reader sees the old file or the new one. A symlink at the path is replaced,
            # not written through.
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        failure: str | None = exc.strerror or str(exc)
    else:
        failure = None
    if failure is not None:  # raised outside the handler: the error's context would hold the frame's locals
        raise CacheFileError(f"{what} {path} cannot be written: {failure}. Fix its directory (permissions, free "
                             "space).", Hint.CACHE_PATH)
    # The rename made durable across a power loss (a directory cannot be opened on every platform).
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
