"""The MQTT session's failure paths: brokers that stay silent, hang up or refuse, and a bad CA or topic."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import logging

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.errors import (
    AuthenticationError,
    CannotConnectError,
    NotConnectedError,
    OperationTimeoutError,
    SubscriptionRefusedError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.mqtt.session import Backoff, MqttSession
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually

from .engine_rig import GATEWAY, seed_cloud
from .scripted_broker import HANG_UP, SILENT, ScriptedBroker, scripted_broker

FAST = Backoff(initial_s=0.01, maximum_s=0.02)


async def _noop() -> None:
    return None


def _session(
    port: int,
    *,
    on_connected: Callable[[], Awaitable[None]] = _noop,
    on_auth_failed: Callable[[AuthenticationError], None] | None = None,
    on_connection_lost: Callable[[], None] | None = None,
    connect_timeout_s: float = 5.0,
    ack_timeout_s: float = 5.0,
) -> MqttSession:
    return MqttSession(
        BrokerEndpoint("127.0.0.1", port, tls=False),
        GATEWAY,
        "c2VjcmV0",
        on_message=lambda _t, _p: None,
        on_connected=on_connected,
        on_auth_failed=on_auth_failed,
        on_connection_lost=on_connection_lost,
        connect_timeout_s=connect_timeout_s,
        ack_timeout_s=ack_timeout_s,
        backoff=FAST,
    )


async def test_silent_broker_is_a_connect_timeout(socket_enabled: None) -> None:
    """TCP accepted but no CONNACK: a connection error naming the address, not a hang."""
    async with scripted_broker(ScriptedBroker([SILENT])) as broker:
        session = _session(broker.port, connect_timeout_s=0.2)
        with pytest.raises(
            CannotConnectError, match=rf"127\.0\.0\.1:{broker.port} did not answer the MQTT CONNECT"
        ):
            await session.start()
        assert not session.connected
        await session.stop()


async def test_broker_hanging_up_on_connect_is_a_connection_error(socket_enabled: None) -> None:
    """The broker closes the connection instead of answering CONNECT."""
    async with scripted_broker(ScriptedBroker([HANG_UP])) as broker:
        session = _session(broker.port)
        with pytest.raises(CannotConnectError, match=rf"127\.0\.0\.1:{broker.port} closed the connection"):
            await session.start()
        assert not session.connected


async def test_server_unavailable_is_not_an_authentication_error(socket_enabled: None) -> None:
    """CONNACK 3 (server unavailable) is a connection problem: retrying may help, new credentials would not."""
    async with scripted_broker(ScriptedBroker([3])) as broker:
        session = _session(broker.port)
        with pytest.raises(CannotConnectError, match="the broker refused the connection") as failure:
            await session.start()
        assert not isinstance(failure.value, AuthenticationError)


async def test_publish_without_puback_times_out(socket_enabled: None) -> None:
    """A QoS 1 publish the broker never acknowledges fails with an OperationTimeoutError naming the topic."""
    async with scripted_broker(ScriptedBroker([0], ack_publish=False)) as broker:
        session = _session(broker.port, ack_timeout_s=0.2)
        await session.start()
        try:
            with pytest.raises(OperationTimeoutError, match=r"no PUBACK for \$ota/report/LIGHTPID01/light1"):
                await session.publish("$ota/report/LIGHTPID01/light1", "{}")
            assert broker.published == ["$ota/report/LIGHTPID01/light1"]
            assert session.connected
        finally:
            await session.stop()


async def test_connection_lost_while_waiting_for_puback(socket_enabled: None) -> None:
    """The broker drops the connection with a publish in flight: the waiter learns at once, then it reconnects."""
    lost: list[bool] = []
    async with scripted_broker(ScriptedBroker([0], hang_up_at=1)) as broker:
        session = _session(broker.port, on_connection_lost=lambda: lost.append(True))
        await session.start()
        try:
            with pytest.raises(NotConnectedError, match="connection to the broker was lost"):
                await session.publish("$ota/report/LIGHTPID01/light1", "{}")

            async def reconnected() -> bool:
                return session.connected and broker.connects == 2

            await eventually(reconnected)
            assert lost == [True]
        finally:
            await session.stop()


async def test_publish_and_subscribe_need_a_connection(socket_enabled: None) -> None:
    """Before start (or after stop) nothing is sent: NotConnectedError, and `device` says who we are."""
    session = _session(1)
    assert session.device == GATEWAY
    with pytest.raises(NotConnectedError, match="not connected"):
        await session.publish("$ota/report/LIGHTPID01/light1", "{}")
    with pytest.raises(NotConnectedError, match="not connected"):
        await session.subscribe(["$ota/update/LIGHTPID01/light1"])


async def test_refused_credentials_on_reconnect_stop_the_retries(
    socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    """After a loss, a failed attempt is retried; refused credentials end the retries and are reported once."""
    refused: list[AuthenticationError] = []
    async with scripted_broker(ScriptedBroker([0, HANG_UP, 3, 5], hang_up_at=1)) as broker:
        session = _session(broker.port, on_auth_failed=refused.append)
        await session.start()
        try:
            with pytest.raises(NotConnectedError):
                await session.publish("$ota/report/LIGHTPID01/light1", "{}")
            with caplog.at_level(
                logging.DEBUG, logger="custom_components.tencent_iot_gateway.engine.mqtt.session"
            ):

                async def gave_up() -> bool:
                    return bool(refused)

                await eventually(gave_up)
                await asyncio.sleep(0.1)
            assert broker.connects == 4
            assert "check the device secret" in str(refused[0])
            assert len(refused) == 1
            assert not session.connected
            assert any("no further reconnect attempts" in r.getMessage() for r in caplog.records)
            assert any("Reconnect attempt 2 failed" in r.getMessage() for r in caplog.records)
        finally:
            await session.stop()


async def test_failed_announcement_drops_the_connection_and_announces_again(socket_enabled: None) -> None:
    """Connected but the announcement timed out: the session hangs up and the next connection announces again."""
    announcements: list[int] = []

    async def announce() -> None:
        announcements.append(len(announcements))
        if len(announcements) == 1:
            raise OperationTimeoutError("no SUBACK within 1 s")

    async with scripted_broker(ScriptedBroker([0])) as broker:
        session = _session(broker.port, on_connected=announce)
        await session.start()
        try:

            async def announced_again() -> bool:
                return len(announcements) == 2 and session.connected

            await eventually(announced_again)
            assert broker.connects == 2
        finally:
            await session.stop()


async def test_unreadable_ca_is_a_connection_error(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A CA that is not a certificate fails `start` with a clear message before any connection is tried."""
    cloud = await seed_cloud(emulator, http)
    session = MqttSession(
        BrokerEndpoint("127.0.0.1", emulator.mqtts_port, ca_pem="this is not a certificate"),
        GATEWAY,
        cloud.gateway_secret,
        on_message=lambda _t, _p: None,
        on_connected=_noop,
    )
    with pytest.raises(CannotConnectError, match="the CA certificate cannot be loaded"):
        await session.start()
    assert not (await cloud.console.get_device(GATEWAY.product_id, GATEWAY.device_name)).online


async def test_refused_subscription_names_the_topic(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """The emulator's ACL refuses another gateway's topic: the error names it."""
    cloud = await seed_cloud(emulator, http)
    session = MqttSession(
        BrokerEndpoint("127.0.0.1", emulator.mqtts_port, ca_pem=emulator.ca_file.read_text()),
        GATEWAY,
        cloud.gateway_secret,
        on_message=lambda _t, _p: None,
        on_connected=_noop,
    )
    await session.start()
    other = DeviceId("OTHERPID01", "stranger")
    try:
        with pytest.raises(SubscriptionRefusedError, match=r"\$ota/update/OTHERPID01/stranger"):
            await session.subscribe([f"$ota/update/{other.product_id}/{other.device_name}"])
    finally:
        await session.stop()
