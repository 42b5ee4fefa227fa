"""The emulator's firmware server and virtual devices on a real aiohttp server on 127.0.0.1, for engine tests.

Test modules define their fixtures with `start_rig` (a shared fixture module would need a conftest change).

The rig mounts `FirmwareStore` + `FirmwareServer.register_routes` and `VirtualDevices.register_routes` from
`tencent_iot_emulator` exactly as the emulator does, plus a middleware that records each request's path and
headers (to assert on `Range` and `Accept-Encoding`). `tls=True` serves HTTPS with the emulator's private CA.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
import hashlib
from pathlib import Path
import ssl
import time
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from custom_components.tencent_iot_gateway.engine.ota.download import Downloader
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.firmware_cache import FirmwareCache
from custom_components.tencent_iot_gateway.engine.stores.storage import JsonFileStore
from tencent_iot_emulator.certs import ensure_certificates
from tencent_iot_emulator.faults import FaultConfig
from tencent_iot_emulator.firmware import Firmware, FirmwareStore
from tencent_iot_emulator.firmware_server import FirmwareServer, QuerylessAccessLogger
from tencent_iot_emulator.virtual_devices import VirtualDevices

PRODUCT = "PROD000001"


def image(size: int, seed: int = 3) -> bytes:
    """Deterministic bytes that do not repeat with a short period (an off-by-one changes the MD5)."""
    return bytes((i * 37 + seed + i // 253) % 256 for i in range(size))


def md5_hex(data: bytes) -> str:
    """Lowercase hex MD5."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class ServerClock:
    """Unix time for the firmware server that a test can move forward (to expire signed URLs)."""

    def __init__(self) -> None:
        """Start at the real time."""
        self.now = time.time()

    def __call__(self) -> float:
        """The current time."""
        return self.now


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request that reached the server."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FirmwareRig:
    """The parts a test drives, its base URL and a client session that trusts the server."""

    tmp: Path
    store: FirmwareStore
    server: FirmwareServer
    devices: VirtualDevices
    clock: ServerClock
    base_url: str
    session: aiohttp.ClientSession
    ca_file: Path | None
    requests: list[SeenRequest] = field(default_factory=list)

    @property
    def cache_dir(self) -> Path:
        """Where the engine's firmware cache lives in this test."""
        return self.tmp / "cache"

    @property
    def state_path(self) -> Path:
        """The downloader's resume-state file."""
        return self.tmp / "download_state.json"

    async def upload(self, data: bytes, version: str = "1.0", product_id: str = PRODUCT) -> Firmware:
        """Store an image as the emulator's console would."""
        return await self.store.add(product_id, version, data)

    def spec(self, firmware: Firmware, **overrides: Any) -> FirmwareSpec:
        """The `update_firmware` the cloud would push for `firmware`, with a freshly signed URL."""
        fields: dict[str, Any] = {
            "url": self.server.signed_url(firmware, self.base_url),
            "md5": firmware.md5,
            "size": firmware.size,
            "version": firmware.version,
        }
        fields.update(overrides)
        return FirmwareSpec(**fields)

    def set_faults(self, body: dict[str, Any]) -> None:
        """Replace the server's fault knobs (re-arms one-shot faults)."""
        self.server.set_faults(FaultConfig.parse(body))

    def served(self, firmware: Firmware) -> tuple[int, int]:
        """(requests, body bytes) the server has seen for `firmware`."""
        entry = self.server.stats()["firmware"].get(firmware.key, {"requests": 0, "bytes": 0})
        return entry["requests"], entry["bytes"]

    def downloads(self) -> list[SeenRequest]:
        """The firmware download requests seen so far."""
        return [seen for seen in self.requests if seen.path.startswith("/ota/")]

    def downloader(
        self,
        *,
        cache: FirmwareCache | None = None,
        session: aiohttp.ClientSession | None = None,
        **kwargs: Any,
    ) -> Downloader:
        """A Downloader on this rig with test-sized backoff; `kwargs` override its settings."""
        settings: dict[str, Any] = {"backoff_s": 0.001, "backoff_max_s": 0.01, "read_timeout_s": 5.0}
        settings.update(kwargs)
        return Downloader(
            session or self.session,
            cache or FirmwareCache(self.cache_dir),
            JsonFileStore(self.state_path),
            **settings,
        )


type Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def start_rig(
    tmp: Path, *, tls: bool = False, devices_token: str | None = None
) -> tuple[TestServer, FirmwareRig]:
    """Start a rig on a free port of 127.0.0.1 (the caller closes the server and the session)."""
    clock = ServerClock()
    store = FirmwareStore(tmp / "emulator_firmware")
    server = FirmwareServer(store, url_ttl_s=600.0, clock=clock)
    devices = VirtualDevices(reboot_delay_s=0.05, token=devices_token)
    seen: list[SeenRequest] = []

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        seen.append(SeenRequest(request.method, request.path, dict(request.headers)))
        return await handler(request)

    app = web.Application(middlewares=[record])
    server.register_routes(app)
    devices.register_routes(app)
    server_ssl: ssl.SSLContext | None = None
    client_ssl: ssl.SSLContext | bool = True
    ca_file: Path | None = None
    if tls:
        certs = await asyncio.get_running_loop().run_in_executor(
            None, ensure_certificates, tmp / "certs", ("127.0.0.1",)
        )
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ssl.load_cert_chain(certs.cert_file, certs.key_file)
        client_ssl = ssl.create_default_context(cafile=str(certs.ca_file))
        ca_file = certs.ca_file
    test_server = TestServer(app, host="127.0.0.1", port=0)
    # The access log must not print the signed query either (the secret tests read every log line).
    await test_server.start_server(ssl=server_ssl, access_log_class=QuerylessAccessLogger)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ssl))
    base_url = str(test_server.make_url("")).rstrip("/")
    rig = FirmwareRig(tmp, store, server, devices, clock, base_url, session, ca_file, seen)
    return test_server, rig
