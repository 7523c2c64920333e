"""The modules that a KoyebAuth pickled by koyeb-auth 0.x names, answered from where their classes are now.

A pickle names each class by module: a KoyebAuth's carries `koyeb_auth.config.Credentials`,
`koyeb_auth.file_store.FileTokenStore`, `koyeb_auth.token.Redacted`... The package was since
arranged by concept, and those modules are gone. This import hook (last on `sys.meta_path`, so it
only sees names nothing else found) answers each of those names with a module that looks its
attributes up where they live now, so such a pickle still loads. Nothing else is importable by an
old name: these are the only ones a pickle can hold.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from importlib.abc import Loader

# Old module -> the modules that now hold what a pickle of it names, searched in this order.
MOVED = {
    "koyeb_auth.config": ("koyeb_auth._config",),
    "koyeb_auth.file_store": ("koyeb_auth.stores._file",),
    "koyeb_auth.providers": ("koyeb_auth._manager",),
    "koyeb_auth.redis_store": ("koyeb_auth.stores._redis",),
    "koyeb_auth.token": ("koyeb_auth._token", "koyeb_auth._secrets"),
    "koyeb_auth.transport": ("koyeb_auth._transport",),
}


class _OldNames:
    """The finder and loader of the names in MOVED."""

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if name not in MOVED:
            return None
        from importlib.machinery import ModuleSpec  # noqa: PLC0415 - only when an old pickle is loaded

        return ModuleSpec(name, cast("Loader", self))  # a loader by duck typing: importlib.abc costs an import

    def create_module(self, spec: Any) -> None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        homes = MOVED[module.__name__]

        def __getattr__(attribute: str) -> Any:
            import importlib  # noqa: PLC0415

            for home in homes:
                value = getattr(importlib.import_module(home), attribute, _MISSING)
                if value is not _MISSING:
                    return value
            raise AttributeError(f"module {module.__name__!r} has no attribute {attribute!r}")

        module.__getattr__ = __getattr__  # type: ignore[method-assign]


_MISSING = object()


def install() -> None:
    if not any(isinstance(finder, _OldNames) for finder in sys.meta_path):
        sys.meta_path.append(_OldNames())
