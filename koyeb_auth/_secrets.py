"""Secrets kept out of sight: the `Redacted` str, and the process environment as koyeb-auth reads it.

`os.environ` held in a local or an attribute is printed whole by traceback tools that show locals
(Sentry and friends), KOYEB_PASSWORD and KOYEB_AUTH_STORE's Redis password with it. The view here
reads the same variables live, hands each value out as a `Redacted` str, and shows nothing in its repr.
"""

from __future__ import annotations

import os
from collections.abc import Container, Iterable, Iterator, Mapping

__all__ = ["ENVIRONMENT", "Environment", "Redacted"]


class Redacted(str):
    """A str whose repr hides it: a header value that stays secret in the header dicts, frame
    locals and tracebacks of every client it passes through, while sending as a plain str."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'<redacted>'"


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


def shown_fields(name: str, fields: Iterable[tuple[str, object]], secret: Container[str]) -> str:
    """A record's repr without its `secret` fields: `name(field=value, ...)`."""
    return f"{name}({', '.join(f'{field}={value!r}' for field, value in fields if field not in secret)})"
