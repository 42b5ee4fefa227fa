"""The broker's strict side of Tencent's documented limits (BrokerLimits), each refused and counted."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tencent_iot_emulator.broker import BrokerLimits
from tencent_iot_emulator.console_client import ConsoleClient
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import MqttTestClient, eventually, mqtt_client, register_device, sign_mqtt

PID, DN = "LIMITPID01", "dev1"
DATA = f"{PID}/{DN}/data"


async def _limits(emu: Emulator, http: aiohttp.ClientSession) -> list[str]:
    violations = await ConsoleClient(emu.http_url, http).violations()
    return [v.reason for v in violations if v.raw.get("kind") == "limit"]


async def _received(emu: Emulator, http: aiohttp.ClientSession) -> int:
    records = await ConsoleClient(emu.http_url, http).messages(f"{PID}/{DN}")
    return len([r for r in records if r.direction == "in"])


async def test_only_one_topic_per_subscribe(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    secret = await register_device(http, emulator, PID, DN)
    async with mqtt_client(emulator, PID, DN, secret) as client:
        codes = await client.subscribe_in_one_request(f"$ota/update/{PID}/{DN}", f"{PID}/{DN}/control")
        assert codes == [1, 0x80]
        assert await client.subscribe(f"{PID}/{DN}/control") == [1]  # alone, the same topic is granted
    assert await _limits(emulator, http) == ["topic 2 of one SUBSCRIBE request (at most 1 per request)"]


async def test_publishes_over_16_kb_are_dropped(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    secret = await register_device(http, emulator, PID, DN)
    async with mqtt_client(emulator, PID, DN, secret) as client:
        await client.publish(DATA, json.dumps({"x": "y" * (16 * 1024)}))
        await client.publish(DATA, {"x": 1})
        await eventually(lambda: _has(emulator, http, 1))
    assert await _received(emulator, http) == 1
    assert (await _limits(emulator, http))[0].startswith("publish of 16393 bytes")


async def _has(emu: Emulator, http: aiohttp.ClientSession, count: int) -> bool:
    return await _received(emu, http) >= count


async def test_keepalive_out_of_range_is_refused(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    secret = await register_device(http, emulator, PID, DN)
    for keepalive in (30, 900):
        client = MqttTestClient(sign_mqtt(PID, DN, secret))
        assert await client.connect(emulator.mqtt_port, keepalive=keepalive) == 5
        await client.disconnect()
    reasons = await _limits(emulator, http)
    assert reasons == ["keep-alive 30 s is outside 60-850 s", "keep-alive 900 s is outside 60-850 s"]


async def test_connects_too_close_together_are_refused(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    await emulator.set_limits(BrokerLimits(connect_interval_ms=5000))
    secret = await register_device(http, emulator, PID, DN)
    async with mqtt_client(emulator, PID, DN, secret):
        pass
    client = MqttTestClient(sign_mqtt(PID, DN, secret))
    assert await client.connect(emulator.mqtt_port) == 5
    await client.disconnect()
    reasons = await _limits(emulator, http)
    assert len(reasons) == 1
    assert reasons[0].endswith("(at most one per 5000 ms)")


async def test_the_uplink_rate_is_per_connection(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    await emulator.set_limits(BrokerLimits(uplink_rate=10))
    secret = await register_device(http, emulator, PID, DN)
    async with mqtt_client(emulator, PID, DN, secret) as client:
        await asyncio.gather(*(client.publish(DATA, {"n": n}) for n in range(15)))
        await eventually(lambda: _has(emulator, http, 10))
    assert await _received(emulator, http) == 10  # the other 5 were dropped (each still got its PUBACK)
    reasons = await _limits(emulator, http)
    assert reasons == ["publish number 11 within 1 s (at most 10 a second)"] * 5


async def test_at_most_n_subscriptions_per_connection(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    await emulator.set_limits(BrokerLimits(max_subscriptions=2))
    secret = await register_device(http, emulator, PID, DN)
    async with mqtt_client(emulator, PID, DN, secret) as client:
        codes = await client.subscribe(f"{PID}/{DN}/a", f"{PID}/{DN}/b", f"{PID}/{DN}/c")
    assert codes == [1, 1, 0x80]
    assert await _limits(emulator, http) == ["subscription 3 of this connection (at most 2)"]


async def test_a_plain_device_product_may_not_use_the_gateway_topics(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    console = ConsoleClient(emulator.http_url, http)
    await console.add_product(PID, gateway=False)
    secret = await register_device(http, emulator, PID, DN)
    async with mqtt_client(emulator, PID, DN, secret) as client:
        assert await client.subscribe(f"$gateway/operation/result/{PID}/{DN}") == [0x80]
        assert await client.subscribe(f"$ota/update/{PID}/{DN}") == [1]
    violations = await console.violations()
    assert any("not a gateway product" in v.reason for v in violations)


async def test_the_console_shows_and_changes_the_limits(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    url = emulator.http_url + "/api/limits"
    async with http.put(url, json={"strict": True, "uplink_rate": 20}) as response:
        assert response.status == 200
    async with http.get(url) as response:
        body = await response.json()
    assert body["limits"]["uplink_rate"] == 20
    assert body["limits"]["connect_interval_ms"] == 5000
    assert body["violations"] == {}
    async with http.put(url, json={"uplink_rate": -1}) as response:
        assert response.status == 400
