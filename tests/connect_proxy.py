"""A small HTTPS proxy on loopback for tests: CONNECT tunnels, and a record of what crossed.

It answers one ``CONNECT host:port`` per connection (``407`` when credentials are
required and missing or wrong, or the status a test forces), then relays bytes both
ways. Everything the client sent after the CONNECT header is kept, so a test can check
that the request travelled only inside TLS.
"""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Tunnel:
    """One CONNECT: its target, its header lines, and the client's bytes through it."""

    target: str
    headers: dict[str, str]
    sent: bytearray = field(default_factory=bytearray)


@dataclass
class ConnectProxy:
    port: int = 0
    credentials: tuple[str, str] | None = None  # required Basic credentials, if any
    refuse_with: str | None = None  # e.g. "403 Forbidden"
    tunnels: list[Tunnel] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, client: socket.socket) -> None:
        header = b""
        while b"\r\n\r\n" not in header:
            chunk = client.recv(4096)
            if not chunk:
                return
            header += chunk
        head, _, early = header.partition(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = dict(line.split(": ", 1) for line in lines)
        tunnel = Tunnel(target, headers, bytearray(early))
        with self.lock:
            self.tunnels.append(tunnel)
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return
        if self.refuse_with is not None:
            client.sendall(f"HTTP/1.1 {self.refuse_with}\r\nContent-Length: 0\r\n\r\n".encode())
            return
        if self.credentials is not None:
            token = base64.b64encode(":".join(self.credentials).encode()).decode()
            if headers.get("Proxy-Authorization") != f"Basic {token}":
                client.sendall(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
                )
                return
        host, _, port = target.rpartition(":")
        with socket.create_connection((host.strip("[]"), int(port)), timeout=30) as upstream:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if early:
                upstream.sendall(early)
            self._relay(client, upstream, tunnel)

    def _relay(self, client: socket.socket, upstream: socket.socket, tunnel: Tunnel) -> None:
        peers = {client: upstream, upstream: client}
        while True:
            readable, _, _ = select.select(list(peers), [], [], 30)
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                if source is client:
                    tunnel.sent += data
                peers[source].sendall(data)


@contextmanager
def running(proxy: ConnectProxy) -> Iterator[ConnectProxy]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            proxy.handle(self.request)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    with Server(("127.0.0.1", 0), Handler) as server:
        proxy.port = server.server_address[1]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield proxy
        finally:
            server.shutdown()
