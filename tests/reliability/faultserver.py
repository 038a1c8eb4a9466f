"""A feed server on 127.0.0.1 that misbehaves on purpose.

Raw sockets rather than http.server: dripping bytes, resetting a connection
mid-body or promising more than is sent needs control below HTTP. Each route
is a function that gets the accepted connection and writes what it likes.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

Handler = Callable[[socket.socket, threading.Event], None]


@dataclass
class FaultServer:
    routes: dict[str, Handler] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """`host="localhost"` reaches the same server as another host name (own per-host slot)."""
        return f"http://{host}:{self.port}{path}"

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
            except OSError:
                return
            path = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else "/"
            with self._lock:
                self.hits[path] = self.hits.get(path, 0) + 1
            handler = self.routes.get(path, not_found)
            with contextlib.suppress(OSError):
                handler(conn, self._stop)


def head(status: str = "200 OK", **headers: str | int) -> bytes:
    lines = [f"HTTP/1.1 {status}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def not_found(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(head("404 Not Found", Content_Length=0))


def body(content: bytes, content_type: str = "application/rss+xml", **headers: str) -> Handler:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            head(Content_Type=content_type, Content_Length=len(content), **headers) + content
        )

    return handler


def drip_body(content: bytes, every: float = 1.0) -> Handler:
    """Headers at once, then the body one byte per `every` seconds."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head(Content_Type="application/rss+xml", Content_Length=len(content)))
        for n in range(len(content)):
            conn.sendall(content[n : n + 1])
            if stop.wait(every):
                return

    return handler


def drip_headers(every: float = 1.0) -> Handler:
    """The status line and headers themselves, one byte per `every` seconds, never ending."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while True:
            for byte in b"X-Filler: aaaaaaaaaaaaaaaaaaaa\r\n":
                conn.sendall(bytes([byte]))
                if stop.wait(every):
                    return

    return handler


def reset_mid_body(content: bytes) -> Handler:
    """Part of the body, then a TCP reset (SO_LINGER 0) instead of the rest."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head(Content_Type="application/rss+xml", Content_Length=len(content)))
        conn.sendall(content[: len(content) // 3])
        stop.wait(0.2)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    return handler


def truncated(content: bytes) -> Handler:
    """Content-Length promises twice what is sent before an orderly close."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            head(Content_Type="application/rss+xml", Content_Length=2 * len(content)) + content
        )

    return handler


def redirect(location: str, status: str = "302 Found") -> Handler:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(head(status, Location=location, Content_Length=0))

    return handler


def compressed(payload: bytes, encoding: str) -> Handler:
    """A precompressed body; the server stops writing as soon as the client hangs up."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(
            head(
                Content_Type="application/rss+xml",
                Content_Encoding=encoding,
                Content_Length=len(payload),
            )
        )
        for start in range(0, len(payload), 65536):
            conn.sendall(payload[start : start + 65536])

    return handler
