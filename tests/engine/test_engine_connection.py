"""The gateway's MQTT session against the emulator's broker: TLS, refused logins, and reconnecting."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
import time
from typing import Any

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.errors import AuthenticationError, CannotConnectError
from custom_components.tencent_iot_gateway.engine.gateway_engine import ConnectionChanged, SubDeviceStatus
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.mqtt.session import MqttSession
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually, on_the_same_ports

from .engine_rig import GATEWAY, SEED, running_gateway, seed_cloud


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
    with pytest.raises(CannotConnectError, match="certificate verify failed"):
        await session.start()


async def test_unreachable_broker(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Nothing listening: a connection error naming the address."""
    cloud = await seed_cloud(emulator, http)
    session = _session(BrokerEndpoint("127.0.0.1", 1, tls=False), cloud.gateway_secret)
    with pytest.raises(CannotConnectError, match=r"127\.0\.0\.1:1"):
        await session.start()


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
