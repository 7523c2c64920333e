"""What a KoyebAuth carries to another process, and the error for an argument that cannot go.

Pickling a KoyebAuth pickles the arguments it was given (see `KoyebAuth.__getstate__`). Most are
plain values; a store, an `on_event` hook, an `ssl.SSLContext` or a transport may not pickle, and
the pickler's own error ("cannot pickle '_thread.lock' object") would not say which argument it
was. Checked before pickling, it does.
"""

from __future__ import annotations

import pickle
from typing import Any, ClassVar, TypeVar

from .errors import ConfigurationError, KoyebAuthError

__all__ = ["PicklesAsConfiguration", "check_picklable"]

_Self = TypeVar("_Self", bound="PicklesAsConfiguration")

_PICKLING_ADVICE = {
    "store": "Use a store that pickles: FileTokenStore (the default) pickles as its path.",
    "on_event": "Pass a function defined at the top level of a module: lambdas and local functions do not pickle.",
    "verify": "Pass verify= the path of a CA bundle rather than an ssl.SSLContext.",
}


def check_picklable(argument: str, value: object) -> None:
    """Raise a ConfigurationError naming `argument` if `value` cannot be pickled."""
    if value is None:
        return
    try:
        pickle.dumps(value)
    except KoyebAuthError:
        raise  # the object's own explanation (MemoryTokenStore says why it refuses)
    except Exception as exc:  # pickle raises TypeError, AttributeError or PicklingError
        reason = f"{type(exc).__name__}: {exc}"
    else:
        return
    advice = _PICKLING_ADVICE.get(argument, "Build the KoyebAuth in each process instead.")
    raise ConfigurationError(
        f"This KoyebAuth cannot be pickled: its {argument}= ({type(value).__qualname__}) cannot be ({reason}). "
        f"{advice}"
    )


class PicklesAsConfiguration:
    """Pickled and copied as the attributes `_CONFIGURATION` names, rebuilt by `_start()`.

    What belongs to a process (locks, the resolved settings, a token in memory) is not carried:
    `_start()` makes it anew, in a copy as on the other side of a pickle. A copy in the same
    process shares the configured objects themselves (a store and its in-process locks, an
    SSLContext or a transport, which need not pickle for that).
    """

    _CONFIGURATION: ClassVar[tuple[str, ...]] = ()

    def _start(self) -> None:
        raise NotImplementedError

    def _arguments_that_may_not_pickle(self) -> tuple[tuple[str, object], ...]:
        """(argument name, value) of what a pickle would carry that may refuse to be pickled."""
        return ()

    def __getstate__(self) -> dict[str, Any]:
        """The configuration: arguments as given, so a password or token passed as an argument travels
        (the copy must log in) but one read from the environment does not. Never a token obtained."""
        for argument, value in self._arguments_that_may_not_pickle():
            check_picklable(argument, value)
        return {name: getattr(self, name) for name in self._CONFIGURATION}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update({name: state[name] for name in self._CONFIGURATION})
        self._start()

    def __copy__(self: _Self) -> _Self:
        clone = type(self).__new__(type(self))
        clone.__setstate__({name: getattr(self, name) for name in self._CONFIGURATION})
        return clone

    def __deepcopy__(self: _Self, memo: dict[int, Any]) -> _Self:
        return self.__copy__()
