"""The OTA job rules of issue 4 §3, each against the emulator (real broker, real HTTPS, virtual devices), and
its edges: installs that cannot start, a push during a flash or of the running version, removal mid-job."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.errors import (
    FailureReason,
    FlashError,
    InvalidFirmwareError,
    OtaError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import SubDevice
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState, OtaSettings
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually
from tests.engine.engine_rig import (
    LIGHTS,
    Cloud,
    Gateway,
    running_gateway,
    seed_cloud,
    stop_a_third_into_a_download,
)

IMAGE = bytes(range(256)) * 512  # 131,072 bytes
PID = LIGHTS[0].product_id
LIGHT = LIGHTS[0]
OTA_LOGGER = "custom_components.tencent_iot_gateway.engine.ota.jobs"


async def _fail_reports(cloud: Cloud, device_key: str) -> list[dict[str, Any]]:
    pid, dn = device_key.split("/")
    messages = await cloud.console.messages(device_key)
    return [
        m.payload["report"]
        for m in messages
        if m.direction == "in"
        and m.topic == f"$ota/report/{pid}/{dn}"
        and m.payload.get("type") == "report_progress"
        and m.payload["report"]["progress"]["state"] == "fail"
    ]


async def _push(cloud: Cloud, version: str = "V2", devices: list[str] | None = None) -> str:
    await cloud.console.upload_firmware(PID, version, IMAGE)
    names = devices or [LIGHTS[0].device_name]
    return await cloud.console.create_task(PID, version, "list", devices=names)


async def _reach(gateway: Gateway, state: JobState, version: str | None = None) -> None:
    async def reached() -> bool:
        snapshot = gateway.engine.ota.snapshot(LIGHT)
        target = snapshot.target.version if snapshot.target is not None else None
        return snapshot.state is state and version in (None, target)

    await eventually(reached, within=10)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"url": "ftp://host/fw.bin"}, "not an http or https URL"),
        ({"md5sum": "nothex"}, "md5sum"),
        ({"file_size": "12"}, "file_size"),
        ({"file_size": 10**12}, "exceeds the configured maximum"),
    ],
)
async def test_invalid_push_is_reported_and_changes_nothing(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, change: dict[str, Any], reason: str
) -> None:
    """An invalid `update_firmware` is answered `fail` with a real message; the device's state stays as it was."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path, settings=OtaSettings(max_firmware_size=1 << 20)) as gateway:
        light = LIGHTS[0]
        before = gateway.engine.ota.snapshot(light)
        push = {
            "file_size": 10,
            "md5sum": "0" * 32,
            "type": "update_firmware",
            "url": "https://127.0.0.1/fw.bin?sign=secret",
            "version": "V9",
        } | change
        await emulator.cloud.publish_raw(
            f"$ota/update/{light.product_id}/{light.device_name}", json.dumps(push).encode()
        )

        async def reported() -> list[dict[str, Any]]:
            return await _fail_reports(cloud, light.key)

        fails = await eventually(reported)
        progress = fails[0]["progress"]
        assert progress["result_code"] == "-5"
        assert reason in progress["result_msg"]
        assert "secret" not in progress["result_msg"]
        assert gateway.engine.ota.snapshot(light) == before


@pytest.mark.parametrize("version", [None, "", "v" * 33, 3])
async def test_a_push_without_a_valid_version_is_not_reported(
    emulator: Emulator,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    version: object,
) -> None:
    """A report names its task by the version: one against the installed version could overwrite the cloud's
    record of the running firmware (old code sent `fail` for "0.1"). Nothing is reported; it is logged and
    counted, and a valid push afterwards is still installed."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        light = LIGHTS[0]
        before = gateway.engine.ota.snapshot(light)
        push = {
            "file_size": 10,
            "md5sum": "0" * 32,
            "type": "update_firmware",
            "url": "https://127.0.0.1/fw.bin?sign=secret",
            "version": version,
        }
        await emulator.cloud.publish_raw(
            f"$ota/update/{light.product_id}/{light.device_name}", json.dumps(push).encode()
        )

        async def counted() -> bool:
            return gateway.engine.ota.pushes_without_version == 1

        await eventually(counted, within=5)
        await _push(cloud)  # a valid push after it: the cloud's log now holds everything sent before

        async def done() -> bool:
            return gateway.engine.ota.snapshot(light).installed_version == "V2"

        await eventually(done, within=15)
        assert await _fail_reports(cloud, light.key) == []
        assert before.installed_version == "0.1"
    assert "without a valid version" in caplog.text
    assert "secret" not in caplog.text


async def test_garbage_on_the_update_topic_changes_nothing(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Non-JSON and unknown types are logged once and ignored."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        light = LIGHTS[0]
        before = gateway.engine.ota.snapshot(light)
        topic = f"$ota/update/{light.product_id}/{light.device_name}"
        await emulator.cloud.publish_raw(topic, b"{not json")
        await emulator.cloud.publish_raw(topic, b'{"type":"mystery"}')

        async def logged() -> bool:
            return "unknown message type 'mystery'" in caplog.text

        await eventually(logged)
        assert "the message is not JSON" in caplog.text
        assert gateway.engine.ota.snapshot(light) == before
        assert await _fail_reports(cloud, light.key) == []


@pytest.mark.parametrize(
    ("faults", "code", "words"),
    [
        ({"status": 404}, -2, "404"),
        ({"flip_byte_at": 100}, -4, "MD5"),
    ],
)
async def test_download_failures_are_reported_with_their_code(
    emulator: Emulator,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    faults: dict[str, Any],
    code: int,
    words: str,
) -> None:
    """404 and a corrupted image fail the job with Tencent's code, in the state, the error and the cloud's task."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.set_faults(faults)
    async with running_gateway(cloud, tmp_path, auto_install=False) as gateway:
        light = LIGHTS[0]
        task_id = await _push(cloud)

        async def available() -> bool:
            return gateway.engine.ota.snapshot(light).state is JobState.AVAILABLE

        await eventually(available)
        with pytest.raises(OtaError) as failure:
            await gateway.engine.ota.install(light)
        assert failure.value.code == code
        assert words.lower() in str(failure.value).lower()
        snapshot = gateway.engine.ota.snapshot(light)
        assert snapshot.state is JobState.FAILED
        assert snapshot.result_code == code

        async def cloud_failed() -> bool:
            task = await cloud.console.get_task(task_id)
            return task.devices[light.key].state == "fail"

        await eventually(cloud_failed)
        assert (await cloud.console.get_task(task_id)).devices[light.key].result_code == code


async def test_flash_failure_is_minus_five(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A sub-device that rejects the image fails the job with -5 and the device's reason."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.set_virtual_device_fault(LIGHTS[0].product_id, LIGHTS[0].device_name, "reject")
    async with running_gateway(cloud, tmp_path) as gateway:
        task_id = await _push(cloud)

        async def failed() -> bool:
            task = await cloud.console.get_task(task_id)
            return task.devices[LIGHTS[0].key].state == "fail"

        await eventually(failed, within=10)
        assert (await cloud.console.get_task(task_id)).devices[LIGHTS[0].key].result_code == -5
        assert gateway.engine.ota.snapshot(LIGHTS[0]).state is JobState.FAILED
        assert gateway.engine.ota.snapshot(LIGHTS[0]).installed_version == "0.1"


async def test_expired_url_is_recovered_by_re_reporting(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A 403 makes the gateway re-report its version; the cloud's fresh URL completes the update."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.set_faults({"url_ttl_s": 0})  # the first URL is born expired
    async with running_gateway(cloud, tmp_path, auto_install=False) as gateway:
        light = LIGHTS[0]
        task_id = await _push(cloud)

        async def available() -> bool:
            return gateway.engine.ota.snapshot(light).state is JobState.AVAILABLE

        await eventually(available)
        await cloud.console.reset_faults()
        snapshot = await gateway.engine.ota.install(light)
        assert snapshot.state is JobState.DONE
        assert snapshot.installed_version == "V2"
        stats = await cloud.console.stats()
        assert stats.forbidden >= 1
        task = await cloud.console.get_task(task_id)
        assert task.devices[light.key].state == "done"


async def test_queued_jobs_wait_for_a_download_slot_and_a_new_version_replaces_a_queued_job(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """With one download slot and a slow image, the second job waits visibly queued; a newer push replaces it."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.upload_firmware(PID, "V3", IMAGE[::-1])
    await cloud.console.set_faults({"firmware": {f"{PID}/V2": {"throttle_bps": 65536}}})
    async with running_gateway(
        cloud, tmp_path, auto_install=False, settings=OtaSettings(max_downloads=1)
    ) as gateway:
        ota = gateway.engine.ota
        await _push(cloud, "V2", [LIGHTS[0].device_name])

        async def available() -> bool:
            return ota.snapshot(LIGHTS[0]).state is JobState.AVAILABLE

        await eventually(available)
        first = asyncio.ensure_future(ota.install(LIGHTS[0]))

        async def downloading() -> bool:
            return ota.snapshot(LIGHTS[0]).state is JobState.DOWNLOADING

        await eventually(downloading)
        await cloud.console.create_task(PID, "V3", "list", devices=[LIGHTS[1].device_name])

        async def second_available() -> bool:
            return ota.snapshot(LIGHTS[1]).state is JobState.AVAILABLE

        await eventually(second_available)
        second = asyncio.ensure_future(ota.install(LIGHTS[1]))
        await asyncio.sleep(0.3)
        assert ota.snapshot(LIGHTS[1]).state is JobState.QUEUED
        assert ota.snapshot(LIGHTS[1]).percent is None

        # A push of another version replaces the queued (not yet flashing) job of the first light.
        await cloud.console.create_task(PID, "V3", "list", devices=[LIGHTS[0].device_name])
        with pytest.raises(asyncio.CancelledError):
            await first
        target = ota.snapshot(LIGHTS[0]).target
        assert target is not None
        assert target.version == "V3"
        assert (await second).installed_version == "V3"


async def test_install_resumes_after_a_restart_of_the_engine(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Stopped mid-download, a new engine on the same state finishes the job without fetching the image twice."""
    cloud = await seed_cloud(emulator, http)
    big = bytes(range(256)) * 4096  # 1 MiB
    state = tmp_path / "state"
    light = LIGHTS[0]
    await stop_a_third_into_a_download(cloud, state, big, light)
    await cloud.console.reset_faults()
    async with running_gateway(cloud, state, sub_devices=[SubDevice(light, "0.1")]) as gateway:

        async def done() -> bool:
            return gateway.engine.ota.snapshot(light).state is JobState.DONE

        await eventually(done, within=15)
        assert gateway.engine.ota.snapshot(light).installed_version == "V2"
    counters = (await cloud.console.stats()).firmware[f"{PID}/V2"]
    assert counters.bytes <= len(big) + 256 * 1024  # at most one chunk fetched twice


async def test_a_repeated_push_for_the_running_job_is_ignored(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The same `update_firmware` again mid-download neither restarts nor duplicates the job."""
    cloud = await seed_cloud(emulator, http)
    big = bytes(range(256)) * 2048  # 512 KiB
    await cloud.console.upload_firmware(PID, "V2", big)
    await cloud.console.set_faults({"throttle_bps": 131072})
    light = LIGHTS[0]
    async with running_gateway(cloud, tmp_path) as gateway:
        await cloud.console.create_task(PID, "V2", "list", devices=[light.device_name])

        async def downloading() -> bool:
            return gateway.engine.ota.snapshot(light).state is JobState.DOWNLOADING

        await eventually(downloading, within=10)
        pushes = [
            m.payload
            for m in await cloud.console.messages(light.key)
            if m.direction == "out"
            and isinstance(m.payload, dict)
            and m.payload.get("type") == "update_firmware"
        ]
        topic = f"$ota/update/{light.product_id}/{light.device_name}"
        await emulator.cloud.publish_raw(topic, json.dumps(pushes[-1]).encode())
        await asyncio.sleep(0.3)
        assert gateway.engine.ota.snapshot(light).state not in {JobState.AVAILABLE, JobState.QUEUED}

        async def done() -> bool:
            return gateway.engine.ota.snapshot(light).state is JobState.DONE

        await eventually(done, within=15)
        assert (
            JobState.QUEUED not in gateway.states(light)[gateway.states(light).index(JobState.DOWNLOADING) :]
        )
    counters = (await cloud.console.stats()).firmware[f"{PID}/V2"]
    assert counters.requests == 1
    assert counters.bytes == len(big)


async def test_an_install_that_cannot_start_is_refused_and_changes_nothing(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Nothing pending, an unknown device, or no flasher: a clear error each time, and the state is unchanged."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path, flasher_for=lambda _d: None, auto_install=False) as gateway:
        ota = gateway.engine.ota
        with pytest.raises(InvalidFirmwareError, match="no firmware update is pending") as failure:
            await ota.install(LIGHT)
        assert failure.value.failure.reason is FailureReason.NO_UPDATE_PENDING
        with pytest.raises(InvalidFirmwareError, match="not a sub-device of this gateway") as failure:
            await ota.install(DeviceId(LIGHT.product_id, "ghost"))
        assert failure.value.failure.reason is FailureReason.NOT_A_SUB_DEVICE

        await _push(cloud, "V2")
        await _reach(gateway, JobState.AVAILABLE, "V2")
        with pytest.raises(FlashError, match="the sub-device has no flasher") as no_flasher:
            await ota.install(LIGHT)
        assert no_flasher.value.failure.reason is FailureReason.NO_FLASHER
        assert ota.snapshot(LIGHT).state is JobState.AVAILABLE
        assert ota.snapshot(LIGHT).installed_version == "0.1"


async def test_a_push_during_a_flash_waits_and_removal_ends_the_job(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A new version pushed while flashing does not interrupt the flash; removing the device ends the job."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.set_virtual_device_fault(LIGHT.product_id, LIGHT.device_name, "hang")
    async with running_gateway(cloud, tmp_path) as gateway:
        await _push(cloud, "V2")
        await _reach(gateway, JobState.FLASHING, "V2")

        with caplog.at_level(logging.WARNING, logger=OTA_LOGGER):
            await _push(cloud, "V3")

            async def warned() -> bool:
                return "is flashing V2; the push of V3 waits for the next report" in caplog.text

            await eventually(warned)
        snapshot = gateway.engine.ota.snapshot(LIGHT)
        assert snapshot.state is JobState.FLASHING
        assert snapshot.target is not None
        assert snapshot.target.version == "V2"

        await gateway.engine.remove_sub_device(LIGHT)
        assert LIGHT not in [sub.device for sub in gateway.engine.sub_devices]
        with pytest.raises(InvalidFirmwareError, match="not a sub-device"):
            gateway.engine.ota.snapshot(LIGHT)
        device = await cloud.console.get_virtual_device(LIGHT.product_id, LIGHT.device_name)
        assert device.version == "0.1"


async def test_a_push_of_the_running_version_changes_nothing(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The cloud offers the version the device already runs: nothing is downloaded or installed."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        with caplog.at_level(logging.INFO, logger=OTA_LOGGER):
            await _push(cloud, "0.1")

            async def noticed() -> bool:
                return "LIGHTPID01/light1 already runs 0.1; nothing to install" in caplog.text

            await eventually(noticed)
        assert gateway.engine.ota.snapshot(LIGHT).state is JobState.IDLE
        assert gateway.states(LIGHT) == [JobState.IDLE]
        stats = await cloud.console.stats()
        assert all(counters.requests == 0 for counters in stats.firmware.values())
