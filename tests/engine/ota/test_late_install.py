"""Issue 9 §2: a manual install long after the push, and pushes carrying fields this gateway does not know."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.errors import FailureReason, TaskEndedError
from custom_components.tencent_iot_gateway.engine.gateway_engine import SubDevice
from custom_components.tencent_iot_gateway.engine.ota.jobs import JobState, OtaSettings
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually
from tests.engine.engine_rig import LIGHTS, running_gateway, seed_cloud

PID = LIGHTS[0].product_id
IMAGE = bytes(range(256)) * 16
SETTINGS = OtaSettings(report_interval_s=0.1, keepalive_interval_s=0.3, fresh_url_timeout_s=0.5)


async def test_an_install_after_the_task_ended_says_a_new_task_is_needed(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Manual policy, Install pressed after the cloud's task timed out and its URL expired: 403, re-report,
    no fresh push; the job fails -3 with TaskEndedError, quickly, nothing flashed, nothing left running."""
    cloud = await seed_cloud(emulator, http)
    light = LIGHTS[0]
    await cloud.console.upload_firmware(PID, "V2", IMAGE)
    await cloud.console.set_faults({"url_ttl_s": 0})  # the URL is dead by the time the user gets to it
    async with running_gateway(
        cloud, tmp_path, settings=SETTINGS, auto_install=False, sub_devices=[SubDevice(light, "0.1")]
    ) as gateway:
        ota = gateway.engine.ota
        task_id = await cloud.console.create_task(
            PID, "V2", "list", devices=[light.device_name], timeout_s=0.3
        )

        async def task_ended() -> bool:
            return (await cloud.console.get_task(task_id)).devices[light.key].state == "timeout"

        await eventually(task_ended)
        assert ota.snapshot(light).state is JobState.AVAILABLE  # the push is still on offer in HA

        with pytest.raises(TaskEndedError) as failure:
            await ota.install(light)
        assert failure.value.code == -3
        assert "the upgrade task ended" in str(failure.value)
        assert failure.value.failure.reason is FailureReason.TASK_ENDED
        failed = ota.snapshot(light).failure
        assert failed is not None
        assert failed.placeholders["http_status"] == "403"  # what the server answered, for the texts
        assert "sign=" not in str(failure.value)
        snapshot = ota.snapshot(light)
        assert snapshot.state is JobState.FAILED
        assert snapshot.result_code == -3
        assert not snapshot.state.running
        assert snapshot.installed_version == "0.1"
    assert (await cloud.console.get_virtual_device(light.product_id, light.device_name)).version == "0.1"
    assert (await cloud.console.stats()).forbidden >= 1
    reports = [
        m.payload
        for m in await cloud.console.messages(light.key)
        if m.direction == "in" and isinstance(m.payload, dict)
    ]
    assert any(p["type"] == "report_version" for p in reports[1:])  # asked for a fresh URL
    fails = [p["report"]["progress"] for p in reports if p["type"] == "report_progress"]
    assert fails[-1]["state"] == "fail"
    assert fails[-1]["result_code"] == "-3"


@pytest.mark.parametrize(
    ("extra", "echo"),
    [
        # IoT Explorer's pushes name the task and the firmware module; its devices repeat both.
        (
            {"fw_type": "mcu", "task_id": 1000696, "upgrade_method": 1, "user_defined": '{"key":"value"}'},
            {"fw_type": "mcu", "task_id": 1000696},
        ),
        # Fields BatchUpdateFirmware knows that a newer cloud might pass on; none of them changes the job.
        (
            {"delay_time": 10, "override_mode": 1, "max_retry_num": 3, "retry_interval": 1, "rate_limit": 9},
            {},
        ),
        ({"nested": {"any": ["thing", 1, None]}, "result_code": 0}, {}),
        ({"fw_type": {"not": "a name"}, "task_id": True}, {}),  # odd values of known fields: ignored
    ],
)
async def test_unknown_fields_in_a_push_are_tolerated(
    emulator: Emulator,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    extra: dict[str, object],
    echo: dict[str, object],
) -> None:
    """An `update_firmware` with fields this gateway does not know installs like a plain one; IoT Explorer's
    `fw_type` and `task_id` are repeated in every progress report of the job, as its devices do."""
    cloud = await seed_cloud(emulator, http)
    light = LIGHTS[0]
    await cloud.console.upload_firmware(PID, "V2", IMAGE)
    async with running_gateway(
        cloud, tmp_path, settings=SETTINGS, auto_install=False, sub_devices=[SubDevice(light, "0.1")]
    ) as gateway:
        ota = gateway.engine.ota
        await cloud.console.create_task(PID, "V2", "list", devices=[light.device_name])

        async def offered() -> bool:
            return ota.snapshot(light).state is JobState.AVAILABLE

        await eventually(offered)
        push = next(
            m.payload
            for m in await cloud.console.messages(light.key)
            if m.direction == "out"
            and isinstance(m.payload, dict)
            and m.payload.get("type") == "update_firmware"
        )
        marked = push | {"url": push["url"] + "&marker=1"}  # the server ignores it; it shows the push arrived
        topic = f"$ota/update/{light.product_id}/{light.device_name}"
        await emulator.cloud.publish_raw(topic, json.dumps(extra | marked).encode())

        async def arrived() -> bool:
            target = ota.snapshot(light).target
            return target is not None and target.url == marked["url"]

        await eventually(arrived)
        snapshot = await ota.install(light)
        assert snapshot.state is JobState.DONE
        assert snapshot.installed_version == "V2"
    assert not [v for v in await cloud.console.violations() if v.client == light.key]
    reports = [
        m.payload["report"]
        for m in await cloud.console.messages(light.key)
        if m.direction == "in" and m.payload.get("type") == "report_progress"
    ]
    states = [report["progress"]["state"] for report in reports]
    assert "fail" not in states
    assert states[-1] == "done"
    assert {"downloading", "burning", "done"} <= set(states)
    for report in reports:
        assert {name: report[name] for name in echo} == echo
        assert set(report) <= {"progress", "version", *echo}
