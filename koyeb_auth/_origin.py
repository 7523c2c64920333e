"""The API's origin (scheme, host, port): the one place a token may go, decided here only.

URLs are compared after normalising case and default ports, the way clients send them: a scheme
written `HTTPS` and a host written `App.Koyeb.com` are the API; `app.koyeb.com.evil.example`,
`app.koyeb.com@evil.example` and another port are not.

A URL is read only if every client would read its host alike. Python's urlsplit and the clients
disagree on some authorities: for `https://evil.example\\@app.koyeb.com/` urlsplit (and httpx)
see app.koyeb.com, urllib3 (requests, Koyeb's sync SDK) connects to evil.example; urlsplit drops a
tab or newline where httpx refuses the URL and requests percent-encodes it. So the authority must
be a plain one (ASCII letters, digits, dots, hyphens and underscores, or a bracketed IPv6 address,
and a port): a user part, a backslash, a control or non-ASCII character or a percent-escape there
means "not the API", and the request gets no token.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from ._secrets import Redacted
from .errors import ConfigurationError

__all__ = ["Origin", "api_url_of_environment", "normalize_api_url"]

DEFAULT_API_URL = "https://app.koyeb.com"
# The variables of the API URL, in order: the Koyeb CLI's, then Koyeb's Python SDK's (`koyeb.sandbox`).
URL_VARIABLES = ("KOYEB_URL", "KOYEB_API_HOST")
LOGIN_PATH = "/v1/account/login"
_DEFAULT_PORTS = {"http": 80, "https": 443}

Key = tuple[str, str, int]


def normalize_api_url(url: str, given_in: str = "api_url=, KOYEB_URL") -> str:
    """The API URL with its scheme and host in lower case, no trailing slash and no trailing `/v1`
    (every call adds its own `/v1/...`: the base URL of Koyeb's OpenAPI document is the host alone).

    Done once, where the URL is read: every later check (TLS, origin) then compares plain strings.
    Errors name `given_in`, where the URL came from (a flag, a variable, a file).
    """
    url = Redacted(url.strip())  # a mistyped URL may hold a password: never in a traceback's locals
    # Refused before it is parsed, and without the URL: a user part may hold a password, cut
    # anywhere by a "/", "?" or "#" in it, so no "@" at all. (An API's base URL has none.)
    if "@" in url:
        raise ConfigurationError(f"The API URL ({given_in}) must hold no user name or password; use one such as "
                                 f"{DEFAULT_API_URL}.")
    try:
        path: str | None = urlsplit(url).path  # the path alone: no parse result is left in this frame's locals
    except ValueError:  # a bracketed host that is not an IPv6 address
        path = None
    key = key_of(url)
    if key is None or path is None:
        raise ConfigurationError(f"The API URL ({given_in}) is not an http(s) URL with a plain host name "
                                 f"or address, such as {DEFAULT_API_URL}.")
    scheme, host, port = key
    if scheme == "http" and not _loopback(host):
        raise ConfigurationError(
            f"The API URL http://{host} ({given_in}) is plain http: the password and tokens would cross the network "
            "in clear. "
            "Use https (plain http is only for localhost or a loopback address such as 127.0.0.1 or [::1], "
            "as for the bundled fake API; a name under .localhost may be looked up in DNS)."
        )
    shown_host = f"[{host}]" if ":" in host else host
    netloc = shown_host if port == _DEFAULT_PORTS[scheme] else f"{shown_host}:{port}"
    path = path.rstrip("/")
    path = path[:-3] if path.lower().endswith("/v1") else path
    return f"{scheme}://{netloc}{path}"


def api_url_of_environment(environ: Mapping[str, str]) -> str | None:
    """The API URL the environment asks for, normalized; None if it asks for none. (The SDK's
    KOYEB_API_HOST may be a bare host name.)"""
    for name in URL_VARIABLES:
        if value := environ.get(name):
            return normalize_api_url(value if "://" in value else f"https://{value}", name)
    return None


def shown(url: str) -> str:
    """`url` as it may appear in a repr: not at all if it holds a user part (where a password
    would be, cut anywhere by a "/", "?" or "#" in it)."""
    return "<a URL with a user part, not shown>" if "@" in url else str(url)  # str(): not Redacted


def _loopback(host: str) -> bool:
    # Not "*.localhost": RFC 6761 asks resolvers to answer those with loopback, but glibc without
    # systemd-resolved sends them to DNS, which may answer anything.
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# An http(s) URL whose authority every client reads alike: nothing before the scheme, no user part,
# a host of letters, digits, dots, hyphens and underscores or a bracketed IPv6 address, an optional
# port, then the end of the authority for every client (urllib3 also ends it at a backslash).
_PLAIN_AUTHORITY = re.compile(r"(https?)://([a-z0-9._-]+|\[[0-9a-f:.]+\])(?::([0-9]{0,5}))?(?=[/?#]|\Z)",
                              re.IGNORECASE | re.ASCII)


def key_of(url: str) -> Key | None:
    """(scheme, host, port) of an http(s) URL, lower case, default port filled in; None if it has
    none, or if clients could disagree on where it goes."""
    match = _PLAIN_AUTHORITY.match(url)
    if match is None:
        return None
    scheme, host, port = match[1].lower(), match[2].lower().strip("[]"), match[3]
    number = int(port) if port else _DEFAULT_PORTS[scheme]
    return (scheme, host, number) if number <= 65535 else None


class Origin:
    """The API's scheme, host and port, and the URLs that belong to it."""

    __slots__ = ("key", "login_path", "netloc", "prefix", "scheme")

    key: Key
    login_path: str
    netloc: bytes
    prefix: str
    scheme: str

    def __init__(self, api_url: str) -> None:
        """The origin of `api_url`, as `normalize_api_url` returns it (a `Settings.api_url` is)."""
        key = key_of(api_url)
        assert key is not None, "not a normalized API URL"
        self.key = key
        self.login_path = _canonical_path(urlsplit(api_url).path + LOGIN_PATH)
        scheme, host, port = key
        host = f"[{host}]" if ":" in host else host
        self.scheme = scheme
        # httpx normalizes URLs (lower-case host, brackets around IPv6, no default port): its
        # netloc compares as bytes, which keeps this check off the per-request profile.
        self.netloc = (host if port == _DEFAULT_PORTS[scheme] else f"{host}:{port}").encode()
        # requests lower-cases the host of a prepared URL, so most URLs of the API start with this.
        self.prefix = f"{scheme}://{self.netloc.decode()}/"

    def __repr__(self) -> str:
        return f"Origin({self.prefix.rstrip('/')!r})"

    def owns(self, url: Any) -> bool:
        """True if `url` (a str, or an httpx or httpx2 URL) is on the API's origin."""
        return self.authorizes("GET", url)  # on the origin, only the login call (a POST) gets no token

    def authorizes(self, method: str, url: Any) -> bool:
        """True if a request for `url` gets the token: the API's origin, and not the login call."""
        if url.__class__ is str:
            if not (url.startswith(self.prefix) or key_of(url) == self.key):
                return False
        elif isinstance(netloc := getattr(url, "netloc", None), bytes):  # httpx.URL, httpx2.URL: already normalized
            if netloc != self.netloc or url.scheme != self.scheme:
                return False
        elif key_of(str(url)) != self.key:
            return False
        if method.upper() != "POST":
            return True
        path = urlsplit(url).path if url.__class__ is str else getattr(url, "path", "")
        return _canonical_path(path) != self.login_path


def _canonical_path(path: str) -> str:
    """A path as a server is likely to route it: decoded, no parameters, single slashes, no
    trailing slash, lower case. Variants of the login path must not get the token either."""
    path = unquote(path.split(";", 1)[0])
    return re.sub("/{2,}", "/", path).rstrip("/").lower()
