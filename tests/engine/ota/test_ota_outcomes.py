"""Issue 9 §4/§6: a flash's outcome is saved before it is reported, survives a lost link, and never flashes twice.

The link is cut by `LinkCutter` (a relay in front of mosquitto's plain port) exactly when the report in question
is on the wire, so the gateway cannot know whether the cloud heard it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.errors import FailureReason, OtaError
from custom_components.tencent_iot_gateway.engine.gateway_engine import SubDevice
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState, OtaManager, OtaSettings
from tencent_iot_emulator.emulator import Emulator
from tencent_iot_emulator.link_faults import LinkCutter
from tests.emulator_fixtures import eventually
from tests.engine.engine_rig import LIGHTS, Cloud, running_gateway, seed_cloud

IMAGE = bytes(range(256)) * 512  # 131,072 bytes
PID = LIGHTS[0].product_id
LIGHT = LIGHTS[0]


async def _push(cloud: Cloud, version: str = "V2", image: bytes = IMAGE) -> str:
    await cloud.console.upload_firmware(PID, version, image)
    return await cloud.console.create_task(PID, version, "list", devices=[LIGHT.device_name])


async def _reports(cloud: Cloud) -> list[dict[str, Any]]:
    """What the cloud received from the light, and the pushes it sent, in order."""
    return [
        {"direction": m.direction, **m.payload}
        for m in await cloud.console.messages(LIGHT.key)
        if isinstance(m.payload, dict) and m.topic.startswith("$ota/")
    ]


def _versions_reported_after_push(messages: list[dict[str, Any]]) -> list[str]:
    first_push = next(i for i, m in enumerate(messages) if m.get("type") == "update_firmware")
    return [
        m["report"]["version"]
        for m in messages[first_push:]
        if m["direction"] == "in" and m.get("type") == "report_version"
    ]


def _cached_images(state_dir: Path) -> list[Path]:
    return [p for p in (state_dir / "cache").glob("*") if p.is_file()]


async def _stop_during_a_hung_flash(cloud: Cloud, state_dir: Path, subs: list[SubDevice]) -> str:
    """Push, let the light's flash hang, and stop the gateway without waiting for it; the cloud's task id."""
    await cloud.console.set_virtual_device_fault(LIGHT.product_id, LIGHT.device_name, "hang")
    async with running_gateway(cloud, state_dir, sub_devices=subs) as gateway:
        task_id = await _push(cloud)

        async def flashing() -> bool:
            return gateway.engine.ota.snapshot(LIGHT).state is JobState.FLASHING

        await eventually(flashing, within=10)
        await gateway.engine.ota.async_stop()  # no time for the hung flash
    return task_id


class _HeldFailReports:
    """Wraps the manager's publish: a `fail` report stays on the wire (no PUBACK yet) until `release`."""

    def __init__(self, ota: OtaManager) -> None:
        self._publish = ota._reports._publish
        self.on_the_wire = asyncio.Event()
        self._released = asyncio.Event()
        ota._reports._publish = self

    async def __call__(self, topic: str, payload: str, qos: int = 1, **kwargs: Any) -> None:
        if '"state": "fail"' in payload:
            self.on_the_wire.set()
            await self._released.wait()
        await self._publish(topic, payload, qos, **kwargs)

    def release(self) -> None:
        self._released.set()


async def _push_again(emulator: Emulator, cloud: Cloud, **fields: object) -> str:
    """The cloud's last push to the light once more, with `fields` added and a marked URL (which the firmware
    server ignores) that shows it arrived; returns that URL."""
    push = next(m for m in await _reports(cloud) if m.get("type") == "update_firmware")
    push.pop("direction")
    url = f"{push['url']}&again=1"
    topic = f"$ota/update/{LIGHT.product_id}/{LIGHT.device_name}"
    await emulator.cloud.publish_raw(topic, json.dumps(push | fields | {"url": url}).encode())
    return url


@pytest.mark.parametrize("cut_on", [b'"state": "done"', b'"state": "burning"'])
async def test_a_lost_report_is_sent_after_the_reconnect_and_nothing_flashes_twice(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, cut_on: bytes
) -> None:
    """The link drops while `done` (or `burning`) is on the wire: after the reconnect the cloud hears `done`
    then the new version, never the old one; the image is flashed once and not left in the cache."""
    cloud = await seed_cloud(emulator, http)
    async with LinkCutter(emulator.mqtt_port, cut_on) as cutter:
        endpoint = BrokerEndpoint("127.0.0.1", cutter.port, tls=False)
        async with running_gateway(cloud, tmp_path, endpoint=endpoint) as gateway:
            task_id = await _push(cloud)

            async def cloud_done() -> bool:
                task = await cloud.console.get_task(task_id)
                return (
                    task.devices[LIGHT.key].state == "done" and emulator.cloud.version_of(LIGHT.key) == "V2"
                )

            await eventually(cloud_done, within=20)
            assert cutter.cuts == 1
            snapshot = gateway.engine.ota.snapshot(LIGHT)
            assert snapshot.state is JobState.DONE
            assert snapshot.installed_version == "V2"
            assert gateway.states(LIGHT).count(JobState.FLASHING) == 1
            assert "0.1" not in _versions_reported_after_push(await _reports(cloud))
            assert _cached_images(tmp_path) == []


async def test_the_outcome_is_on_disk_before_the_cloud_hears_it(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """When `done` is published, the saved state already says the new version and no install pending."""
    cloud = await seed_cloud(emulator, http)
    seen_on_disk: list[dict[str, Any]] = []
    async with running_gateway(cloud, tmp_path) as gateway:
        ota = gateway.engine.ota
        # A spy on the real publish, to read the disk at the moment `done` goes out.
        publish = ota._reports._publish

        async def spying_publish(topic: str, payload: str, qos: int = 1, **kwargs: Any) -> None:
            if '"state": "done"' in payload:
                saved = json.loads((tmp_path / "ota.json").read_text())
                seen_on_disk.append(saved["devices"][LIGHT.key])
            await publish(topic, payload, qos, **kwargs)

        ota._reports._publish = spying_publish
        await _push(cloud)

        async def done() -> bool:
            return ota.snapshot(LIGHT).state is JobState.DONE

        await eventually(done, within=15)

        async def reported() -> bool:
            return bool(seen_on_disk)

        await eventually(reported)
    assert seen_on_disk[0]["installed"] == "V2"
    assert seen_on_disk[0]["install_requested"] is False


async def test_a_flash_interrupted_by_a_stop_is_reported_failed_and_not_repeated(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A stop that cannot wait for a hung flash: the next start reports -5 "interrupted by shutdown" and does
    not flash again; a flash that ends within the stop's wait completes normally."""
    cloud = await seed_cloud(emulator, http)
    subs = [SubDevice(LIGHT, "0.1")]
    task_id = await _stop_during_a_hung_flash(cloud, tmp_path, subs)
    await cloud.console.set_virtual_device_fault(LIGHT.product_id, LIGHT.device_name, "none")
    async with running_gateway(cloud, tmp_path, sub_devices=subs) as gateway:

        async def cloud_failed() -> bool:
            return (await cloud.console.get_task(task_id)).devices[LIGHT.key].state == "fail"

        await eventually(cloud_failed, within=10)
        device = (await cloud.console.get_task(task_id)).devices[LIGHT.key]
        assert device.result_code == -5
        snapshot = gateway.engine.ota.snapshot(LIGHT)
        assert snapshot.state is JobState.FAILED
        assert snapshot.message == "the flash was interrupted by a shutdown"
        assert device.result_msg == snapshot.message
        assert snapshot.failure is not None
        assert snapshot.failure.reason is FailureReason.FLASH_INTERRUPTED
        assert JobState.FLASHING not in gateway.states(LIGHT)


async def test_a_stop_waits_for_a_flash_under_way(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Stopping while a flash runs lets it finish (bounded) and report `done` before the session closes."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        task_id = await _push(cloud)

        async def flashing() -> bool:
            return gateway.engine.ota.snapshot(LIGHT).state is JobState.FLASHING

        await eventually(flashing, within=10)
        await gateway.engine.ota.async_stop(flash_wait_s=10)
        assert gateway.engine.ota.snapshot(LIGHT).state is JobState.DONE
    assert (await cloud.console.get_task(task_id)).devices[LIGHT.key].state == "done"


async def test_a_replaced_job_is_reported_failed(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A newer push replaces a running download: the cloud's task for the old version ends as `fail`."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.set_faults({"firmware": {f"{PID}/V2": {"throttle_bps": 65536}}})
    async with running_gateway(cloud, tmp_path) as gateway:
        old_task = await _push(cloud, "V2")

        async def downloading() -> bool:
            return gateway.engine.ota.snapshot(LIGHT).state is JobState.DOWNLOADING

        await eventually(downloading, within=10)
        await _push(cloud, "V3", IMAGE[::-1])

        async def old_failed() -> bool:
            return (await cloud.console.get_task(old_task)).devices[LIGHT.key].state == "fail"

        await eventually(old_failed, within=10)
        device = (await cloud.console.get_task(old_task)).devices[LIGHT.key]
        assert device.result_code == -5

        async def done() -> bool:
            return gateway.engine.ota.snapshot(LIGHT).installed_version == "V3"

        await eventually(done, within=15)


async def test_cancel_then_install_again_does_not_report_a_second_cancel(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Install while a cancel is still under way: the new job joins neither the cancelled job nor its download
    being cancelled; it completes, and the cloud hears one cancel, the user's."""
    cloud = await seed_cloud(emulator, http)
    big = bytes(range(256)) * 2048  # 512 KiB
    await cloud.console.upload_firmware(PID, "V2", big)
    await cloud.console.set_faults({"throttle_bps": 262144})
    async with running_gateway(cloud, tmp_path, auto_install=False) as gateway:
        ota = gateway.engine.ota
        await cloud.console.create_task(PID, "V2", "list", devices=[LIGHT.device_name])

        async def available() -> bool:
            return ota.snapshot(LIGHT).state is JobState.AVAILABLE

        await eventually(available)
        first = asyncio.ensure_future(ota.install(LIGHT))

        async def downloading() -> bool:
            return ota.snapshot(LIGHT).state is JobState.DOWNLOADING

        await eventually(downloading, within=10)
        await cloud.console.reset_faults()
        cancelling = asyncio.ensure_future(ota.cancel(LIGHT))
        await asyncio.sleep(0)  # the cancel has begun and is still under way
        snapshot = await ota.install(LIGHT)
        assert snapshot.installed_version == "V2"
        await cancelling
        with pytest.raises(asyncio.CancelledError):
            await first
    cancels = [
        m
        for m in await _reports(cloud)
        if m["direction"] == "in" and m.get("type") == "report_progress"
        if m["report"]["progress"]["state"] == "fail"
    ]
    assert [m["report"]["progress"]["result_msg"] for m in cancels] == ["cancelled by the user"]


async def test_an_unknown_version_is_never_reported(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A sub-device whose version nobody gave sends no `report_version`, can still install a push, and
    reports the flashed version afterwards."""
    cloud = await seed_cloud(emulator, http)
    subs = [SubDevice(LIGHT, None), SubDevice(LIGHTS[1], "0.1")]
    async with running_gateway(cloud, tmp_path, sub_devices=subs) as gateway:
        ota = gateway.engine.ota

        async def other_reported() -> bool:
            return emulator.cloud.version_of(LIGHTS[1].key) == "0.1"

        await eventually(other_reported)
        assert ota.snapshot(LIGHT).installed_version is None
        assert ota.snapshot(LIGHT).latest_version is None
        assert not [m for m in await _reports(cloud) if m.get("type") == "report_version"]
        await _push(cloud)

        async def done() -> bool:
            return ota.snapshot(LIGHT).state is JobState.DONE

        await eventually(done, within=15)
        assert ota.snapshot(LIGHT).installed_version == "V2"

        async def reported() -> bool:
            return emulator.cloud.version_of(LIGHT.key) == "V2"

        await eventually(reported)
    async with running_gateway(cloud, tmp_path, sub_devices=subs, settings=OtaSettings()) as gateway:
        assert gateway.engine.ota.snapshot(LIGHT).installed_version == "V2"


async def test_an_interrupted_flash_that_did_finish_is_reported_done(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The device finished the interrupted flash while the gateway was down: the next start asks it (the
    http flasher's version URL) and reports `done` and the new version instead of a failure."""
    cloud = await seed_cloud(emulator, http)
    subs = [SubDevice(LIGHT, "0.1")]
    task_id = await _stop_during_a_hung_flash(cloud, tmp_path, subs)
    await cloud.console.put_virtual_device(LIGHT.product_id, LIGHT.device_name, "V2")
    async with running_gateway(cloud, tmp_path, sub_devices=subs) as gateway:

        async def cloud_done() -> bool:
            task = await cloud.console.get_task(task_id)
            return task.devices[LIGHT.key].state == "done" and emulator.cloud.version_of(LIGHT.key) == "V2"

        await eventually(cloud_done, within=10)
        snapshot = gateway.engine.ota.snapshot(LIGHT)
        assert (snapshot.state, snapshot.installed_version) == (JobState.DONE, "V2")
        assert JobState.FLASHING not in gateway.states(LIGHT)


async def test_install_right_after_a_failure_starts_a_new_job(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The job shows failed while its task is still sending the `fail` report: an install in that moment starts
    a new job (which flashes) instead of joining the dead one and failing at once with its error."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.set_faults({"flip_byte_at": 100})  # the first download fails its MD5 check
    async with running_gateway(cloud, tmp_path, auto_install=False) as gateway:
        ota = gateway.engine.ota
        held = _HeldFailReports(ota)
        await _push(cloud)

        async def available() -> bool:
            return ota.snapshot(LIGHT).state is JobState.AVAILABLE

        await eventually(available)
        first = asyncio.ensure_future(ota.install(LIGHT))
        await asyncio.wait_for(held.on_the_wire.wait(), timeout=10)
        assert ota.snapshot(LIGHT).state is JobState.FAILED
        await cloud.console.reset_faults()
        second = asyncio.ensure_future(ota.install(LIGHT))
        await asyncio.sleep(0)  # the second install has looked at the job while the report is held
        held.release()
        with pytest.raises(OtaError):
            await first
        snapshot = await asyncio.wait_for(second, timeout=15)
        assert snapshot.installed_version == "V2"
        assert gateway.states(LIGHT).count(JobState.FLASHING) == 1


async def test_a_resent_outcome_repeats_the_pushs_echoed_fields(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """IoT Explorer's push names `task_id` and `fw_type`: the `done` lost with the link and sent again after the
    reconnect repeats them like every other report of the job."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.upload_firmware(PID, "V2", IMAGE)
    echo = {"fw_type": "mcu", "task_id": 1000696}
    async with LinkCutter(emulator.mqtt_port, b'"state": "done"') as cutter:
        endpoint = BrokerEndpoint("127.0.0.1", cutter.port, tls=False)
        async with running_gateway(cloud, tmp_path, endpoint=endpoint, auto_install=False) as gateway:
            ota = gateway.engine.ota
            await cloud.console.create_task(PID, "V2", "list", devices=[LIGHT.device_name])

            async def offered() -> bool:
                return ota.snapshot(LIGHT).state is JobState.AVAILABLE

            await eventually(offered)
            url = await _push_again(emulator, cloud, **echo)

            async def echoed() -> bool:
                target = ota.snapshot(LIGHT).target
                return target is not None and target.url == url and target.report_fields == echo

            await eventually(echoed)
            await ota.install(LIGHT)

            async def done_heard() -> bool:
                return any(
                    m["direction"] == "in"
                    and m.get("type") == "report_progress"
                    and m["report"]["progress"]["state"] == "done"
                    for m in await _reports(cloud)
                )

            await eventually(done_heard, within=15)
            assert cutter.cuts == 1
    reports = [
        m["report"]
        for m in await _reports(cloud)
        if m["direction"] == "in" and m.get("type") == "report_progress"
    ]
    assert reports[-1]["progress"]["state"] == "done"
    for report in reports:
        assert {name: report.get(name) for name in echo} == echo


async def test_a_push_right_after_a_failure_starts_a_job_that_reports(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A push arriving while the failed job still sends its `fail` starts a new (automatic) job: the end of the
    old job does not silence the new one, whose reports all follow the old `fail`."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.set_faults({"flip_byte_at": 100})
    async with running_gateway(cloud, tmp_path) as gateway:
        ota = gateway.engine.ota
        held = _HeldFailReports(ota)
        await _push(cloud)
        await asyncio.wait_for(held.on_the_wire.wait(), timeout=10)
        first_job = ota._states.entry(LIGHT).job
        await cloud.console.set_faults({"throttle_bps": 1048576})  # the new download takes a moment
        await _push_again(emulator, cloud)

        async def new_job() -> bool:
            return ota._states.entry(LIGHT).job not in {None, first_job}

        await eventually(new_job)
        held.release()

        async def progress_states() -> list[str]:
            return [
                m["report"]["progress"]["state"]
                for m in await _reports(cloud)
                if m["direction"] == "in" and m.get("type") == "report_progress"
            ]

        async def done_heard() -> bool:
            return (await progress_states())[-1:] == ["done"]

        await eventually(done_heard, within=15)
        states = await progress_states()
    second = states[states.index("fail") + 1 :]
    assert second[0] == "downloading"
    assert second[-2:] == ["burning", "done"]


async def test_an_install_whose_done_is_lost_returns_the_flashed_version(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The link drops while `done` is on the wire: the awaited install returns the new version (the report
    follows after the reconnect) instead of raising the session's error."""
    cloud = await seed_cloud(emulator, http)
    async with LinkCutter(emulator.mqtt_port, b'"state": "done"') as cutter:
        endpoint = BrokerEndpoint("127.0.0.1", cutter.port, tls=False)
        async with running_gateway(cloud, tmp_path, endpoint=endpoint, auto_install=False) as gateway:
            ota = gateway.engine.ota
            task_id = await _push(cloud)

            async def offered() -> bool:
                return ota.snapshot(LIGHT).state is JobState.AVAILABLE

            await eventually(offered)
            snapshot = await ota.install(LIGHT)
            assert (snapshot.state, snapshot.installed_version) == (JobState.DONE, "V2")
            assert cutter.cuts == 1

            async def cloud_done() -> bool:
                return (await cloud.console.get_task(task_id)).devices[LIGHT.key].state == "done"

            await eventually(cloud_done, within=15)
