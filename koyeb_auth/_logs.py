"""The library's loggers, made when first asked for.

A warm `koyeb-auth token` logs nothing, and loads no `logging` (nor the traceback, threading and
string modules it loads): so no module of the warm path imports it, and the `koyeb_auth` logger
gets the NullHandler that the logging HOWTO asks of libraries (without it, Python's last-resort
handler would print our warnings on stderr) here, before any of our records exists. Every module
gets its logger from `logger()`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import logging

LIBRARY = "koyeb_auth"
# What the application asked to do to the library's logger once it exists (the command's handler).
_setups: list[Callable[[logging.Logger], object]] = []
_made: list[logging.Logger] = []
# The kinds of warning given once per process (`warn_once`).
_warned: set[str] = set()


def logger(name: str = LIBRARY) -> logging.Logger:
    """The logger `name` (the library's own, or one below it)."""
    import logging  # noqa: PLC0415 - see the module's docstring

    if not _made:
        library = logging.getLogger(LIBRARY)
        library.addHandler(logging.NullHandler())
        _made.append(library)
        for setup in _setups:
            setup(library)
    return logging.getLogger(name)


def when_made(setup: Callable[[logging.Logger], object]) -> None:
    """Run `setup` on the library's logger when the first record is about to exist (now, if it
    was already made): configuring it then costs nothing to the runs that never log."""
    if _made:
        setup(_made[0])
    elif setup not in _setups:  # asked again (the command's main() run again in one process): once
        _setups.append(setup)


def warn_once(kind: str, message: str, *args: object) -> None:
    """Log `message` as a WARNING the first time this process meets `kind`: every renewal meets the
    same clocks and the same missing scrypt, and once says it."""
    if kind not in _warned:
        _warned.add(kind)
        logger().warning(message, *args)
