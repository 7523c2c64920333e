"""A TCP proxy on loopback that holds back what clients send to Redis: a slow network, on demand.

Each chunk a client sends is forwarded `delay` seconds after it arrived (the delay in force at
its arrival), in order; replies come back at once, unless `replies_to_cut` says to lose them. A
client that gives up and closes its connection does not take back what it sent: the proxy still
delivers it, late, as a network would. That is what leaves a timed-out command running in Redis
after its caller moved on.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from types import TracebackType


class DelayingProxy:
    """`url` reaches the Redis at `target_port` through the proxy."""

    def __init__(self, target_port: int, delay: float = 0.0) -> None:
        self.delay = delay
        self.replies_to_cut = 0  # the next replies that Redis sends are lost, and their connections cut
        self.accepted = 0  # client connections so far
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._pending = 0  # chunks received from clients and not yet delivered to Redis
        self._changed = threading.Condition()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def drained(self, timeout: float = 10.0) -> None:
        """Wait until everything clients sent has reached Redis."""
        with self._changed:
            assert self._changed.wait_for(lambda: self._pending == 0, timeout), "the proxy did not drain"

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> DelayingProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            self.accepted += 1
            chunks: queue.Queue[tuple[float, bytes]] = queue.Queue()
            threading.Thread(target=self._receive, args=(client, chunks), daemon=True).start()
            threading.Thread(target=self._deliver, args=(chunks, upstream), daemon=True).start()
            threading.Thread(target=self._reply, args=(upstream, client), daemon=True).start()

    def _receive(self, client: socket.socket, chunks: queue.Queue[tuple[float, bytes]]) -> None:
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            with self._changed:
                self._pending += 1
            chunks.put((time.monotonic() + self.delay, data))
            if not data:
                return

    def _deliver(self, chunks: queue.Queue[tuple[float, bytes]], upstream: socket.socket) -> None:
        while True:
            due, data = chunks.get()
            time.sleep(max(due - time.monotonic(), 0.0))
            try:
                if data:
                    upstream.sendall(data)
                else:
                    upstream.shutdown(socket.SHUT_WR)  # the client closed: Redis sees it after the data
            except OSError:
                pass
            with self._changed:
                self._pending -= 1
                self._changed.notify_all()
            if not data:
                return


    def _reply(self, upstream: socket.socket, client: socket.socket) -> None:
        while True:
            try:
                data = upstream.recv(65536)
                if data and self.replies_to_cut > 0:
                    self.replies_to_cut -= 1
                    break  # lost on the way back: the client's connection drops without it
                if not data:
                    break
                client.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)
