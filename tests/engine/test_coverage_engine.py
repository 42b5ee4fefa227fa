"""Gateway engine edges: sub-devices added late, binds that fail, and connections lost mid-announcement."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import logging
from pathlib import Path

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.engine_config import (
    ConnectionSettings,
    EngineDevices,
    EngineStorage,
    GatewayLogin,
)
from custom_components.tencent_iot_gateway.engine.gateway_engine import (
    AuthenticationFailed,
    ConnectionChanged,
    EngineEvent,
    GatewayEngine,
    SubDevice,
    SubDeviceStatus,
)
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.mqtt.session import Backoff
from custom_components.tencent_iot_gateway.engine.ota.download import Downloader
from custom_components.tencent_iot_gateway.engine.ota.firmware_cache import FirmwareCache
from custom_components.tencent_iot_gateway.engine.stores.storage import JsonFileStore
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually

from .engine_rig import GATEWAY, LIGHTS, running_gateway, seed_cloud
from .scripted_broker import ScriptedBroker, scripted_broker

ENGINE_LOGGER = "custom_components.tencent_iot_gateway.engine.gateway_engine"
WRONG_SECRET = "d3Jvbmctc2VjcmV0LXdyb25n"


def test_sub_device_repr_hides_its_secret() -> None:
    """A sub-device's secret never reaches a log line through its repr."""
    sub = SubDevice(LIGHTS[0], "0.1", secret="c3VwZXItc2VjcmV0")
    assert repr(sub) == "SubDevice(LIGHTPID01/light1, installed_version='0.1')"


async def test_update_of_an_unknown_sub_device_adds_it(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """`update_sub_device` for a device the engine does not know yet adds it: online, listed, version reported."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path, sub_devices=[]) as gateway:
        engine = gateway.engine
        assert engine.gateway == GATEWAY
        assert engine.sub_devices == []
        await engine.update_sub_device(SubDevice(LIGHTS[0], "0.1"))
        assert engine.sub_devices == [SubDevice(LIGHTS[0], "0.1")]
        assert engine.is_online(LIGHTS[0])
        assert SubDeviceStatus(LIGHTS[0], True, 0) in gateway.events
        status = await cloud.console.get_device(LIGHTS[0].product_id, LIGHTS[0].device_name)
        assert status.online


async def test_bind_with_a_wrong_secret_is_logged_and_the_device_stays_offline(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unbound device whose secret the cloud rejects: the error is logged, the device stays offline (-1)."""
    cloud = await seed_cloud(emulator, http, bind=False)
    subs = [SubDevice(LIGHTS[0], "0.1", secret=WRONG_SECRET)]
    with caplog.at_level(logging.ERROR, logger=ENGINE_LOGGER):
        async with running_gateway(cloud, tmp_path, sub_devices=subs) as gateway:
            assert not gateway.engine.is_online(LIGHTS[0])
            assert gateway.events[-1] == ConnectionChanged(connected=True)
            assert SubDeviceStatus(LIGHTS[0], False, -1) in gateway.events
            status = await cloud.console.get_device(LIGHTS[0].product_id, LIGHTS[0].device_name)
            assert status.gateway is None
    failures = [r.getMessage() for r in caplog.records if "Could not bind" in r.getMessage()]
    assert len(failures) == 1
    assert "LIGHTPID01/light1" in failures[0]
    assert WRONG_SECRET not in caplog.text


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


async def test_refused_credentials_after_a_loss_become_an_event(socket_enabled: None, tmp_path: Path) -> None:
    """The broker drops the gateway, then refuses its login: the layer above hears AuthenticationFailed."""
    broker = ScriptedBroker([0, 5], hang_up_at=1)
    async with scripted_broker(broker), scripted_engine(broker, tmp_path) as (engine, events):
        await engine.start([SubDevice(LIGHTS[0], "0.1")])

        async def refused() -> AuthenticationFailed | None:
            return next((e for e in events if isinstance(e, AuthenticationFailed)), None)

        failure = await eventually(refused)
        assert "check the device secret" in failure.message
        assert ConnectionChanged(connected=False) in events
        assert ConnectionChanged(connected=True) not in events
        assert not engine.connected
        assert broker.connects == 2


async def test_connection_dropped_during_announcement_is_announced_again(
    socket_enabled: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker takes `online` and hangs up: the announcement is not reported done, and is redone on reconnect."""
    broker = ScriptedBroker([0], hang_up_at=1, ack_then_hang_up=True)
    async with scripted_broker(broker), scripted_engine(broker, tmp_path) as (engine, events):
        with caplog.at_level(logging.WARNING):
            await engine.start([SubDevice(LIGHTS[0], "0.1")])
        assert ConnectionChanged(connected=True) not in events
        assert "the connection dropped while announcing the gateway" in caplog.text

        async def announced() -> bool:
            return ConnectionChanged(connected=True) in events

        await eventually(announced)
        assert broker.connects == 2
        assert broker.published.count("$gateway/operation/GWPROD0001/gateway1") >= 2
        assert not engine.is_online(LIGHTS[0])
        assert SubDeviceStatus(LIGHTS[0], False, None) in events


async def test_a_failed_online_retry_is_logged_not_raised(
    socket_enabled: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unanswered `online` is retried in the background; when that retry loses the connection, it is logged:
    the lost connection once as a warning (the session), the operation it cut short at debug level only."""
    broker = ScriptedBroker([0], hang_up_at=2)
    async with scripted_broker(broker), scripted_engine(broker, tmp_path) as (engine, events):
        with caplog.at_level(logging.DEBUG, logger=ENGINE_LOGGER):
            await engine.start([SubDevice(LIGHTS[0], "0.1")])
            assert ConnectionChanged(connected=True) in events

            async def retry_failed() -> bool:
                return "A gateway operation failed" in caplog.text

            await eventually(retry_failed)
        failed = [r for r in caplog.records if r.getMessage().startswith("A gateway operation failed")]
        assert {r.levelno for r in failed} == {logging.DEBUG}
        assert any(
            r.levelno == logging.WARNING and r.getMessage().startswith("Lost the connection")
            for r in caplog.records
        )
        assert broker.published[:2] == ["$gateway/operation/GWPROD0001/gateway1"] * 2


async def test_nothing_new_starts_once_the_engine_stops(socket_enabled: None, tmp_path: Path) -> None:
    """An `online` still waiting when the engine stops does not schedule its retry: nothing is sent afterwards."""
    broker = ScriptedBroker([0])
    async with scripted_broker(broker), scripted_engine(broker, tmp_path) as (engine, events):
        await engine.start([])
        adding = asyncio.create_task(engine.add_sub_device(SubDevice(LIGHTS[0], "0.1")))

        async def sent() -> bool:
            return "$gateway/operation/GWPROD0001/gateway1" in broker.published

        await eventually(sent)
        await engine.stop()
        await adding
        published = list(broker.published)
        await asyncio.sleep(0.5)
        assert broker.published == published == ["$gateway/operation/GWPROD0001/gateway1"]
        assert SubDeviceStatus(LIGHTS[0], False, None) in events
