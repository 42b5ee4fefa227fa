"""The whole local cloud in one async context manager: broker, cloud logic, http and https apps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
import ssl
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web

from .broker import Broker, BrokerLimits, loopback_for
from .certs import CertPaths, ensure_certificates
from .cloud import Cloud
from .console import Console
from .console_client import ConsoleClient
from .firmware import Firmware, FirmwareStore
from .firmware_server import FirmwareServer, QuerylessAccessLogger
from .registry import Registry
from .tasks import MIN_TIMEOUT_S
from .thing_console import ThingConsole
from .virtual_devices import VirtualDevices

_LOGGER = logging.getLogger(__name__)

BROKER_DIR = "broker"
CERTS_DIR = "certs"
FIRMWARE_DIR = "firmware"


class _FirmwareSource:
    """Adapts E2's store and server to what the cloud needs to build `update_firmware`."""

    def __init__(self, store: FirmwareStore, server: FirmwareServer, base_urls: dict[str, str]) -> None:
        self._store = store
        self._server = server
        self._base_urls = base_urls

    def find(self, product_id: str, version: str) -> Firmware | None:
        return self._store.get(product_id, version)

    def exists(self, product_id: str, version: str) -> bool:
        return self._store.get(product_id, version) is not None

    def url(self, firmware: Firmware, scheme: str) -> str:
        return self._server.signed_url(firmware, self._base_urls[scheme])


class Emulator:
    """A local Tencent Cloud IoT: `async with Emulator(state_dir) as emu: ...`.

    Ports 0 pick free ones. Everything that must survive a restart (certificates, products, devices, secrets,
    bindings, firmware) lives in `state_dir`. `min_task_timeout_s` is a test knob: it lowers the console's
    floor for a task's `timeout_s` (Tencent's is 120 s), so a test can watch a task time out.
    """

    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        *,
        mqtt_port: int = 0,
        mqtts_port: int = 0,
        http_port: int = 0,
        https_port: int = 0,
        min_task_timeout_s: float = MIN_TIMEOUT_S,
        limits: BrokerLimits | None = None,
    ) -> None:
        """Configure; nothing starts before `__aenter__`. `limits`: the broker's (see `BrokerLimits`)."""
        self.state_dir = Path(state_dir)
        self.host = host
        self._ports = (mqtt_port, mqtts_port, http_port, https_port)
        self._min_task_timeout_s = min_task_timeout_s
        self._limits = limits or BrokerLimits()
        self.mqtt_port = 0
        self.mqtts_port = 0
        self.http_url = ""
        self.https_url = ""
        self.ca_file = self.state_dir / CERTS_DIR / "ca.pem"
        self._stack = contextlib.AsyncExitStack()
        self._base_urls: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        """Start everything; on any failure, stop what already started."""
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop everything (mosquitto included)."""
        await self._stack.aclose()

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        hosts = tuple(dict.fromkeys(("127.0.0.1", "localhost", loopback_for(self.host))))
        certs: CertPaths = await loop.run_in_executor(
            None, ensure_certificates, self.state_dir / CERTS_DIR, hosts
        )
        self.ca_file = certs.ca_file
        self.registry = Registry(self.state_dir, self.state_dir / BROKER_DIR)
        await self.registry.load()

        self.firmware_store = await loop.run_in_executor(None, FirmwareStore, self.state_dir / FIRMWARE_DIR)
        self.firmware_server = await loop.run_in_executor(None, FirmwareServer, self.firmware_store)
        self.virtual_devices = VirtualDevices()
        self._stack.push_async_callback(self.virtual_devices.close)

        self.broker = Broker(
            self.state_dir / BROKER_DIR,
            certs,
            host=self.host,
            mqtt_port=self._ports[0],
            mqtts_port=self._ports[1],
            limits=self._limits,
        )
        await self.broker.start()
        self._stack.push_async_callback(self.broker.stop)
        self.mqtt_port, self.mqtts_port = self.broker.mqtt_port, self.broker.mqtts_port

        source = _FirmwareSource(self.firmware_store, self.firmware_server, self._base_urls)
        self.cloud = Cloud(
            self.registry,
            self.broker.cloud,
            source,
            min_task_timeout_s=self._min_task_timeout_s,
            state_dir=self.state_dir,
        )
        self.console_api = Console(self.registry, self.cloud, source.exists, self.broker)
        self.thing_console = ThingConsole(self.registry, self.cloud.things)

        ssl_context = await loop.run_in_executor(None, _server_ssl_context, certs)
        http_port = await self._serve_app(self._ports[2], None)
        https_port = await self._serve_app(self._ports[3], ssl_context)
        public = loopback_for(self.host)
        self.http_url = f"http://{public}:{http_port}"
        self.https_url = f"https://{public}:{https_port}"
        self._base_urls.update(http=self.http_url, https=self.https_url)

        await self.cloud.start()
        self._stack.push_async_callback(self.cloud.stop)

        session = aiohttp.ClientSession()
        self._stack.push_async_callback(session.close)
        self.console = ConsoleClient(self.http_url, session)

    async def _serve_app(self, port: int, ssl_context: ssl.SSLContext | None) -> int:
        app = web.Application(client_max_size=1024**3)
        self.console_api.register_routes(app)
        self.thing_console.register_routes(app)
        self.firmware_server.register_routes(app)
        self.virtual_devices.register_routes(app)
        # The access log must never show a signed URL's query (a credential).
        runner = web.AppRunner(
            app, handle_signals=False, access_log_class=QuerylessAccessLogger, shutdown_timeout=0.1
        )
        await runner.setup()
        self._stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, self.host, port, ssl_context=ssl_context)
        await site.start()
        address = runner.addresses[0]
        return int(address[1])

    async def set_limits(self, limits: BrokerLimits) -> None:
        """Change the broker's limits while running (they apply to the next check)."""
        await self.broker.set_limits(limits)

    @property
    def min_task_timeout_s(self) -> float:
        """The console's floor for a task's timeout_s (settable at run time, for tests)."""
        return self.cloud.tasks.min_timeout_s

    @min_task_timeout_s.setter
    def min_task_timeout_s(self, value: float) -> None:
        self.cloud.tasks.min_timeout_s = value


def _server_ssl_context(certs: CertPaths) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.cert_file, certs.key_file)
    return context
