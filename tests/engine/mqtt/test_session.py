"""The gateway's MQTT session against the emulator's broker (TLS, refused logins, reconnecting) and against a
scripted one (brokers that stay silent, hang up or refuse), and what the engine hears of it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
import gc
import logging
from pathlib import Path
import time
from typing import Any

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.errors import (
    AuthenticationError,
    CannotConnectError,
    ConnectCause,
    NotConnectedError,
    OperationTimeoutError,
    SubscriptionRefusedError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import (
    AuthenticationFailed,
    ConnectionChanged,
    SubDevice,
    SubDeviceStatus,
)
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.mqtt.session import Backoff, MqttSession
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually, on_the_same_ports
from tests.engine.engine_rig import GATEWAY, LIGHTS, SEED, running_gateway, scripted_engine, seed_cloud
from tests.engine.scripted_broker import HANG_UP, SILENT, ScriptedBroker, scripted_broker


async def _noop() -> None:
    return None


def _session(endpoint: BrokerEndpoint, secret: str) -> MqttSession:
    return MqttSession(endpoint, GATEWAY, secret, on_message=lambda _t, _p: None, on_connected=_noop)


def _tls_session(emulator: Emulator, secret: str) -> MqttSession:
    """The gateway's session to the emulator's TLS port, trusting the emulator's CA."""
    return _session(
        BrokerEndpoint("127.0.0.1", emulator.mqtts_port, ca_pem=emulator.ca_file.read_text()), secret
    )


async def test_tls_login_with_the_right_secret(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A signed login over TLS, verified against the given CA, is accepted."""
    cloud = await seed_cloud(emulator, http)
    session = _tls_session(emulator, cloud.gateway_secret)
    await session.start()
    try:
        assert session.connected

        async def online() -> bool:
            # The cloud hears of the login from the broker a moment later (its event), not with the CONNACK.
            return (await cloud.console.get_device(GATEWAY.product_id, GATEWAY.device_name)).online

        await eventually(online, within=10)
    finally:
        await session.stop()
    assert not session.connected


@pytest.mark.parametrize("skew_s", [-3600, -86400 * 365, 86400 * 365 * 5])
async def test_the_login_does_not_depend_on_the_host_clock(
    emulator: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, skew_s: int
) -> None:
    """A host whose clock is an hour (or a year) slow, or years fast, logs in with its right secret (old code:
    the signature expired "now + 3600 s" by the host's clock, was refused as bad credentials, and HA asked for
    a new secret)."""
    cloud = await seed_cloud(emulator, http)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + skew_s)
    session = _tls_session(emulator, cloud.gateway_secret)
    await session.start()
    try:
        assert session.connected
    finally:
        await session.stop()


async def test_wrong_secret_is_an_authentication_error(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A refused login is told apart from a network problem, so HA can ask for new credentials."""
    await seed_cloud(emulator, http)
    session = _tls_session(emulator, "d3Jvbmctc2VjcmV0LXdyb25n")
    with pytest.raises(AuthenticationError, match="check the device secret"):
        await session.start()
    assert not session.connected


async def test_untrusted_certificate_is_refused(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Tencent's root CA does not sign the emulator's certificate: the handshake must fail, never be skipped."""
    cloud = await seed_cloud(emulator, http)
    session = _session(BrokerEndpoint("127.0.0.1", emulator.mqtts_port), cloud.gateway_secret)
    with pytest.raises(CannotConnectError, match="certificate verify failed") as failure:
        await session.start()
    assert failure.value.cause is ConnectCause.TLS


async def test_unreachable_broker(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Nothing listening: a connection error naming the address."""
    cloud = await seed_cloud(emulator, http)
    session = _session(BrokerEndpoint("127.0.0.1", 1, tls=False), cloud.gateway_secret)
    with pytest.raises(CannotConnectError, match=r"127\.0\.0\.1:1") as failure:
        await session.start()
    assert failure.value.cause is ConnectCause.REFUSED


def _gateway_ops(messages: list[Any]) -> list[dict[str, Any]]:
    return [m.payload for m in messages if m.direction == "in" and m.topic.startswith("$gateway/operation/")]


async def test_reconnect_announces_everything_again(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """After the broker restarts, the gateway reconnects, re-sends `online` and re-reports every version."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path / "gw") as gateway:
        assert all(gateway.engine.is_online(d) for d in SEED)
        await emulator.__aexit__(None, None, None)

        async def lost() -> bool:
            return not gateway.engine.connected

        await eventually(lost, within=5)
        assert ConnectionChanged(connected=False) in gateway.events
        assert not any(gateway.engine.is_online(d) for d in SEED)

        async with on_the_same_ports(emulator) as again:
            cloud.emu = again

            async def back() -> bool:
                announced = gateway.events.count(ConnectionChanged(connected=True)) == 2
                return announced and all(gateway.engine.is_online(d) for d in SEED)

            await eventually(back, within=15)
            messages = await again.console.messages(GATEWAY.key)
            online = [
                d for op in _gateway_ops(messages) if op["type"] == "online" for d in op["payload"]["devices"]
            ]
            assert sorted((d["product_id"], d["device_name"]) for d in online) == sorted(
                (d.product_id, d.device_name) for d in SEED
            )
            for device in SEED:
                status = await again.console.get_device(device.product_id, device.device_name)
                assert status.online

                async def reported(device_key: str = device.key) -> bool:
                    reports = [
                        m.payload for m in await again.console.messages(device_key) if m.direction == "in"
                    ]
                    return {"type": "report_version", "report": {"version": "0.1"}} in reports

                await eventually(reported)
            statuses = [e for e in gateway.events if isinstance(e, SubDeviceStatus)]
            assert set([s for s in statuses if s.online][-len(SEED) :]) == {
                SubDeviceStatus(d, True, 0) for d in SEED
            }


@pytest.mark.parametrize("failure", ["refused", "unreachable"])
async def test_stop_after_a_failed_start_leaves_nothing_behind(
    emulator: Emulator, http: aiohttp.ClientSession, failure: str
) -> None:
    """A caller may always stop a session whose start failed; no stray future or error remains."""
    cloud = await seed_cloud(emulator, http)
    ca_pem = emulator.ca_file.read_text()
    if failure == "refused":
        session = _session(
            BrokerEndpoint("127.0.0.1", emulator.mqtts_port, ca_pem=ca_pem), "d3Jvbmctc2VjcmV0LXdyb25n"
        )
    else:
        session = _session(BrokerEndpoint("127.0.0.1", 1, tls=False), cloud.gateway_secret)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        with pytest.raises((AuthenticationError, CannotConnectError)):
            await session.start()
        await session.stop()
        await session.stop()
        await asyncio.sleep(0)
        gc.collect()  # an unretrieved future's exception is reported when it is collected
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    assert not session.connected
    assert reported == []


async def test_an_unreadable_ca_is_a_connection_error(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
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


async def test_a_refused_subscription_names_the_topic(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
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


# --- against a scripted broker, for what mosquitto cannot be made to do ------------------------------------

FAST = Backoff(initial_s=0.01, maximum_s=0.02)


def _scripted_session(
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


async def test_a_silent_broker_is_a_connect_timeout(socket_enabled: None) -> None:
    """TCP accepted but no CONNACK: a connection error naming the address, not a hang."""
    async with scripted_broker(ScriptedBroker([SILENT])) as broker:
        session = _scripted_session(broker.port, connect_timeout_s=0.2)
        with pytest.raises(
            CannotConnectError, match=rf"127\.0\.0\.1:{broker.port} did not answer the MQTT CONNECT"
        ) as failure:
            await session.start()
        assert failure.value.cause is ConnectCause.NO_ANSWER
        assert not session.connected
        await session.stop()


async def test_a_broker_hanging_up_on_connect_is_a_connection_error(socket_enabled: None) -> None:
    """The broker closes the connection instead of answering CONNECT."""
    async with scripted_broker(ScriptedBroker([HANG_UP])) as broker:
        session = _scripted_session(broker.port)
        with pytest.raises(
            CannotConnectError, match=rf"127\.0\.0\.1:{broker.port} closed the connection"
        ) as failure:
            await session.start()
        assert failure.value.cause is ConnectCause.CLOSED
        assert not session.connected


async def test_server_unavailable_is_not_an_authentication_error(socket_enabled: None) -> None:
    """CONNACK 3 (server unavailable) is a connection problem: retrying may help, new credentials would not."""
    async with scripted_broker(ScriptedBroker([3])) as broker:
        session = _scripted_session(broker.port)
        with pytest.raises(CannotConnectError, match=r"the broker at .* refused the connection") as failure:
            await session.start()
        assert not isinstance(failure.value, AuthenticationError)
        assert failure.value.cause is ConnectCause.BROKER_REFUSED
        assert failure.value.placeholders["host"] == "127.0.0.1"


async def test_a_publish_without_puback_times_out_naming_the_topic(socket_enabled: None) -> None:
    """A QoS 1 publish the broker never acknowledges fails with an OperationTimeoutError naming the topic."""
    async with scripted_broker(ScriptedBroker([0], ack_publish=False)) as broker:
        session = _scripted_session(broker.port, ack_timeout_s=0.2)
        await session.start()
        try:
            with pytest.raises(OperationTimeoutError, match=r"no PUBACK for \$ota/report/LIGHTPID01/light1"):
                await session.publish("$ota/report/LIGHTPID01/light1", "{}")
            assert broker.published == ["$ota/report/LIGHTPID01/light1"]
            assert session.connected
        finally:
            await session.stop()


async def test_a_connection_lost_while_waiting_for_puback_fails_the_publish_at_once(
    socket_enabled: None,
) -> None:
    """The broker drops the connection with a publish in flight: the waiter learns at once, then it reconnects."""
    lost: list[bool] = []
    async with scripted_broker(ScriptedBroker([0], hang_up_at=1)) as broker:
        session = _scripted_session(broker.port, on_connection_lost=lambda: lost.append(True))
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
    session = _scripted_session(1)
    assert session.device == GATEWAY
    with pytest.raises(NotConnectedError, match="not connected"):
        await session.publish("$ota/report/LIGHTPID01/light1", "{}")
    with pytest.raises(NotConnectedError, match="not connected"):
        await session.subscribe(["$ota/update/LIGHTPID01/light1"])


async def test_credentials_refused_on_reconnect_stop_the_retries(
    socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    """After a loss, a failed attempt is retried; refused credentials end the retries and are reported once."""
    refused: list[AuthenticationError] = []
    async with scripted_broker(ScriptedBroker([0, HANG_UP, 3, 5], hang_up_at=1)) as broker:
        session = _scripted_session(broker.port, on_auth_failed=refused.append)
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


async def test_a_failed_announcement_drops_the_connection_and_announces_again(socket_enabled: None) -> None:
    """Connected but the announcement timed out: the session hangs up and the next connection announces again."""
    announcements: list[int] = []

    async def announce() -> None:
        announcements.append(len(announcements))
        if len(announcements) == 1:
            raise OperationTimeoutError("no SUBACK within 1 s")

    async with scripted_broker(ScriptedBroker([0])) as broker:
        session = _scripted_session(broker.port, on_connected=announce)
        await session.start()
        try:

            async def announced_again() -> bool:
                return len(announcements) == 2 and session.connected

            await eventually(announced_again)
            assert broker.connects == 2
        finally:
            await session.stop()


async def test_credentials_refused_after_a_loss_become_an_event(socket_enabled: None, tmp_path: Path) -> None:
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
