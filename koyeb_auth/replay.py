"""Whether a request's body can be sent again after a 401, and the resend of a requests request.

A rewinder is a function that makes the body ready to be sent again, or says it cannot: bytes,
str, JSON and forms always can; a seekable file can, from where it stood; a generator cannot (its
token is still renewed, and the 401 goes back to the caller).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from requests.cookies import extract_cookies_to_jar

Rewinder = Callable[[], bool]


def httpx_rewinder(request: Any, flavour: ModuleType) -> Rewinder:
    """The rewinder of an httpx (or httpx2: `flavour` is the module) request's body."""
    stream = request.stream
    if isinstance(stream, flavour.ByteStream):
        return _always  # bytes, str, JSON, forms
    if isinstance(stream, flavour._multipart.MultipartStream):
        # Multipart re-reads each file from the start: only if every file can seek back there.
        files = [getattr(part, "file", b"") for part in stream.fields]
        return _always if all(isinstance(f, (str, bytes)) or _seekable(f) for f in files) else _never
    # A file passed as content= is read from where it stands: note that, to seek back to it.
    # A generator can be read once only, so it is never replayed.
    file: Any = getattr(stream, "_stream", None)
    if isinstance(stream, flavour._content.IteratorByteStream) and _seekable(file):
        return _seeker(file, file.tell())
    return _never


def requests_rewinder(body: object) -> Rewinder:
    """The rewinder of a requests (or niquests) prepared body."""
    if body is None or isinstance(body, (bytes, str)):
        return _always
    if _seekable(body):
        return _seeker(body, body.tell())  # type: ignore[attr-defined]
    return _never


def resend_of(response: Any, header: str) -> Any:
    """The request that got `response`, again: its cookies, and `header` (a token's
    `Redacted` header) as its Authorization."""
    retry = response.request.copy()
    jar = retry._cookies
    extract_cookies_to_jar(jar, response.request, response.raw)  # type: ignore[no-untyped-call]
    retry.prepare_cookies(jar)
    retry.headers["Authorization"] = header
    return retry


def _seekable(file: object) -> bool:
    try:
        return bool(file.seekable())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


def _seeker(file: Any, position: int) -> Rewinder:
    def rewind() -> bool:
        try:
            file.seek(position)
        except (OSError, ValueError):
            return False
        return True

    return rewind


def _always() -> bool:
    return True


def _never() -> bool:
    return False


def sent_again(request: Any, response: Any) -> str | None:
    """The Authorization header of the request an httpx 401 answers, if resending `request` (what
    the flow does) repeats it: the same method, so no redirect turned it into another (a 303, or a
    302 after a POST, makes a GET: resending the POST would make it twice)."""
    if response.request.method != request.method:
        return None
    sent: str | None = response.request.headers.get("Authorization")
    return sent
