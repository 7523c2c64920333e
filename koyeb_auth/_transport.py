"""The only module that talks to the API: it sends one session call and returns the reply.

`timeout` bounds the whole call: connecting, sending, and reading the whole reply. httpx's own
timeouts bound each read, so a server that sends a byte every half second would hold a login (and
the token lock) forever; here every read and write gets only the time left until the deadline.

A new client per call: calls are rare (one per token lifetime), and a client kept between them
would have to be rebuilt after fork() and bound to each event loop.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.request import getproxies

import httpcore
import httpx

from ._engine import on_asyncio
from ._session_api import Call, Reply
from .errors import APIError, APIUnreachableError, ConfigurationError, Hint, KoyebAuthError

__all__ = ["Network", "SessionClient"]

# The proxies httpx can use (socks5 with the socksio package).
_PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")
# A session reply is a few hundred bytes; stop reading anything much larger.
MAX_REPLY_BYTES = 1 << 20


@dataclass(frozen=True)
class Network:
    """How session calls reach the API. None everywhere: the environment's settings (proxies from
    HTTPS_PROXY, CA certificates from SSL_CERT_FILE, else the system's trust store).

    `verify` is an `ssl.SSLContext` or the path of a CA bundle: TLS is always verified. `proxy`
    is a proxy URL. `transport` and `async_transport` replace httpx's own (a mock in tests, a
    transport with settings of yours): koyeb-auth then leaves their timeouts to them.
    """

    verify: ssl.SSLContext | str | os.PathLike[str] | None = None
    proxy: str | None = field(default=None, repr=False)  # may hold a password
    transport: httpx.BaseTransport | None = None
    async_transport: httpx.AsyncBaseTransport | None = None

    def __post_init__(self) -> None:
        if self.proxy is not None and (fault := _proxy_fault(self.proxy)):
            raise _unusable_proxy("proxy=", fault)
        # verify=False would turn TLS checks off: never. Anything but a context or a path is refused
        # here too, rather than by the first call that tries to use it.
        if self.verify is not None and not isinstance(self.verify, (ssl.SSLContext, str, bytes, os.PathLike)):
            raise ConfigurationError(
                "verify= takes an ssl.SSLContext or the path of a CA bundle: koyeb-auth always verifies TLS "
                "certificates (leave it out for the system's trust store)."
            )


def _variable(scheme: str, url: str) -> str:
    named = (name for name, value in os.environ.items() if name.lower() == f"{scheme}_proxy" and value == url)
    return next(named, "the system's proxy settings")


def _proxy_fault(url: str) -> str | None:
    """Why httpx would refuse this proxy URL, or None. Never the URL: it may hold a password."""
    try:
        scheme = httpx.Proxy(url).url.scheme
    except (httpx.InvalidURL, ValueError):
        return f"it is not a URL with a scheme among {', '.join(_PROXY_SCHEMES)}, a host and a numeric port"
    if scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
        return "a SOCKS proxy needs the socksio package (pip install 'httpx[socks]')"
    return None


def _unusable_proxy(given_in: str, fault: str) -> ConfigurationError:
    return ConfigurationError(f"The proxy in {given_in} cannot be used: {fault}. Fix it, or unset it to go "
                              "without a proxy (the URL is not shown: it may hold a password).")


class SessionClient:
    """Sends session calls with the given network settings, each bounded by `timeout` seconds."""

    def __init__(self, network: Network, timeout: float) -> None:
        self._network = network
        self._timeout = timeout
        # `verify` sorted once: the caller's TLS context, or the CA bundle `_loaded_context` loads
        # (None: the defaults).
        self._context: ssl.SSLContext | None = None
        self._ca_bundle: str | None = None
        if isinstance(network.verify, ssl.SSLContext):
            self._context = network.verify
        elif network.verify is not None:
            self._ca_bundle = os.fspath(network.verify)

    def send(self, call: Call) -> Reply:
        deadline = time.monotonic() + self._timeout
        try:
            with (
                self._client(call, deadline) as client,
                client.stream(call.method, call.url, headers=call.headers, json=call.body) as response,
            ):
                return _reply(response, response.iter_bytes())
        except httpx.HTTPError as exc:
            failure = _failure(call, exc, self._timeout)
        except Exception as exc:  # httpx raises others too: InvalidURL, ValueError...
            failure = self._proxy_problem(self._network.transport) or _unsendable(call, exc)
        # Raised outside the handler: the httpx error holds the request, whose body is the password,
        # and its traceback the frames whose locals hold the headers.
        raise failure

    async def asend(self, call: Call) -> Reply:
        try:
            if on_asyncio():
                return await asyncio.wait_for(self._asend(call), self._timeout)
            return await self._asend_within_timeout(call)
        except (asyncio.TimeoutError, TimeoutError):  # distinct classes on Python 3.10
            failure = _failure(call, httpx.ReadTimeout("the whole call took longer"), self._timeout)
        except httpx.HTTPError as exc:
            failure = _failure(call, exc, self._timeout)
        except Exception as exc:  # see send()
            failure = self._proxy_problem(self._network.async_transport) or _unsendable(call, exc)
        raise failure

    async def _asend_within_timeout(self, call: Call) -> Reply:
        """`_asend` bounded by the timeout under the other async libraries httpx runs on (trio)."""
        import anyio  # noqa: PLC0415 - httpx's own dependency, loaded only off asyncio

        with anyio.fail_after(self._timeout):
            return await self._asend(call)

    async def _asend(self, call: Call) -> Reply:
        async with (
            httpx.AsyncClient(timeout=self._timeout, **self._async_options(call)) as client,
            client.stream(call.method, call.url, headers=call.headers, json=call.body) as response,
        ):
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_REPLY_BYTES:
                    break
            return _reply(response, (body,))

    def _proxy_problem(self, transport: object) -> ConfigurationError | None:
        """The error for a proxy of the environment (HTTPS_PROXY...) that httpx refuses, or None.

        Asked once a call has failed: httpx reads them as it builds a client, for every scheme
        whatever the call's, and fails with ValueError, InvalidURL or ImportError, whose messages
        hold the URL and its password; this error names the variable instead. A transport of the
        caller's, or proxy= (checked when given), leaves the environment unread.
        """
        if transport is not None or self._network.proxy is not None:
            return None
        proxies = getproxies()  # what httpx reads: lower-case variables first, then the system's settings
        if "*" in map(str.strip, proxies.get("no", "").split(",")):
            return None  # httpx then uses no proxy at all
        for scheme in ("http", "https", "all"):
            url = proxies.get(scheme)
            if url and (fault := _proxy_fault(url if "://" in url else f"http://{url}")):  # as httpx reads them
                return _unusable_proxy(_variable(scheme, url), fault)
        return None

    def _client(self, call: Call, deadline: float) -> httpx.Client:
        network = self._network
        if network.transport is not None:
            return httpx.Client(timeout=self._timeout, transport=network.transport)
        verify = self._context or _loaded_context(call.url.startswith("https://"), self._ca_bundle)
        client = httpx.Client(timeout=self._timeout, verify=verify, proxy=network.proxy)
        # httpx builds one transport, and one per proxy of the environment (HTTPS_PROXY...): bound
        # each one's connections by the deadline. httpx has no public hook for httpcore's backend.
        for transport in (client._transport, *client._mounts.values()):
            pool = getattr(transport, "_pool", None)
            if pool is not None:
                pool._network_backend = _DeadlineBackend(pool._network_backend, deadline)
        return client

    def _async_options(self, call: Call) -> dict[str, Any]:
        network = self._network
        if network.async_transport is not None:
            return {"transport": network.async_transport}
        verify = self._context or _loaded_context(call.url.startswith("https://"), self._ca_bundle)
        return {"verify": verify, "proxy": network.proxy}


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write gets only the time left until the deadline."""

    # Neither waits on the network: the wrapped stream's own, which httpcore calls as they are.
    close: Callable[[], None]
    get_extra_info: Callable[..., Any]

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline
        self.close = stream.close
        self.get_extra_info = stream.get_extra_info

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(self._deadline, timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(self._deadline, timeout))

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        stream = self._stream.start_tls(ssl_context, server_hostname, _left(self._deadline, timeout))
        return _DeadlineStream(stream, self._deadline)


@dataclass(eq=False)
class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's backend, whose every connection is a `_DeadlineStream`."""

    backend: httpcore.NetworkBackend
    deadline: float

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        stream = self.backend.connect_tcp(host, port, _left(self.deadline, timeout), local_address, socket_options)
        return _DeadlineStream(stream, self.deadline)

    def sleep(self, seconds: float) -> None:
        self.backend.sleep(seconds)


def _left(deadline: float, timeout: float | None) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the whole call took longer than its timeout")
    return left if timeout is None else min(timeout, left)


@functools.cache
def _loaded_context(https: bool, ca_bundle: str | None) -> ssl.SSLContext:
    """A verifying context when the caller gave none: the CA bundle's, else the trust store over TLS,
    and none at all otherwise.

    Loading the trust store is slow, so it is done once per process, and not for a plain-http
    API (a local fake): there a context that trusts nothing stands in, never one that checks nothing.
    """
    if ca_bundle is not None:  # a file of certificates, or a directory of them
        if os.path.isfile(ca_bundle):
            return ssl.create_default_context(cafile=ca_bundle)
        return ssl.create_default_context(capath=ca_bundle)
    if https:
        return httpx.create_ssl_context()
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts nothing; verifies certificates and host names


def _reply(response: httpx.Response, chunks: Iterable[bytes]) -> Reply:
    """The reply, its body read from `chunks` up to MAX_REPLY_BYTES.

    Read here, not in send(): the error a read raises halfway is replaced by one raised from send(),
    whose traceback's frames must not hold the part of the body (a token) read so far.
    """
    body = b""
    for chunk in chunks:
        body += chunk
        if len(body) > MAX_REPLY_BYTES:
            break
    headers = {}
    for name, value in response.headers.items():
        headers[name.lower()] = value
    return Reply(response.status_code, headers, body[:MAX_REPLY_BYTES])


def _failure(call: Call, exc: httpx.HTTPError, timeout: float) -> KoyebAuthError:
    # A local protocol error quotes the request's own headers: its type only.
    quoted = str(exc) and not isinstance(exc, httpx.LocalProtocolError)
    reason = f"{type(exc).__name__}: {exc}" if quoted else type(exc).__name__
    where = f"{call.action} ({call.method} {call.url})"
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return APIUnreachableError(
            f"Could not reach the Koyeb API for {where}: its TLS certificate is not trusted ({reason}). Nothing "
            "was sent. Check KOYEB_URL.", Hint.CA_CERTIFICATE
        )
    if isinstance(exc, httpx.TimeoutException):
        return APIUnreachableError(
            f"The Koyeb API did not answer {where} within {timeout:g} s ({reason}). Check the network and the "
            "API URL (KOYEB_URL).", Hint.TIMEOUT
        )
    if isinstance(exc, httpx.TransportError):
        return APIUnreachableError(
            f"Could not reach the Koyeb API for {where}: {reason}. Check the network and the API URL (KOYEB_URL)."
        )
    return APIError(f"Koyeb {where} sent a reply that could not be read: {reason}.")


def _unsendable(call: Call, exc: Exception) -> KoyebAuthError:
    """A failure of the HTTP client that is not an httpx.HTTPError: named by its type alone, since
    its message may quote the request (a URL with a password in it, a header)."""
    where = f"Koyeb {call.action} ({call.method})"
    if isinstance(exc, httpx.InvalidURL):
        return ConfigurationError(f"{where} could not be sent: the HTTP client refused its URL ({type(exc).__name__}). "
                                  "Check the API URL (KOYEB_URL) and the organization id (KOYEB_ORGANIZATION).")
    return APIError(f"{where} could not be sent: the HTTP client failed ({type(exc).__name__}). Check the network "
                    "settings (proxy=, HTTPS_PROXY, verify=, SSL_CERT_FILE).")
