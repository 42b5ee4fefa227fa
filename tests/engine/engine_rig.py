"""A gateway engine wired to a running emulator, as the integration wires it, for end-to-end tests; and one
aimed at a scripted broker, for what mosquitto cannot be made to do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
import ssl
from typing import Any

import aiohttp

from custom_components.tencent_iot_gateway.engine.engine_config import (
    ConnectionSettings,
    EngineDevices,
    EngineStorage,
    GatewayLogin,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import EngineEvent, GatewayEngine, SubDevice
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.mqtt.session import Backoff
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import DEFAULT_UPLINK_RATE
from custom_components.tencent_iot_gateway.engine.ota.download import Downloader
from custom_components.tencent_iot_gateway.engine.ota.firmware_cache import FirmwareCache
from custom_components.tencent_iot_gateway.engine.ota.flashers import (
    Flasher,
    HttpFlasherConfig,
    build_flasher,
)
from custom_components.tencent_iot_gateway.engine.ota.health_check import HealthCheck
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobSnapshot, JobState, OtaSettings
from custom_components.tencent_iot_gateway.engine.ota.preflight import Preflight
from custom_components.tencent_iot_gateway.engine.ota.rollback_images import RollbackImages
from custom_components.tencent_iot_gateway.engine.ota.rollout_policy import RolloutSettings
from custom_components.tencent_iot_gateway.engine.stores.halted_rollouts import HaltedRollouts
from custom_components.tencent_iot_gateway.engine.stores.storage import JsonFileStore
from tencent_iot_emulator.console_client import ConsoleClient
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually

from .scripted_broker import ScriptedBroker

GATEWAY = DeviceId("GWPROD0001", "gateway1")
LIGHTS = [DeviceId("LIGHTPID01", f"light{i}") for i in (1, 2, 3)]
AIRCON = DeviceId("ACPROD0001", "airConditioner1")
SEED = [*LIGHTS, AIRCON]
ENGINE_LOGGER = "custom_components.tencent_iot_gateway.engine.gateway_engine"


@dataclass
class Cloud:
    """The emulator with the seed's devices registered and bound, and a console client."""

    emu: Emulator
    console: ConsoleClient
    gateway_secret: str
    secrets: dict[DeviceId, str]


async def seed_cloud(emu: Emulator, http: aiohttp.ClientSession, *, bind: bool = True) -> Cloud:
    """Register the gateway and the seed's sub-devices (bound from the console unless asked not to)."""
    console = ConsoleClient(emu.http_url, http)
    gateway = await console.add_device(GATEWAY.product_id, GATEWAY.device_name)
    secrets: dict[DeviceId, str] = {}
    for device in SEED:
        credentials = await console.add_device(device.product_id, device.device_name)
        secrets[device] = credentials.device_secret
        if bind:
            await console.bind(GATEWAY.key, device.key)
        await console.put_virtual_device(device.product_id, device.device_name, "0.1")
    return Cloud(emu, console, gateway.device_secret, secrets)


def virtual_device_flasher(emu: Emulator, session: aiohttp.ClientSession) -> Flasher:
    """The http flasher aimed at the emulator's virtual sub-devices."""
    config = HttpFlasherConfig(
        url=emu.http_url + "/devices/{product_id}/{device_name}/firmware",
        version_url=emu.http_url + "/devices/{product_id}/{device_name}",
        poll_interval_s=0.1,
        version_timeout_s=10.0,
    )
    return build_flasher(config, session)


@dataclass
class Gateway:
    """A running engine and everything it emitted."""

    engine: GatewayEngine
    events: list[EngineEvent] = field(default_factory=list)

    def snapshots(self, device: DeviceId) -> list[JobSnapshot]:
        """Every job snapshot emitted for `device`, in order."""
        return [e for e in self.events if isinstance(e, JobSnapshot) and e.device == device]

    def states(self, device: DeviceId) -> list[JobState]:
        """The job states `device` went through, without repeats."""
        states: list[JobState] = []
        for snapshot in self.snapshots(device):
            if not states or states[-1] is not snapshot.state:
                states.append(snapshot.state)
        return states


def trusting_session(emu: Emulator) -> aiohttp.ClientSession:
    """An aiohttp session that verifies the emulator's certificates against its CA."""
    context = ssl.create_default_context(cafile=str(emu.ca_file))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


@contextlib.asynccontextmanager
async def running_gateway(
    cloud: Cloud,
    state_dir: Path,
    *,
    sub_devices: list[SubDevice] | None = None,
    flasher_for: Callable[[DeviceId], Flasher | None] | None = None,
    auto_install: bool = True,
    settings: OtaSettings | None = None,
    downloader_options: dict[str, Any] | None = None,
    start: bool = True,
    endpoint: BrokerEndpoint | None = None,
    uplink_rate: float | None = DEFAULT_UPLINK_RATE,
    preflight_for: Callable[[DeviceId], Preflight | None] | None = None,
    rollout: RolloutSettings | None = None,
    health_for: Callable[[DeviceId], HealthCheck | None] | None = None,
) -> AsyncIterator[Gateway]:
    """Start an engine for the seed's gateway over TLS against the emulator's CA; stop it on exit."""
    emu = cloud.emu
    async with trusting_session(emu) as session:
        cache = FirmwareCache(state_dir / "cache")
        downloader = Downloader(
            session,
            cache,
            JsonFileStore(state_dir / "downloads.json"),
            **({"backoff_s": 0.05, "backoff_max_s": 0.2} | (downloader_options or {})),
        )
        flasher = virtual_device_flasher(emu, session)
        events: list[EngineEvent] = []
        engine = GatewayEngine(
            GatewayLogin(
                endpoint
                or BrokerEndpoint("127.0.0.1", emu.mqtts_port, tls=True, ca_pem=emu.ca_file.read_text()),
                GATEWAY,
                cloud.gateway_secret,
            ),
            storage=EngineStorage(
                store=JsonFileStore(state_dir / "ota.json"),
                downloader=downloader,
                cache=cache,
                rollback_images=RollbackImages(state_dir / "rollback"),
                halted_rollouts=HaltedRollouts(JsonFileStore(state_dir / "rollouts.json")),
            ),
            devices=EngineDevices(
                flasher_for=flasher_for or (lambda _device: flasher),
                auto_install=lambda _device: auto_install,
                preflight_for=preflight_for,
                health_for=health_for,
            ),
            on_event=events.append,
            settings=settings,
            rollout=rollout,
            connection=ConnectionSettings(
                backoff=Backoff(initial_s=0.05, maximum_s=0.5),
                operation_timeout_s=2.0,
                uplink_rate=uplink_rate,
            ),
        )
        gateway = Gateway(engine, events)
        if start:
            await engine.start(
                sub_devices if sub_devices is not None else [SubDevice(d, "0.1") for d in SEED]
            )
            await engine.wait_versions_reported()
        try:
            yield gateway
        finally:
            await engine.stop()


@contextlib.asynccontextmanager
async def scripted_engine(
    broker: ScriptedBroker, state_dir: Path
) -> AsyncIterator[tuple[GatewayEngine, list[EngineEvent]]]:
    """An engine (not started) aimed at a scripted broker, plain MQTT, with short timeouts."""
    async with aiohttp.ClientSession() as session:
        cache = FirmwareCache(state_dir / "cache")
        events: list[EngineEvent] = []
        engine = GatewayEngine(
            GatewayLogin(BrokerEndpoint("127.0.0.1", broker.port, tls=False), GATEWAY, "c2VjcmV0"),
            storage=EngineStorage(
                store=JsonFileStore(state_dir / "ota.json"),
                downloader=Downloader(session, cache, JsonFileStore(state_dir / "downloads.json")),
                cache=cache,
            ),
            devices=EngineDevices(flasher_for=lambda _device: None, auto_install=lambda _device: False),
            on_event=events.append,
            connection=ConnectionSettings(
                backoff=Backoff(initial_s=0.01, maximum_s=0.02), operation_timeout_s=0.2
            ),
        )
        try:
            yield engine, events
        finally:
            await engine.stop()


async def stop_a_third_into_a_download(cloud: Cloud, state_dir: Path, image: bytes, light: DeviceId) -> None:
    """Push `image` (version V2) to `light`, served slowly, and stop the engine once a third has arrived: what
    is on disk in `state_dir` is then a partial download for the next engine to resume."""
    await cloud.console.upload_firmware(light.product_id, "V2", image)
    await cloud.console.set_faults({"throttle_bps": 262144})
    async with running_gateway(cloud, state_dir, sub_devices=[SubDevice(light, "0.1")]) as gateway:
        await cloud.console.create_task(light.product_id, "V2", "list", devices=[light.device_name])

        async def a_third() -> bool:
            return gateway.engine.ota.snapshot(light).downloaded >= len(image) // 3

        await eventually(a_third, within=10)
