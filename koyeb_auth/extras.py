"""Optional integrations: imported only when used, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

# Where koyeb-auth is installed from until it is published on an index (pyproject's Source URL).
REPOSITORY = "https://github.com/koyeb-auth/koyeb-auth"


def require(module: str, extra: str, feature: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the {module!r} package, which the {extra!r} extra installs: "
            f"pip install 'koyeb-auth[{extra}] @ git+{REPOSITORY}' (or, from a checkout, "
            f"pip install './koyeb-auth[{extra}]')"
        ) from exc
