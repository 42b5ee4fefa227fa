"""`LinkCutter`: the link drops at the chosen publish (which never reaches the broker), then relays normally."""

from __future__ import annotations

import aiohttp

from tencent_iot_emulator.console_client import ConsoleClient
from tencent_iot_emulator.emulator import Emulator
from tencent_iot_emulator.link_faults import LinkCutter
from tests.emulator_fixtures import MqttTestClient, eventually, sign_mqtt

PID, DN = "LINKPROD01", "device1"
TOPIC = f"$ota/report/{PID}/{DN}"


async def _reported(console: ConsoleClient) -> list[str]:
    return [
        m.payload["report"]["version"]
        for m in await console.messages(f"{PID}/{DN}")
        if m.direction == "in" and m.topic == TOPIC
    ]


async def test_the_link_drops_at_the_matching_publish_only(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The first `done` report is dropped with the connection; a reconnect through the relay works, and the
    same report then arrives."""
    console = ConsoleClient(emulator.http_url, http)
    secret = (await console.add_device(PID, DN)).device_secret
    done = {"type": "report_version", "report": {"version": "cut-me"}}
    async with LinkCutter(emulator.mqtt_port, b"cut-me") as cutter:
        client = MqttTestClient(sign_mqtt(PID, DN, secret))
        assert await client.connect(cutter.port) == 0
        await client.publish(TOPIC, {"type": "report_version", "report": {"version": "1.0"}})
        # Not awaited: its PUBACK never comes, the connection drops instead.
        client._client.publish(TOPIC, '{"type":"report_version","report":{"version":"cut-me"}}', qos=1)
        client._client.loop_write()

        async def dropped() -> bool:
            return not client.connected

        await eventually(dropped)
        await client.disconnect()
        assert cutter.cuts == 1
        assert await _reported(console) == ["1.0"]

        again = MqttTestClient(sign_mqtt(PID, DN, secret))
        assert await again.connect(cutter.port) == 0
        await again.publish(TOPIC, done)
        await again.disconnect()
    assert await _reported(console) == ["1.0", "cut-me"]
