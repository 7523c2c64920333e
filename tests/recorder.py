"""A hostile server on loopback for the attack tests: it records what reached it and answers as told.

Plain HTTP, or TLS with a certificate from a throwaway CA (trustme) that no client trusts, which
is what a man in the middle presents.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 401
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = field(default_factory=lambda: {"status": 401, "code": "authentication_error",
                                               "message": "Request unauthenticated with bearer"})


class Recorder:
    """`with Recorder() as server:` `server.url`, `server.seen`, `server.answer = Answer(...)`."""

    def __init__(self, tls: bool = False) -> None:
        self.seen: list[Seen] = []
        self.answer = Answer()
        self.handshakes_failed = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.recorder = self  # type: ignore[attr-defined]
        self.scheme = "https" if tls else "http"
        self.ca = trustme.CA()  # a CA nobody trusts, unless a test hands it to the client
        if tls:
            certificate = self.ca.issue_cert("127.0.0.1", "localhost")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            certificate.configure_cert(context)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        recorder: Recorder = self.server.recorder  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        recorder.seen.append(Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        answer = recorder.answer
        data = json.dumps(answer.body).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):  # the client refused our certificate: nothing was sent
                self.server.recorder.handshakes_failed += 1  # type: ignore[attr-defined]
                return
        super().handle()


class DroppingAPI:
    """An API that answers the first request of each connection (keep-alive), and reads the second
    and hangs up without a word: a load balancer dropping an idle connection just as it is reused.
    Records the path and whether each request carried a token."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _DroppingHandler)
        self._server.daemon_threads = True
        self._server.api = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> DroppingAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class _DroppingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    served = 0

    def do_GET(self) -> None:
        api: DroppingAPI = self.server.api  # type: ignore[attr-defined]
        api.seen.append((self.path, "authorization" in {k.lower() for k in self.headers}))
        self.served += 1
        if self.served > 1:
            self.close_connection = True  # no reply: the client sees the connection dropped
            return
        authorized = "authorization" in {k.lower() for k in self.headers}
        data = b'{"apps": []}' if authorized else b'{"status": 401, "message": "Request unauthenticated"}'
        self.send_response(200 if authorized else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class HostileRedis:
    """A Redis on loopback that answers the handshake, then every EVAL with `eval_reply` (raw RESP),
    all at once or a byte every `trickle` seconds; with `trickle_every`, only every so many EVALs
    trickle (a call stuck among quick ones). Counts the connections it `accepted` and the replies
    it `trickled`."""

    def __init__(self, eval_reply: bytes = b":abc\r\n", trickle: float | None = None, trickle_every: int = 1) -> None:
        self.eval_reply = eval_reply
        self.trickle = trickle
        self.trickle_every = trickle_every
        self.evals = itertools.count(1)
        self.accepted = self.trickled = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self._listener.getsockname()[1]}/0"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        stream = connection.makefile("rb")
        with contextlib.suppress(OSError, ValueError), connection:
            while line := stream.readline():
                words = [stream.read(int(stream.readline()[1:]) + 2)[:-2] for _ in range(int(line[1:]))]
                if words[0].upper() != b"EVAL":
                    connection.sendall(b"%1\r\n+proto\r\n:3\r\n" if words[0].upper() == b"HELLO" else b"+OK\r\n")
                elif self.trickle is None or next(self.evals) % self.trickle_every:
                    connection.sendall(self.eval_reply)
                else:
                    self.trickled += 1
                    for byte in self.eval_reply:
                        connection.sendall(bytes([byte]))
                        time.sleep(self.trickle)

    def __enter__(self) -> HostileRedis:
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()
