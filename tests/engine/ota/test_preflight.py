"""Pre-flight gates against the emulator: a false condition holds the job, visibly and with the cloud's task
kept alive, and releases it when true; one that stays false ends the job with a clear failure."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from custom_components.tencent_iot_gateway.engine.errors import FailureReason
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import SubDevice
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState, OtaSettings
from custom_components.tencent_iot_gateway.engine.ota.preflight import GatePoint, Preflight
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually
from tests.engine.engine_rig import LIGHTS, Cloud, Gateway, running_gateway, seed_cloud

PID = LIGHTS[0].product_id
LIGHT = LIGHTS[0]
TASK_TIMEOUT_S = 1.2
FAST = OtaSettings(report_interval_s=0.1, keepalive_interval_s=0.3)
IMAGE = bytes(range(256)) * 16


class Conditions:
    """What the layer above would render: a reason per gate point while the device is not ready."""

    def __init__(self) -> None:
        """Everything ready."""
        self.reasons: dict[GatePoint, str] = {}
        self.asked: list[GatePoint] = []

    async def check(self, device: DeviceId, point: GatePoint) -> str | None:
        """The `GateCheck` of the light."""
        assert device == LIGHT
        self.asked.append(point)
        return self.reasons.get(point)


async def _task_state(cloud: Cloud, task_id: str) -> str:
    return (await cloud.console.get_task(task_id)).devices[LIGHT.key].state


async def _keepalives(cloud: Cloud) -> int:
    messages = await cloud.console.messages(LIGHT.key)
    return sum(
        1
        for m in messages
        if m.direction == "in" and isinstance(m.payload, dict) and m.payload.get("type") == "report_progress"
    )


async def _held(gateway: Gateway, reason: str) -> None:
    async def probe() -> bool:
        snapshot = gateway.engine.ota.snapshot(LIGHT)
        return snapshot.state is JobState.QUEUED and snapshot.hold_reason == reason

    await eventually(probe)


async def _task_reaches(cloud: Cloud, task_id: str, state: str) -> None:
    async def probe() -> bool:
        return await _task_state(cloud, task_id) == state

    await eventually(probe)


async def test_a_false_condition_holds_the_job_with_its_reason_and_releases_it_when_true(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Held before the download ("asleep") and again before the flash ("in use"): queued with the reason,
    nothing fetched or flashed meanwhile, the task kept alive beyond its timeout; released, it ends done."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.upload_firmware(PID, "V2", IMAGE)
    conditions = Conditions()
    conditions.reasons[GatePoint.BEFORE_DOWNLOAD] = "asleep"
    conditions.reasons[GatePoint.BEFORE_FLASH] = "in use"
    preflight = Preflight(conditions.check, timeout_s=30.0, poll_interval_s=0.05)
    async with running_gateway(
        cloud,
        tmp_path,
        settings=FAST,
        sub_devices=[SubDevice(LIGHT, "0.1")],
        preflight_for=lambda device: preflight if device == LIGHT else None,
    ) as gateway:
        task_id = await cloud.console.create_task(
            PID, "V2", "list", devices=[LIGHT.device_name], timeout_s=TASK_TIMEOUT_S
        )
        await _held(gateway, "asleep")

        # Held longer than the task's timeout: keep-alives (0.3 s apart) carry it.
        async def kept_alive() -> bool:
            return await _keepalives(cloud) >= 6

        await eventually(kept_alive)
        assert await _task_state(cloud, task_id) != "timeout"
        assert all(s.downloaded == 0 for s in gateway.snapshots(LIGHT))
        assert JobState.DOWNLOADING not in gateway.states(LIGHT)

        del conditions.reasons[GatePoint.BEFORE_DOWNLOAD]
        await _held(gateway, "in use")
        assert JobState.DOWNLOADING in gateway.states(LIGHT) or JobState.VERIFYING in gateway.states(LIGHT)
        assert JobState.FLASHING not in gateway.states(LIGHT)
        virtual = await cloud.console.get_virtual_device(LIGHT.product_id, LIGHT.device_name)
        assert virtual.version == "0.1"

        del conditions.reasons[GatePoint.BEFORE_FLASH]
        await _task_reaches(cloud, task_id, "done")
    assert gateway.engine.ota.snapshot(LIGHT).installed_version == "V2"
    assert gateway.engine.ota.snapshot(LIGHT).hold_reason == ""
    states = gateway.states(LIGHT)
    held_before_flash = len(states) - 1 - states[::-1].index(JobState.QUEUED)
    assert states.index(JobState.VERIFYING) < held_before_flash < states.index(JobState.FLASHING)
    assert not await cloud.console.violations()


async def test_a_condition_that_stays_false_fails_the_job_clearly(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """After the gate's timeout the job fails (-5) with the reason, the device keeps its version."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.upload_firmware(PID, "V2", IMAGE)
    conditions = Conditions()
    conditions.reasons[GatePoint.BEFORE_DOWNLOAD] = "battery at 12 %"
    preflight = Preflight(conditions.check, timeout_s=0.3, poll_interval_s=0.05)
    async with running_gateway(
        cloud,
        tmp_path,
        settings=FAST,
        sub_devices=[SubDevice(LIGHT, "0.1")],
        preflight_for=lambda _device: preflight,
    ) as gateway:
        task_id = await cloud.console.create_task(PID, "V2", "list", devices=[LIGHT.device_name])
        await _task_reaches(cloud, task_id, "fail")
        task = (await cloud.console.get_task(task_id)).devices[LIGHT.key]
        snapshot = gateway.engine.ota.snapshot(LIGHT)
    assert task.result_code == -5
    assert task.result_msg == "the pre-flight condition was still not met after 0.3 s"
    assert snapshot.state is JobState.FAILED
    assert snapshot.failure is not None
    assert snapshot.failure.reason is FailureReason.PREFLIGHT_TIMEOUT
    assert snapshot.failure.placeholders == {"seconds": "0.3"}
    assert snapshot.hold_reason == ""
    assert JobState.DOWNLOADING not in gateway.states(LIGHT)
    virtual = await cloud.console.get_virtual_device(LIGHT.product_id, LIGHT.device_name)
    assert virtual.version == "0.1"
