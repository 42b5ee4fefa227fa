"""A tiny MQTT 3.1.1 broker on 127.0.0.1 that misbehaves on cue, for what mosquitto cannot be made to do.

`ScriptedBroker` answers each connection as its script says: a CONNACK code, silence, or hanging up; a PUBLISH
can go unacknowledged or make it hang up. SUBSCRIBE is always granted, PINGREQ answered. It never sends a
PUBLISH of its own: tests that need the cloud's replies use the emulator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass, field

SILENT = "silent"
HANG_UP = "hang up"


@dataclass
class ScriptedBroker:
    """Answers the n-th CONNECT with `connacks[n]` (an MQTT 3.1.1 return code, SILENT or HANG_UP)."""

    connacks: list[int | str]
    ack_publish: bool = True
    # Hang up on the n-th PUBLISH (1-based, counted over all connections), after acknowledging it if asked.
    hang_up_at: int | None = None
    hang_up_on_every_publish: bool = False
    ack_then_hang_up: bool = False
    connects: int = 0
    published: list[str] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one client connection until it or the script hangs up."""
        try:
            while True:
                header, body = await _read_packet(reader)
                kind = header >> 4
                if kind == 1:
                    action = self.connacks[min(self.connects, len(self.connacks) - 1)]
                    self.connects += 1
                    if action == HANG_UP:
                        return
                    if action != SILENT:
                        writer.write(bytes([0x20, 2, 0, int(action)]))
                elif kind == 3:
                    topic_len = int.from_bytes(body[:2])
                    self.published.append(body[2 : 2 + topic_len].decode())
                    hang_up = len(self.published) == self.hang_up_at or self.hang_up_on_every_publish
                    qos = (header >> 1) & 3
                    if qos and self.ack_publish and (not hang_up or self.ack_then_hang_up):
                        writer.write(bytes([0x40, 2]) + body[2 + topic_len : 4 + topic_len])
                        await writer.drain()
                    if hang_up:
                        return
                elif kind == 8:
                    granted = bytes(_subscribed_qos(body[2:]))
                    writer.write(bytes([0x90, 2 + len(granted)]) + body[:2] + granted)
                elif kind == 12:
                    writer.write(bytes([0xD0, 0]))
                elif kind == 14:
                    return
                await writer.drain()
        except asyncio.IncompleteReadError, ConnectionError:
            return
        finally:
            writer.close()


async def _read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    header = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return header, await reader.readexactly(length)


def _subscribed_qos(filters: bytes) -> list[int]:
    """The requested QoS of each topic filter of a SUBSCRIBE, granted as asked."""
    granted: list[int] = []
    while filters:
        end = 2 + int.from_bytes(filters[:2])
        granted.append(filters[end])
        filters = filters[end + 1 :]
    return granted


@contextlib.asynccontextmanager
async def scripted_broker(broker: ScriptedBroker) -> AsyncIterator[ScriptedBroker]:
    """Serve `broker` on a free port of 127.0.0.1."""
    server = await asyncio.start_server(broker.handle, "127.0.0.1", 0)
    broker.port = server.sockets[0].getsockname()[1]
    try:
        yield broker
    finally:
        server.close()
        server.close_clients()
        await server.wait_closed()
