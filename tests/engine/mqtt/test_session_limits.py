"""The session keeps Tencent's documented limits (spec §3a), checked against the emulator's strict broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
import socket
import time
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest

from custom_components.tencent_iot_gateway.engine.errors import (
    InvalidFieldError,
    OperationTimeoutError,
    PayloadTooLargeError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import GatewayEngine, SubDevice
from custom_components.tencent_iot_gateway.engine.mqtt import paho_driver, session as session_module
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.mqtt.session import Backoff, MqttSession
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import UplinkPriority
from tencent_iot_emulator.broker import BrokerLimits
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually
from tests.engine.engine_rig import GATEWAY, SEED, Cloud, running_gateway, seed_cloud
from tests.engine.scripted_broker import ScriptedBroker, scripted_broker

# A custom-data topic of the gateway: the broker counts it like any uplink, the cloud only logs it.
OWN_TOPIC = f"{GATEWAY.product_id}/{GATEWAY.device_name}/data"
PROGRESS = json.dumps({"percent": 1})


async def _noop() -> None:
    return None


def _session(cloud: Cloud, **kwargs: object) -> MqttSession:
    emu = cloud.emu
    return MqttSession(
        BrokerEndpoint("127.0.0.1", emu.mqtt_port, tls=False),
        GATEWAY,
        cloud.gateway_secret,
        on_message=lambda _t, _p: None,
        on_connected=_noop,
        backoff=Backoff(initial_s=0.01, maximum_s=0.05),
        **kwargs,  # type: ignore[arg-type]
    )


async def _limit_violations(cloud: Cloud) -> list[str]:
    return [v.reason for v in await cloud.console.violations() if v.raw.get("kind") == "limit"]


async def _received_from_gateway(cloud: Cloud) -> int:
    return len([m for m in await cloud.console.messages(GATEWAY.key) if m.direction == "in"])


# -- acknowledgements ------------------------------------------------------------------------------------------


async def test_qos0_publishes_leave_no_ack_entries(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    cloud = await seed_cloud(emulator, http)
    session = _session(cloud, uplink_rate=None)
    await session.start()
    try:
        for _ in range(20):
            await session.publish(OWN_TOPIC, PROGRESS, 0)
        await session.publish(OWN_TOPIC, PROGRESS, 1)
        assert (
            session._acks == {}
        )  # old code: one resolved future per QoS 0 publish, until the next disconnect
    finally:
        await session.stop()


async def test_a_reused_packet_id_is_not_acknowledged_by_a_stale_entry(socket_enabled: None) -> None:
    """After the 16-bit packet id wraps, a QoS 1 publish waits for its own PUBACK."""
    async with scripted_broker(ScriptedBroker([0], ack_publish=False)) as broker:
        session = MqttSession(
            BrokerEndpoint("127.0.0.1", broker.port, tls=False),
            GATEWAY,
            "c2VjcmV0",
            on_message=lambda _t, _p: None,
            on_connected=_noop,
            ack_timeout_s=0.3,
            uplink_rate=None,
        )
        await session.start()
        try:
            client = session._client
            assert client is not None
            client._last_mid = 65534  # the next publish takes 65535, the one after wraps to 1
            await session.publish(OWN_TOPIC, PROGRESS, 0)  # mid 65535, QoS 0: "acknowledged" when written
            client._last_mid = 65534  # ... and the wrapped counter hands out 65535 again
            with pytest.raises(OperationTimeoutError, match="PUBACK"):
                await session.publish(OWN_TOPIC, "done", 1)  # old code: answered at once by the stale entry
        finally:
            await session.stop()


# -- local limits ----------------------------------------------------------------------------------------------


async def test_keepalive_must_be_within_tencents_range() -> None:
    for keepalive in (30, 900):
        with pytest.raises(InvalidFieldError, match="from 60 to 850"):
            MqttSession(
                BrokerEndpoint("127.0.0.1", 1, tls=False),
                GATEWAY,
                "c2VjcmV0",
                on_message=lambda _t, _p: None,
                on_connected=_noop,
                keepalive_s=keepalive,
            )


async def test_a_publish_over_16_kb_is_refused_locally(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    cloud = await seed_cloud(emulator, http)
    session = _session(cloud)
    await session.start()
    try:
        with pytest.raises(PayloadTooLargeError, match="16384 bytes"):
            await session.publish(OWN_TOPIC, "x" * (16 * 1024 + 1), 1)
        await session.publish(OWN_TOPIC, PROGRESS, 1)
        assert await _received_from_gateway(cloud) == 1
    finally:
        await session.stop()


# -- connects --------------------------------------------------------------------------------------------------


async def test_connects_of_one_device_are_spaced_across_sessions(
    emulator: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config flow's test login, then the entry's first connect, then a reconnect after a cut."""
    monkeypatch.setattr(session_module, "CONNECT_INTERVAL_S", 0.5)
    await emulator.set_limits(BrokerLimits(connect_interval_ms=450))
    cloud = await seed_cloud(emulator, http)
    probe = _session(cloud)
    await probe.start()
    await probe.stop()
    started = time.monotonic()
    entry = _session(cloud)
    await entry.start()
    try:
        assert time.monotonic() - started >= 0.4  # waited for its turn (old code: 0.04 s apart)
        sock = entry._driver.watched_socket
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)  # a cut: the supervisor reconnects after its (short) backoff
        await eventually(lambda: _connected_again(entry, cloud), within=10)
        assert await _limit_violations(cloud) == []
    finally:
        await entry.stop()


async def _connected_again(entry: MqttSession, cloud: Cloud) -> bool:
    return entry.connected and cloud.emu.cloud.is_online(GATEWAY.key)


async def test_the_strict_broker_refuses_connects_that_come_too_soon(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The check above can fail: without the interval, the emulator refuses and counts the second connect."""
    await emulator.set_limits(BrokerLimits(connect_interval_ms=2000))
    cloud = await seed_cloud(emulator, http)
    probe = _session(cloud)
    await probe.start()
    await probe.stop()
    with pytest.raises(Exception, match="refused"):
        await _session(cloud).start()

    async def counted() -> bool:
        # The broker refuses at once; the emulator's cloud records the violation a moment later.
        return any("ms after the previous one" in reason for reason in await _limit_violations(cloud))

    await eventually(counted, within=5)


# -- subscriptions ---------------------------------------------------------------------------------------------


async def test_the_gateway_subscribes_one_topic_per_request(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        await eventually(lambda: _all_online(gateway.engine))
    assert await _limit_violations(cloud) == []  # old code: one SUBSCRIBE with 4 topics, 3 of them refused


async def test_subscribes_of_concurrent_callers_never_share_a_request(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Two callers subscribing at once still send one SUBSCRIBE after the other's SUBACK: back-to-back packets
    are what the strict broker counts as one request with two topics (and refuses the second)."""
    cloud = await seed_cloud(emulator, http)
    session = _session(cloud)
    await session.start()
    own = [
        f"$gateway/operation/result/{GATEWAY.product_id}/{GATEWAY.device_name}",
        f"$ota/update/{GATEWAY.product_id}/{GATEWAY.device_name}",
    ]
    try:
        for _ in range(20):
            await asyncio.gather(*(session.subscribe([topic]) for topic in own))
    finally:
        await session.stop()
    assert await _limit_violations(cloud) == []


async def _all_online(engine: GatewayEngine) -> bool:
    return all(engine.is_online(d) for d in SEED)


# -- the uplink budget against the strict broker ---------------------------------------------------------------


async def test_a_burst_of_a_thousand_publishes_stays_within_the_brokers_limit(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    await emulator.set_limits(BrokerLimits(uplink_rate=400))
    cloud = await seed_cloud(emulator, http)
    session = _session(cloud, uplink_rate=400)
    await session.start()
    try:
        await asyncio.gather(
            *(
                session.publish(OWN_TOPIC, PROGRESS, i % 2, priority=UplinkPriority.PROGRESS)
                for i in range(1000)
            )
        )
        await eventually(lambda: _received(cloud, 1000), within=20)
    finally:
        await session.stop()
    assert await _limit_violations(cloud) == []


async def test_thirty_a_second(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    await emulator.set_limits(BrokerLimits(uplink_rate=30))
    cloud = await seed_cloud(emulator, http)
    session = _session(cloud)  # the default budget: 30 a second
    await session.start()
    try:
        started = time.monotonic()
        await asyncio.gather(*(session.publish(OWN_TOPIC, PROGRESS, 0) for _ in range(45)))
        assert time.monotonic() - started >= 1.0  # 45 messages cannot leave within one window of 30
        await eventually(lambda: _received(cloud, 45), within=10)
    finally:
        await session.stop()
    assert await _limit_violations(cloud) == []


async def test_without_a_budget_the_strict_broker_drops_and_counts(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The tests above can fail: an unlimited burst breaks the broker's limit, which drops and counts."""
    await emulator.set_limits(BrokerLimits(uplink_rate=30))
    cloud = await seed_cloud(emulator, http)
    session = _session(cloud, uplink_rate=None)
    await session.start()
    try:
        await asyncio.gather(*(session.publish(OWN_TOPIC, PROGRESS, 1) for _ in range(60)))
    finally:
        await session.stop()

    async def counted() -> bool:
        # The emulator's cloud records each dropped publish a moment after the broker dropped it.
        return len(await _limit_violations(cloud)) >= 30

    await eventually(counted, within=5)
    assert await _received_from_gateway(cloud) <= 30


async def _received(cloud: Cloud, count: int) -> bool:
    return await _received_from_gateway(cloud) >= count


async def test_a_hundred_sub_devices_come_online_within_the_brokers_limit(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The announce of many sub-devices (online batches, one SUBSCRIBE each, version reports) under a strict
    per-connection limit: everything arrives, nothing is refused."""
    await emulator.set_limits(BrokerLimits(uplink_rate=60, max_subscriptions=0))
    cloud = await seed_cloud(emulator, http)
    many = [DeviceId("MANYPID001", f"dev{i}") for i in range(100)]
    for device in many:
        await cloud.console.add_device(device.product_id, device.device_name)
        await cloud.console.bind(GATEWAY.key, device.key)
    async with running_gateway(
        cloud, tmp_path, sub_devices=[SubDevice(d, "1.0") for d in many], uplink_rate=60
    ) as gateway:
        await eventually(lambda: _all(gateway.engine, many), within=30)
        await eventually(lambda: _versions_reported(cloud, many), within=30)
    assert await _limit_violations(cloud) == []


async def _all(engine: GatewayEngine, devices: list[DeviceId]) -> bool:
    return all(engine.is_online(d) for d in devices)


async def _versions_reported(cloud: Cloud, devices: list[DeviceId]) -> bool:
    return all(cloud.emu.cloud.version_of(d.key) == "1.0" for d in devices)


def _hold_the_loop(seconds: float) -> None:
    """Keep the event loop from running (as a long callback would) for `seconds`."""
    time.sleep(seconds)


async def test_one_wake_up_of_the_socket_handles_a_bounded_number_of_packets(
    emulator: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """paho's `loop_read` reads as many packets as it has messages in flight in one go: 400 PUBACKs arriving
    together were handled in one step of the event loop. The session reads a bounded number per step."""

    class Unbounded(mqtt.Client):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Many messages in flight, as when 1,000 queued reports wait (or pushes arrive meanwhile).
            self._max_inflight_messages = 0

    monkeypatch.setattr(mqtt, "Client", Unbounded)
    cloud = await seed_cloud(emulator, http)
    session = _session(cloud, uplink_rate=None)
    await session.start()
    tick = 0
    per_tick: dict[int, int] = {}

    async def ticker() -> None:
        nonlocal tick
        while True:
            tick += 1
            await asyncio.sleep(0)

    client = session._client
    assert client is not None
    handle_publish = client.on_publish
    assert handle_publish is not None

    def counting(*args: Any) -> None:
        per_tick[tick] = per_tick.get(tick, 0) + 1
        handle_publish(*args)

    client.on_publish = counting
    ticking = asyncio.create_task(ticker())
    try:
        sends = [asyncio.create_task(session.publish(OWN_TOPIC, PROGRESS, 1)) for _ in range(400)]
        for _ in range(3):
            await asyncio.sleep(0)  # every publish handed to paho, and written by its writer callback
        _hold_the_loop(0.3)  # busy elsewhere meanwhile: the broker's 400 PUBACKs arrive as one burst
        await asyncio.gather(*sends)
    finally:
        ticking.cancel()
        await session.stop()
    assert sum(per_tick.values()) == 400
    assert max(per_tick.values()) <= paho_driver.READ_PACKETS_PER_CALLBACK
