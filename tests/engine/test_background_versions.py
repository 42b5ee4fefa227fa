"""The announce's version reports run in the background: `start` (and so Home Assistant's setup) waits for
`online` and the subscriptions only, and a lost connection leaves nothing half-reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import ConnectionChanged, SubDevice
from tencent_iot_emulator.console_client import ConsoleClient
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually, on_the_same_ports

from .engine_rig import GATEWAY, Cloud, running_gateway, seed_cloud

N = 30
# Slow enough that reporting N versions takes seconds (N / RATE), while `online` is one message.
RATE = 5.0
MANY = [DeviceId("MANYPID001", f"many{i:02d}") for i in range(N)]


async def _register(cloud: Cloud) -> list[SubDevice]:
    await cloud.console.add_devices([(d.product_id, d.device_name) for d in MANY])
    await cloud.console.bind_many(GATEWAY.key, [d.key for d in MANY])
    return [SubDevice(d, "0.1") for d in MANY]


async def _version_reports(console: ConsoleClient, device: DeviceId) -> int:
    return sum(
        1
        for m in await console.messages(device.key)
        if m.direction == "in" and isinstance(m.payload, dict) and m.payload.get("type") == "report_version"
    )


async def test_start_returns_once_online_and_the_versions_follow(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With a budget of 5 msg/s, 30 version reports take about 6 s: `start` returns before they are all sent
    (old code: it awaited every one), every sub-device already online; then each version is reported once."""
    cloud = await seed_cloud(emulator, http)
    subs = await _register(cloud)
    async with running_gateway(cloud, tmp_path, sub_devices=subs, start=False, uplink_rate=RATE) as gateway:
        await gateway.engine.start(subs)
        assert all(gateway.engine.is_online(d) for d in MANY)
        assert ConnectionChanged(connected=True) in gateway.events
        devices = await cloud.console.list_devices(MANY[0].product_id)
        assert sum(1 for d in devices if d.version == "0.1") < N

        await gateway.engine.wait_versions_reported()
        devices = await cloud.console.list_devices(MANY[0].product_id)
        assert {d.key: d.version for d in devices} == {d.key: "0.1" for d in MANY}
        assert [await _version_reports(cloud.console, d) for d in MANY] == [1] * N


async def test_a_connection_lost_while_reporting_reports_every_version_once_after_the_reconnect(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The broker restarts while the versions are being reported: the reports of the lost connection stop
    (none is sent on the new one from before), and the new announce reports every version exactly once."""
    cloud = await seed_cloud(emulator, http)
    subs = await _register(cloud)
    async with running_gateway(cloud, tmp_path, sub_devices=subs, start=False, uplink_rate=RATE) as gateway:
        await gateway.engine.start(subs)
        await emulator.__aexit__(None, None, None)

        async def lost() -> bool:
            return not gateway.engine.connected

        await eventually(lost, within=5)
        async with on_the_same_ports(emulator) as again:
            cloud.emu = again

            async def back() -> bool:
                return gateway.events.count(ConnectionChanged(connected=True)) == 2

            await eventually(back, within=15)
            await gateway.engine.wait_versions_reported()
            assert [await _version_reports(again.console, d) for d in MANY] == [1] * N


async def test_a_sub_device_added_meanwhile_goes_online_ahead_of_the_versions(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Its `online` does not wait behind the 30 version reports of the announce (old code: they were sent
    first, as terminal reports, and it waited about 6 s at 5 msg/s)."""
    cloud = await seed_cloud(emulator, http)
    subs = await _register(cloud)
    late = DeviceId("MANYPID001", "late")
    await cloud.console.add_device(late.product_id, late.device_name)
    await cloud.console.bind(GATEWAY.key, late.key)
    async with running_gateway(cloud, tmp_path, sub_devices=subs, start=False, uplink_rate=RATE) as gateway:
        await gateway.engine.start(subs)
        adding = asyncio.ensure_future(gateway.engine.add_sub_device(SubDevice(late, "0.1")))

        async def late_online() -> bool:
            return gateway.engine.is_online(late)

        await eventually(late_online, within=10)
        devices = await cloud.console.list_devices(late.product_id)
        assert sum(1 for d in devices if d.device_name != "late" and d.version == "0.1") < N // 2
        await adding
        await gateway.engine.wait_versions_reported()
        status = await cloud.console.get_device(late.product_id, late.device_name)
        assert status.version == "0.1"
