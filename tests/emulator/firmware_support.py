"""A firmware server, store and virtual devices on a real aiohttp server on 127.0.0.1, for E2's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
import hashlib
from pathlib import Path
import time

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
import pytest

from tencent_iot_emulator.firmware import Firmware, FirmwareStore
from tencent_iot_emulator.firmware_server import FirmwareServer, QuerylessAccessLogger
from tencent_iot_emulator.virtual_devices import VirtualDevices

PRODUCT = "PROD000001"
TTL_S = 600.0


def image(size: int, seed: int = 7) -> bytes:
    """Deterministic, non-repeating-looking bytes (so an off-by-one shows)."""
    return bytes((i * 31 + seed + i // 251) % 256 for i in range(size))


def md5_hex(data: bytes) -> str:
    """Lowercase hex MD5 of `data`."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class FakeClock:
    """Unix time that tests move by hand, to expire URLs without waiting."""

    def __init__(self) -> None:
        """Start at the real time."""
        self.now = time.time()

    def __call__(self) -> float:
        """The current fake time."""
        return self.now


@dataclass
class Rig:
    """Everything E2's tests drive: the parts, their server's base URL and a client session."""

    directory: Path
    store: FirmwareStore
    server: FirmwareServer
    devices: VirtualDevices
    clock: FakeClock
    base_url: str
    session: aiohttp.ClientSession

    async def upload(self, data: bytes, version: str = "1.0", product_id: str = PRODUCT) -> Firmware:
        """Upload through the console route and return the stored firmware."""
        async with self.session.post(
            f"{self.base_url}/api/firmware", params={"product_id": product_id, "version": version}, data=data
        ) as response:
            assert response.status == 200, await response.text()
        firmware = self.store.get(product_id, version)
        assert firmware is not None
        return firmware

    def url(self, firmware: Firmware) -> str:
        """A freshly signed download URL."""
        return self.server.signed_url(firmware, self.base_url)

    async def put_faults(self, body: object) -> aiohttp.ClientResponse:
        """PUT /api/faults; the response is already read."""
        async with self.session.put(f"{self.base_url}/api/faults", json=body) as response:
            await response.read()
            return response


async def start_rig(directory: Path, *, reboot_delay_s: float = 0.05) -> tuple[TestServer, Rig]:
    """Start a rig on a free port of 127.0.0.1 (the caller closes the server and the session)."""
    clock = FakeClock()
    store = FirmwareStore(directory)
    server = FirmwareServer(store, url_ttl_s=TTL_S, clock=clock)
    devices = VirtualDevices(reboot_delay_s=reboot_delay_s)
    app = web.Application()
    server.register_routes(app)
    devices.register_routes(app)
    test_server = TestServer(app, host="127.0.0.1", port=0)
    # The runner options go to start_server; this access log never shows a signed query.
    await test_server.start_server(access_log_class=QuerylessAccessLogger)
    session = aiohttp.ClientSession()
    base_url = str(test_server.make_url("")).rstrip("/")
    return test_server, Rig(directory, store, server, devices, clock, base_url, session)


@pytest.fixture(name="rig")
async def rig_fixture(socket_enabled: None, tmp_path: Path) -> AsyncIterator[Rig]:
    """A running rig, closed after the test."""
    test_server, running = await start_rig(tmp_path / "firmware")
    try:
        yield running
    finally:
        await running.session.close()
        await test_server.close()
