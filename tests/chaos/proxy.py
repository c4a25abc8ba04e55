"""A TCP proxy in front of the broker that can cut every connection and refuse new ones for a while.

The services' bootstrap address is the proxy's, and the broker advertises the proxy's address too, so
every Kafka connection (bootstrap, metadata, group coordinator, fetches) runs through here. A cut
resets the open connections (RST, as a broken network or a failed load balancer does) and closes the
listening socket, so reconnects are refused until the cut ends; then the proxy listens again on the
same port and clients find their way back on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

_CHUNK = 64 * 1024


class TcpProxy:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1") -> None:
        self.host, self.listen_port, self.target_port = host, listen_port, target_port
        self._server: asyncio.AbstractServer | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self.cuts = 0
        self.connections = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.listen_port}"

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.listen_port, reuse_address=True)
        return self

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            _reset(client_writer)
            return
        if self._server is None:  # a cut began while this connection was being made
            _reset(client_writer)
            _reset(upstream_writer)
            return
        self.connections += 1
        self._open |= {client_writer, upstream_writer}
        pumps = [asyncio.ensure_future(_pump(client_reader, upstream_writer)),
                 asyncio.ensure_future(_pump(upstream_reader, client_writer))]
        self._pumps.update(pumps)
        try:
            # When one side goes, the other goes too: a half-open Kafka connection only confuses clients.
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
                self._pumps.discard(pump)
            for writer in (client_writer, upstream_writer):
                self._open.discard(writer)
                writer.close()

    async def cut(self, seconds: float) -> None:
        """Reset every connection, refuse new ones for `seconds`, then accept again."""
        self.cuts += 1
        await self._close()
        await asyncio.sleep(seconds)
        await self.start()

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._open):
            _reset(writer)
        self._open.clear()
        for pump in list(self._pumps):
            pump.cancel()
        await asyncio.sleep(0)

    async def stop(self) -> None:
        await self._close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: the peer sees 'connection reset', as when a network path dies."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
