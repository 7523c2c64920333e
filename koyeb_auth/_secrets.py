"""The process environment as koyeb-auth reads it: live, and never shown whole.

`os.environ` held in a local or an attribute is printed whole by traceback tools that show locals
(Sentry and friends), KOYEB_PASSWORD and KOYEB_AUTH_STORE's Redis password with it. This view reads
the same variables, hands each value out as a `Redacted` str, and shows nothing in its repr.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

from .token import Redacted

__all__ = ["ENVIRONMENT", "Environment"]


class Environment(Mapping[str, str]):
    """`os.environ`, read at each access, with values and repr that keep secrets out of sight."""

    def __getitem__(self, name: str) -> str:
        return Redacted(os.environ[name])

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)

    def __repr__(self) -> str:
        return "<the environment>"


ENVIRONMENT = Environment()
