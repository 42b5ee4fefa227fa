"""The engine's data-template client (engine/data_template/) against the emulator, through the gateway engine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.data_template.client import (
    DataTemplateClient,
    DataTemplateHandlers,
    PropertyRefused,
)
from custom_components.tencent_iot_gateway.engine.data_template.protocol import (
    CODE_FAILED,
    Control,
    StatusType,
)
from custom_components.tencent_iot_gateway.engine.errors import InvalidFieldError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import GatewayEngine
from tencent_iot_emulator.console_client import ConsoleClient
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually, on_the_same_ports
from tests.engine.engine_rig import LIGHTS, Cloud, running_gateway, seed_cloud

LIGHT = LIGHTS[0]


@dataclass
class Heard:
    """What the client's handlers were told."""

    controls: list[Control] = field(default_factory=list)
    refused: list[PropertyRefused] = field(default_factory=list)

    def handlers(self) -> DataTemplateHandlers:
        return DataTemplateHandlers(
            on_control=lambda _device, control: self.controls.append(control), on_refused=self.refused.append
        )


async def light_cloud(emulator: Emulator, http: aiohttp.ClientSession) -> Cloud:
    """The seed's devices, the lights' product with the standard light template."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.set_template(LIGHT.product_id, "light")
    return cloud


async def uplinks(console: ConsoleClient, device: DeviceId, method: str) -> list[dict[str, Any]]:
    """The payloads `device` sent with this data-template method, oldest first."""
    return [
        m.payload
        for m in await console.messages(device.key)
        if m.direction == "in" and m.topic.startswith("$thing/up/") and m.payload.get("method") == method
    ]


async def reported(console: ConsoleClient, device: DeviceId, expected: dict[str, Any]) -> None:
    """Wait until the cloud holds `expected` as the device's reported state."""

    async def holds() -> bool:
        return (
            dict((await console.device_properties(device.product_id, device.device_name)).reported)
            == expected
        )

    await eventually(holds)


async def attached(engine: GatewayEngine, heard: Heard, device: DeviceId = LIGHT) -> DataTemplateClient:
    client = await engine.data_templates.attach(device, heard.handlers())
    assert engine.data_templates.get(device) is client
    return client


async def test_a_report_reaches_the_cloud(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Attached while online: subscribed, and what it reports is what the cloud stores; bad values are refused."""
    cloud = await light_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        client = await attached(gateway.engine, Heard())
        client.report({"power_switch": 1, "brightness": 40})
        await client.flush()
        await reported(cloud.console, LIGHT, {"power_switch": 1, "brightness": 40})
        status = await client.get_status(StatusType.REPORT)
        assert dict(status.reported) == {"power_switch": 1, "brightness": 40}
        with pytest.raises(InvalidFieldError, match="brightness"):
            client.report({"brightness": None})  # type: ignore[dict-item]
        with pytest.raises(InvalidFieldError, match="brightness"):
            client.report({"brightness": float("nan")})


async def test_a_refused_property_is_found_named_and_no_longer_sent(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Tencent refuses the whole report without naming the property: the client sends the properties one by
    one, names the refused one, keeps the others, and leaves the refused one out from then on."""
    cloud = await light_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        heard = Heard()
        client = await attached(gateway.engine, heard)
        client.report({"power_switch": 1, "fan_speed": 2, "brightness": 30})
        await eventually(lambda: asyncio.sleep(0, heard.refused))
        assert heard.refused == [PropertyRefused(LIGHT, "fan_speed", 406, "checkReportData fail")]
        assert client.refused == {"fan_speed"}
        await reported(cloud.console, LIGHT, {"power_switch": 1, "brightness": 30})

        client.report({"fan_speed": 3, "brightness": 31})
        await client.flush()
        await reported(cloud.console, LIGHT, {"power_switch": 1, "brightness": 31})
        reports = await uplinks(cloud.console, LIGHT, "report")
        assert reports[-1]["params"] == {"brightness": 31}
        assert [r["params"] for r in reports if "fan_speed" in r["params"]] == [
            {"power_switch": 1, "fan_speed": 2, "brightness": 30},
            {"fan_speed": 2},
        ]
        assert heard.refused == [PropertyRefused(LIGHT, "fan_speed", 406, "checkReportData fail")]


async def test_a_control_is_heard_and_answered(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The console's control reaches the handler; control_reply with its token (and an error code for a
    refused one) is what the cloud records."""
    cloud = await light_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        heard = Heard()
        client = await attached(gateway.engine, heard)
        sent = await cloud.console.send_control(LIGHT.product_id, LIGHT.device_name, {"power_switch": 1})
        await eventually(lambda: asyncio.sleep(0, heard.controls))
        assert heard.controls == [Control(sent.client_token, {"power_switch": 1})]
        await client.control_reply(sent.client_token)
        refused = await cloud.console.send_control(LIGHT.product_id, LIGHT.device_name, {"brightness": 5})
        await eventually(lambda: asyncio.sleep(0, len(heard.controls) == 2))
        await client.control_reply(refused.client_token, CODE_FAILED, "read-only in Home Assistant")

        async def answered() -> bool:
            shown = await cloud.console.device_properties(LIGHT.product_id, LIGHT.device_name)
            first, second = shown.control(sent.client_token), shown.control(refused.client_token)
            return (
                first is not None
                and first.reply_code == 0
                and second is not None
                and second.reply_code == CODE_FAILED
                and second.reply_status == "read-only in Home Assistant"
            )

        await eventually(answered)
        assert not [v for v in await cloud.console.violations() if v.client == LIGHT.key]


async def test_a_pending_control_is_returned_by_get_status_then_cleared(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A control nobody answered (the light not bridged yet) comes back in get_status type control;
    clear_control ends it in the cloud."""
    cloud = await light_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        await cloud.console.send_control(LIGHT.product_id, LIGHT.device_name, {"power_switch": 1})
        heard = Heard()
        client = await attached(gateway.engine, heard)
        status = await client.get_status(StatusType.CONTROL)
        assert dict(status.control) == {"power_switch": 1}
        assert status.type is StatusType.CONTROL
        assert (await client.clear_control()).ok
        assert dict((await client.get_status(StatusType.CONTROL)).control) == {}
        shown = await cloud.console.device_properties(LIGHT.product_id, LIGHT.device_name)
        assert shown.pending_control == {}
        assert heard.controls == []
        info = await client.report_info({"module_softinfo": "tencent_iot_gateway", "fw_ver": "0.1"})
        assert info.ok


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not JSON"),
        (b'{"method":"control","params":{"power_switch":1}}', "clientToken"),
        (b'{"method":"control","clientToken":"t1","params":{}}', "params must be a non-empty object"),
        (b'{"method":"control","clientToken":"t1","params":{"power_switch":null}}', "'power_switch'"),
        (b'{"method":"explode","clientToken":"t1"}', "not a data-template method"),
        (b'{"method":"report_reply","clientToken":"t1","code":"0"}', "code must be an integer"),
    ],
)
async def test_a_malformed_downlink_is_refused_clearly_and_nothing_is_sent(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, payload: bytes, reason: str
) -> None:
    """Nothing reaches the handler, nothing goes up; the reason is kept for the log and the diagnostics."""
    cloud = await light_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        heard = Heard()
        client = await attached(gateway.engine, heard)
        before = len(await cloud.console.messages(LIGHT.key))
        await emulator.cloud.publish_raw(client.down_topic, payload)
        await eventually(lambda: asyncio.sleep(0, client.malformed == 1))
        assert client.last_malformed is not None
        assert reason in client.last_malformed
        await asyncio.sleep(0.3)
        after = await cloud.console.messages(LIGHT.key)
        assert [m.direction for m in after[before:]] == ["out"]  # only the cloud's own message
        assert heard.controls == []


async def test_reports_are_coalesced_per_device_within_the_budget(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Sixty changes on three lights, at 5 messages a second: a device's report waiting for the budget takes
    every later change (latest value wins), so each light sends at most two reports and the cloud ends with
    the last values."""
    cloud = await light_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path, uplink_rate=5) as gateway:
        clients = [await attached(gateway.engine, Heard(), light) for light in LIGHTS]
        for step in range(20):
            for client in clients:
                client.report({"brightness": step, "power_switch": step % 2})
                await asyncio.sleep(0)
        for client in clients:
            await client.flush()
        for light in LIGHTS:
            await reported(cloud.console, light, {"brightness": 19, "power_switch": 1})
            assert 1 <= len(await uplinks(cloud.console, light, "report")) <= 2
        assert not [v for v in await cloud.console.violations() if v.raw["kind"] in ("limit", "template")]


async def test_after_a_reconnect_the_client_is_subscribed_again_and_sends_what_waited(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Values recorded while the connection is down go up once the device is online again, and the cloud's
    controls reach the client again (the engine subscribes its down topic on every announce)."""
    cloud = await light_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path / "gw") as gateway:
        heard = Heard()
        client = await attached(gateway.engine, heard)
        await emulator.__aexit__(None, None, None)

        async def lost() -> bool:
            return not gateway.engine.connected

        await eventually(lost, within=5)
        client.report({"power_switch": 1, "brightness": 77})
        await client.flush()
        assert dict(client.unsent) == {"power_switch": 1, "brightness": 77}

        async with on_the_same_ports(emulator) as again:
            console = ConsoleClient(again.http_url, http)
            await reported(console, LIGHT, {"power_switch": 1, "brightness": 77})
            sent = await console.send_control(LIGHT.product_id, LIGHT.device_name, {"power_switch": 0})
            await eventually(lambda: asyncio.sleep(0, heard.controls))
            assert heard.controls == [Control(sent.client_token, {"power_switch": 0})]
