"""Failures while announcing: a lost answer is retried on its own, a connection lost mid-announcement announces
again, a stopped engine starts nothing new; a product that is not a gateway's is refused."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
import socket

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.engine_config import (
    ConnectionSettings,
    EngineDevices,
    EngineStorage,
    GatewayLogin,
)
from custom_components.tencent_iot_gateway.engine.errors import NotAGatewayError
from custom_components.tencent_iot_gateway.engine.gateway_engine import (
    ConnectionChanged,
    GatewayEngine,
    SubDevice,
    SubDeviceStatus,
)
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.mqtt.session import Backoff, MqttSession
from custom_components.tencent_iot_gateway.engine.ota.firmware_cache import FirmwareCache
from custom_components.tencent_iot_gateway.engine.stores.storage import JsonFileStore
from tencent_iot_emulator.console_client import ConsoleClient
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually
from tests.engine.engine_rig import (
    ENGINE_LOGGER,
    GATEWAY,
    LIGHTS,
    running_gateway,
    scripted_engine,
    seed_cloud,
)
from tests.engine.scripted_broker import ScriptedBroker, scripted_broker


def _engine(port: int, secret: str, state_dir: Path, operation_timeout_s: float = 20.0) -> GatewayEngine:
    return GatewayEngine(
        GatewayLogin(BrokerEndpoint("127.0.0.1", port, tls=False), GATEWAY, secret),
        storage=EngineStorage(
            store=JsonFileStore(state_dir / "ota.json"),
            downloader=None,  # type: ignore[arg-type]  # no job runs in these tests
            cache=FirmwareCache(state_dir / "cache"),  # stopping the jobs closes it
        ),
        devices=EngineDevices(flasher_for=lambda _d: None, auto_install=lambda _d: False),
        on_event=lambda _e: None,
        connection=ConnectionSettings(
            backoff=Backoff(initial_s=0.05, maximum_s=0.2), operation_timeout_s=operation_timeout_s
        ),
    )


async def test_unanswered_requests_are_retried_without_reconnecting(
    socket_enabled: None, tmp_path: Path
) -> None:
    """A broker that never acknowledges: the gateway keeps its one connection and asks again, with backoff."""
    async with scripted_broker(ScriptedBroker([0], ack_publish=False)) as broker:
        engine = _engine(broker.port, "c2VjcmV0", tmp_path, operation_timeout_s=0.2)
        await engine.start([SubDevice(LIGHTS[0], "1.0")])
        try:
            await eventually(lambda: _asked_online(broker, 3), within=10)
            # old code: every lost PUBACK dropped the connection and reconnected (a new CONNECT each time)
            assert broker.connects == 1
            assert engine.connected
        finally:
            await engine.stop()


async def _asked_online(broker: ScriptedBroker, times: int) -> bool:
    await asyncio.sleep(0)
    return broker.published.count(f"$gateway/operation/{GATEWAY.key}") >= times


async def test_a_product_that_is_not_a_gateway_is_refused_and_leaves_no_session(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    console = ConsoleClient(emulator.http_url, http)
    await console.add_product(GATEWAY.product_id, gateway=False)
    credentials = await console.add_device(GATEWAY.product_id, GATEWAY.device_name)
    engine = _engine(emulator.mqtt_port, credentials.device_secret, tmp_path)
    with pytest.raises(NotAGatewayError, match="not a gateway product"):
        await engine.start([])
    # old code: SubscriptionRefusedError, and the logged-in session stayed connected
    await eventually(lambda: _offline(emulator), within=5)
    assert not engine.connected
    await engine.stop()


async def _offline(emulator: Emulator) -> bool:
    return not emulator.cloud.is_online(GATEWAY.key)


async def test_a_gateway_refused_on_reconnect_keeps_trying(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The product was turned into a plain device product while connected: reconnects go on, with backoff."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        await cloud.console.add_product(GATEWAY.product_id, gateway=False)
        _cut(gateway.engine)
        await eventually(lambda: _refused_twice(cloud.console), within=10)
        assert not gateway.engine.connected
        await cloud.console.add_product(GATEWAY.product_id, gateway=True)
        await eventually(lambda: _connected(gateway.engine), within=10)


def _cut(engine: GatewayEngine) -> None:
    """Cut the gateway's connection under it, as a network failure would."""
    sock = engine._session._driver.watched_socket
    assert sock is not None
    sock.shutdown(socket.SHUT_RDWR)


async def _refused_twice(console: ConsoleClient) -> bool:
    refusals = [v for v in await console.violations() if "not a gateway product" in v.reason]
    return len(refusals) >= 2


async def _connected(engine: GatewayEngine) -> bool:
    return engine.connected


async def test_the_backoff_grows_while_no_connection_gets_announced(socket_enabled: None) -> None:
    """Every connect is accepted but drops while announcing: that is no success, the backoff keeps growing."""
    backoff = Backoff(initial_s=0.05, maximum_s=0.8)
    async with scripted_broker(ScriptedBroker([0], hang_up_on_every_publish=True)) as broker:

        async def announce() -> None:
            await session.publish(f"$gateway/operation/{GATEWAY.key}", "{}", 1)

        session = MqttSession(
            BrokerEndpoint("127.0.0.1", broker.port, tls=False),
            GATEWAY,
            "c2VjcmV0",
            on_message=lambda _t, _p: None,
            on_connected=announce,
            backoff=backoff,
        )
        started = asyncio.get_running_loop().time()
        await session.start()
        try:
            await eventually(lambda: _connects(broker, 6), within=10)
        finally:
            await session.stop()
        # five retries, each at least half its ceiling: 0.025 + 0.05 + 0.1 + 0.2 + 0.4 s
        # (old code: every accepted connect reset the backoff, six connects took about 0.2 s)
        assert asyncio.get_running_loop().time() - started >= 0.77


async def _connects(broker: ScriptedBroker, count: int) -> bool:
    await asyncio.sleep(0)
    return broker.connects >= count


async def test_a_connection_dropped_while_announcing_is_announced_again(
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
