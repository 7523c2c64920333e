"""What a KoyebAuth carries to another process, and the error for an argument that cannot go.

Pickling a KoyebAuth pickles the arguments it was given (see `KoyebAuth.__getstate__`). Most are
plain values; a store, an `on_event` hook, an `ssl.SSLContext` or a transport may not pickle, and
the pickler's own error ("cannot pickle '_thread.lock' object") would not say which argument it
was. Checked before pickling, it does.
"""

from __future__ import annotations

import pickle

from .errors import ConfigurationError, KoyebAuthError

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
