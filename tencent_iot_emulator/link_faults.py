"""A link that breaks at a chosen publish: a TCP relay in front of the broker's plain MQTT port.

The worst moment for a connection to drop is while a device's terminal report is on the wire: the device
cannot know whether the cloud heard it. `LinkCutter` forwards MQTT both ways and, at the first client PUBLISH
whose packet contains `cut_on` (e.g. `b'"state":"done"'`), drops that packet and closes both sides, as a
broken link would: the client sees no PUBACK and loses its connection. It cuts `times` times, then relays
everything; the client reconnects through it as it would to the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Self

_PUBLISH = 3


@dataclass
class LinkCutter:
    """Relays 127.0.0.1:`port` to the broker at `broker_port`; cuts the link at matching publishes."""

    broker_port: int
    cut_on: bytes
    times: int = 1
    host: str = "127.0.0.1"
    cuts: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _links: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        """Listen on a free port (in `port`)."""
        self._server = await asyncio.start_server(self._relay, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Close the listener and every relayed link."""
        if self._server is not None:
            self._server.close()
        for task in list(self._links):
            task.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        """Start listening."""
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Stop."""
        await self.stop()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            broker_reader, broker_writer = await asyncio.open_connection(self.host, self.broker_port)
        except OSError:
            client_writer.close()
            self._links.discard(task)
            return
        down = asyncio.create_task(_pipe(broker_reader, client_writer))
        try:
            await self._client_to_broker(client_reader, broker_writer)
        except OSError, asyncio.IncompleteReadError:
            pass
        finally:
            down.cancel()
            await asyncio.gather(down, return_exceptions=True)
            for writer in (client_writer, broker_writer):
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            self._links.discard(task)

    async def _client_to_broker(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            header = await reader.readexactly(1)
            length_bytes, length = await _read_length(reader)
            body = await reader.readexactly(length)
            if header[0] >> 4 == _PUBLISH and self.cuts < self.times and self.cut_on in body:
                self.cuts += 1
                return  # dropped on the wire; the caller closes both sides
            writer.write(header + length_bytes + body)
            await writer.drain()


async def _read_length(reader: asyncio.StreamReader) -> tuple[bytes, int]:
    """MQTT's variable-length "remaining length": the raw bytes and the value."""
    raw = b""
    value, shift = 0, 0
    while True:
        byte = await reader.readexactly(1)
        raw += byte
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return raw, value
        shift += 7


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    writer.close()
