"""Staged rollouts against the emulator: a failing canary halts the rest (the cloud sees their halted fails),
resume lets them go on; a good canary soaks, then the rest go in batches."""

from __future__ import annotations

from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from custom_components.tencent_iot_gateway.engine.errors import FailureReason
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway_engine import SubDevice
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobSnapshot, JobState, OtaSettings
from custom_components.tencent_iot_gateway.engine.ota.rollout_policy import RolloutHalted, RolloutSettings
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually
from tests.engine.engine_rig import LIGHTS, Cloud, Gateway, running_gateway, seed_cloud

PID = LIGHTS[0].product_id
FAST = OtaSettings(report_interval_s=0.1, keepalive_interval_s=0.3, max_flashes=2)
IMAGE = bytes(range(256)) * 16
ROLLOUT = RolloutSettings(canary_count=1, soak_s=0.2, max_failures=1, batch_size=2)
SUBS = [SubDevice(d, "0.1") for d in LIGHTS]


async def _task_devices(cloud: Cloud, task_id: str) -> dict[str, tuple[str, int | None, str | None]]:
    task = await cloud.console.get_task(task_id)
    return {key: (d.state, d.result_code, d.result_msg) for key, d in task.devices.items()}


async def _all_ended(cloud: Cloud, task_id: str) -> dict[str, tuple[str, int | None, str | None]]:
    async def probe() -> dict[str, tuple[str, int | None, str | None]] | None:
        devices = await _task_devices(cloud, task_id)
        return (
            devices if all(state in {"done", "fail", "timeout"} for state, _, _ in devices.values()) else None
        )

    return await eventually(probe, within=15.0)


async def _resume(cloud: Cloud, gateway: Gateway, held_back: list[DeviceId]) -> None:
    """The faults mended, resume the halted rollouts: the devices the halt held back install V2."""
    for light in LIGHTS:
        await cloud.console.set_virtual_device_fault(light.product_id, light.device_name, "none")
    assert set(await gateway.engine.ota.resume_rollouts()) == set(held_back)

    async def resumed_done() -> bool:
        return all(gateway.engine.ota.snapshot(d).state is JobState.DONE for d in held_back)

    await eventually(resumed_done, within=15.0)
    for device in held_back:
        virtual = await cloud.console.get_virtual_device(device.product_id, device.device_name)
        assert virtual.version == "V2"


@dataclass(frozen=True, slots=True)
class HaltedRollout:
    """A rollout of V2 halted by its failing canary: the gateway, the halt it told of, each task's end."""

    gateway: Gateway
    halt: RolloutHalted
    ended: dict[str, tuple[str, int | None, str | None]]


@contextlib.asynccontextmanager
async def halted_rollout(cloud: Cloud, state_dir: Path) -> AsyncIterator[HaltedRollout]:
    """Every light refuses V2: the canary fails and the rollout halts. Yields once every device's task has
    ended, while the gateway still runs; the gateway stops on exit, the halt saved in `state_dir`."""
    for light in LIGHTS:
        await cloud.console.set_virtual_device_fault(light.product_id, light.device_name, "reject")
    await cloud.console.upload_firmware(PID, "V2", IMAGE)
    async with running_gateway(cloud, state_dir, settings=FAST, sub_devices=SUBS, rollout=ROLLOUT) as gateway:
        task_id = await cloud.console.create_task(PID, "V2", "list", devices=[d.device_name for d in LIGHTS])
        ended = await _all_ended(cloud, task_id)
        (halt,) = [e for e in gateway.events if isinstance(e, RolloutHalted)]
        yield HaltedRollout(gateway, halt, ended)


async def test_a_failing_canary_halts_the_rest_and_resume_continues(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Canary of one, halt at the first failure: the canary's flash fails, the two others never flash and
    end with -5 "rollout halted after 1 of 3 failed: ..."; resumed, they install and the cloud hears V2."""
    cloud = await seed_cloud(emulator, http)
    async with halted_rollout(cloud, tmp_path) as halted:
        gateway, halt, ended = halted.gateway, halted.halt, halted.ended
        (canary,) = [failed.device for failed in halt.failed]
        others = [d for d in LIGHTS if d != canary]
        assert set(halt.halted) == set(others)
        assert halt.total == 3
        canary_state, canary_code, _canary_reason = ended[canary.key]
        assert (canary_state, canary_code) == ("fail", -5)
        for other in others:
            assert ended[other.key] == ("fail", -5, "the rollout halted after 1 of 3 devices failed")
            snapshot = gateway.engine.ota.snapshot(other)
            assert snapshot.state is JobState.FAILED
            assert snapshot.failure is not None
            assert snapshot.failure.reason is FailureReason.ROLLOUT_HALTED
            assert snapshot.failure.placeholders == {"failed": "1", "total": "3"}
            assert snapshot.target is not None  # still offered
            assert JobState.FLASHING not in gateway.states(other)
            # They waited for the canary, and said so.
            assert any(
                s.hold_reason.startswith("waiting for the canary group") for s in gateway.snapshots(other)
            )

        await _resume(cloud, gateway, others)
        for other in others:

            async def reported(device: DeviceId = other) -> bool:
                status = await cloud.console.get_device(device.product_id, device.device_name)
                return status.version == "V2"

            await eventually(reported)
        canary_virtual = await cloud.console.get_virtual_device(canary.product_id, canary.device_name)
        assert canary_virtual.version == "0.1"
        assert gateway.engine.ota.snapshot(canary).state is JobState.FAILED


async def test_a_good_canary_soaks_then_the_rest_go_in_batches(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The canary flashes alone; the others wait for it and its soak, then flash (at most two at once)."""
    cloud = await seed_cloud(emulator, http)
    await cloud.console.upload_firmware(PID, "V2", IMAGE)
    rollout = RolloutSettings(canary_count=1, soak_s=0.3, max_failures=1, batch_size=2)
    async with running_gateway(
        cloud, tmp_path, settings=FAST, sub_devices=[SubDevice(d, "0.1") for d in LIGHTS], rollout=rollout
    ) as gateway:
        task_id = await cloud.console.create_task(PID, "V2", "list", devices=[d.device_name for d in LIGHTS])
        ended = await _all_ended(cloud, task_id)
    assert {state for state, _, _ in ended.values()} == {"done"}
    snapshots = [e for e in gateway.events if isinstance(e, JobSnapshot) and e.device in LIGHTS]
    first_flash = next(i for i, s in enumerate(snapshots) if s.state is JobState.FLASHING)
    canary = snapshots[first_flash].device
    canary_done = next(i for i, s in enumerate(snapshots) if s.device == canary and s.state is JobState.DONE)
    others_flashing = [
        i for i, s in enumerate(snapshots) if s.device != canary and s.state is JobState.FLASHING
    ]
    assert others_flashing
    assert min(others_flashing) > canary_done
    reasons = {s.hold_reason for s in snapshots if s.device != canary}
    assert any(r.startswith("waiting for the canary group to soak") for r in reasons)
    assert not await cloud.console.violations()


async def test_a_halted_rollout_outlives_a_restart_and_resumes_after_it(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The gateway stops while a rollout is halted (HA restarting, or the entry reloading after an option
    changed): the next start tells of the same halt again (old code: forgotten, so its repair issue had nothing
    behind it), and resuming then installs the devices the halt held back."""
    cloud = await seed_cloud(emulator, http)
    async with halted_rollout(cloud, tmp_path) as halted:
        halt = halted.halt
    async with running_gateway(cloud, tmp_path, settings=FAST, sub_devices=SUBS, rollout=ROLLOUT) as again:
        assert [e for e in again.events if isinstance(e, RolloutHalted)] == [halt]
        await _resume(cloud, again, list(halt.halted))
    async with running_gateway(cloud, tmp_path, settings=FAST, sub_devices=SUBS, rollout=ROLLOUT) as third:
        assert not [e for e in third.events if isinstance(e, RolloutHalted)]  # resumed: nothing left to tell


async def test_turning_staging_off_forgets_a_halt(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A halt saved while rollouts were on is over once they are turned off: turned on again later, it does
    not come back."""
    cloud = await seed_cloud(emulator, http)
    async with halted_rollout(cloud, tmp_path):
        pass  # the gateway stops with the rollout halted
    async with running_gateway(cloud, tmp_path, settings=FAST, sub_devices=SUBS, rollout=None):
        pass
    async with running_gateway(cloud, tmp_path, settings=FAST, sub_devices=SUBS, rollout=ROLLOUT) as again:
        assert not [e for e in again.events if isinstance(e, RolloutHalted)]
