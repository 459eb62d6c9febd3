"""A TCP relay on loopback: counts the bytes each way, and can be switched to another target.

Two uses: ``make fleet`` counts what crosses a device's link (TLS records included, TCP/IP
headers not) by sending the devices through it; the CA rollover test moves the server
behind one fixed address from the old Caramel to the new one, as an operator's DNS or load
balancer change does, while the devices' configuration stays the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType


class Relay:
    """Forward every connection to ``127.0.0.1:target_port`` (read at each new connection).

    An asyncio loop in a thread of its own; a context manager starts and stops it.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.up = 0
        self.down = 0
        self.connections = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="relay")

    def __enter__(self) -> Relay:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the relay did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        """The address devices are given."""
        return f"https://127.0.0.1:{self.port}"

    def snapshot(self) -> tuple[int, int, int]:
        """Bytes up (client to server), bytes down, connections, so far."""
        return self.up, self.down, self.connections

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=512)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            far_reader, far_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pump(reader, far_writer, up=True), self._pump(far_reader, writer, up=False)
        )

    async def _pump(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, up: bool
    ) -> None:
        try:
            while chunk := await source.read(65536):
                if up:
                    self.up += len(chunk)
                else:
                    self.down += len(chunk)
                sink.write(chunk)
                await sink.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.close()
