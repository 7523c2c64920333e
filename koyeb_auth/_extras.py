"""Optional integrations: imported only when used, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError


def require(module: str, extra: str, feature: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs the {module!r} package, which the {extra!r} extra installs: "
            f"pip install './koyeb-auth[{extra}]' from the folder that holds your koyeb-auth checkout "
            "(koyeb-auth is not on PyPI yet)"
        ) from exc
