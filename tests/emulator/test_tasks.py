"""OTA of spec §3 and the console's task modes of spec §5, with bare paho clients as devices."""

from __future__ import annotations

from collections.abc import AsyncIterator
import contextlib
import hashlib
import ssl
from typing import Any

import aiohttp
import pytest

from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import MqttTestClient, console_call, eventually, mqtt_client, register_device

PID = "OTAPID0001"
SECRETS = {"dev1": "ZGV2aWNlLW9uZQ==", "dev2": "ZGV2aWNlLXR3bw==", "dev3": "ZGV2aWNlLXRocmVl"}
IMAGE = bytes(range(256)) * 40


def update_topic(name: str) -> str:
    """`$ota/update/PID/name`."""
    return f"$ota/update/{PID}/{name}"


def report_topic(name: str) -> str:
    """`$ota/report/PID/name`."""
    return f"$ota/report/{PID}/{name}"


async def setup(http: aiohttp.ClientSession, emu: Emulator, version: str = "2.0") -> dict[str, Any]:
    """Register the devices and upload the target firmware."""
    for name, secret in SECRETS.items():
        await register_device(http, emu, PID, name, secret)
    async with http.post(
        f"{emu.http_url}/api/firmware?product_id={PID}&version={version}", data=IMAGE
    ) as response:
        assert response.status in (200, 201), await response.text()
        return dict(await response.json())


@contextlib.asynccontextmanager
async def device(emu: Emulator, name: str, version: str | None = None) -> AsyncIterator[MqttTestClient]:
    """A directly connected device subscribed to its OTA topic; reports `version` if given."""
    async with mqtt_client(emu, PID, name, SECRETS[name]) as client:
        assert await client.subscribe(update_topic(name)) == [1]
        if version is not None:
            await report_version(client, name, version)
        yield client


async def report_version(client: MqttTestClient, name: str, version: str) -> None:
    """report_version and check the exact report_version_rsp."""
    await client.publish(report_topic(name), {"type": "report_version", "report": {"version": version}})
    rsp = await client.expect(update_topic(name), lambda p: p.get("type") == "report_version_rsp")
    assert rsp == {
        "result_code": 0,
        "result_msg": "success",
        "type": "report_version_rsp",
        "version": version,
    }


async def expect_update(client: MqttTestClient, name: str, firmware: dict[str, Any]) -> dict[str, Any]:
    """Wait for update_firmware and check it against the uploaded image."""
    update = await client.expect(update_topic(name), lambda p: p.get("type") == "update_firmware")
    assert set(update) == {"file_size", "md5sum", "type", "url", "version"}
    assert update["file_size"] == len(IMAGE) == firmware["size"]
    assert update["md5sum"] == hashlib.md5(IMAGE).hexdigest() == firmware["md5"]
    assert update["version"] == firmware["version"]
    assert update["url"].startswith("https://127.0.0.1:")  # https unless the task says otherwise
    return dict(update)


async def create_task(http: aiohttp.ClientSession, emu: Emulator, **body: Any) -> int:
    """POST /api/tasks and return the id."""
    answer = await console_call(
        http, emu, "POST", "/api/tasks", {"product_id": PID, "version": "2.0"} | body, status=201
    )
    return int(answer["task_id"])


async def task_states(http: aiohttp.ClientSession, emu: Emulator, task_id: int) -> dict[str, dict[str, Any]]:
    """device name -> its entry in the task."""
    task = await console_call(http, emu, "GET", f"/api/tasks/{task_id}")
    return {entry["device_name"]: entry for entry in task["devices"]}


def progress(
    state: str, *, percent: Any = None, code: Any = "0", msg: str = "", version: str = "2.0"
) -> dict[str, Any]:
    """A report_progress message of spec §3."""
    body: dict[str, Any] = {"state": state, "result_code": code, "result_msg": msg}
    if percent is not None:
        body["percent"] = percent
    return {"type": "report_progress", "report": {"progress": body, "version": version}}


async def test_report_version_recorded(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """report_version gets report_version_rsp with an int result_code, and the console shows the version."""
    await setup(http, emulator)
    async with device(emulator, "dev1", "1.0"):
        status = await console_call(http, emulator, "GET", f"/api/devices/{PID}/dev1")
        assert status == {
            "product_id": PID,
            "device_name": "dev1",
            "online": True,
            "version": "1.0",
            "gateway": None,
            "task": None,
        }
    messages = (await console_call(http, emulator, "GET", f"/api/messages?client={PID}/dev1"))["messages"]
    assert [(m["direction"], m["payload"]["type"]) for m in messages] == [
        ("in", "report_version"),
        ("out", "report_version_rsp"),
    ]
    assert messages[0]["time"] <= messages[1]["time"]


async def test_mode_all_pushes_online_and_later_the_offline(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Mode all: online devices on a from_version get the push at once; an offline one after its next report."""
    firmware = await setup(http, emulator)
    async with device(emulator, "dev3", "1.0"):
        pass  # dev3 reported 1.0 and went offline
    await eventually(lambda: _is_offline(http, emulator, "dev3"))
    async with device(emulator, "dev1", "1.0") as dev1, device(emulator, "dev2", "0.9") as dev2:
        task_id = await create_task(http, emulator, mode="all", from_versions=["1.0", "1.1"])
        await expect_update(dev1, "dev1", firmware)
        await dev2.expect_none(update_topic("dev2"))
        states = await task_states(http, emulator, task_id)
        assert {name: s["state"] for name, s in states.items()} == {"dev1": "sent", "dev3": "pending"}
        # A pending update is re-sent right after each report_version, with a fresh URL.
        await report_version(dev1, "dev1", "1.0")
        await expect_update(dev1, "dev1", firmware)
    async with device(emulator, "dev3") as dev3:
        await dev3.expect_none(update_topic("dev3"), wait=0.1)
        await report_version(dev3, "dev3", "1.0")
        await expect_update(dev3, "dev3", firmware)
        assert (await task_states(http, emulator, task_id))["dev3"]["state"] == "sent"
    # dev2 later reports an eligible version: mode all adopts it.
    async with device(emulator, "dev2", "1.1") as dev2:
        await expect_update(dev2, "dev2", firmware)
        assert (await task_states(http, emulator, task_id))["dev2"]["state"] == "sent"


async def _is_offline(http: aiohttp.ClientSession, emu: Emulator, name: str) -> bool:
    status = await console_call(http, emu, "GET", f"/api/devices/{PID}/{name}")
    return status["online"] is False


async def test_mode_devices_needs_a_from_version(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Mode devices: only chosen devices, and only while their version is in from_versions."""
    firmware = await setup(http, emulator)
    async with (
        device(emulator, "dev1", "1.0") as dev1,
        device(emulator, "dev2", "0.5") as dev2,
        device(emulator, "dev3", "1.0") as dev3,
    ):
        task_id = await create_task(
            http, emulator, mode="devices", from_versions=["1.0"], devices=["dev1", "dev2"]
        )
        await expect_update(dev1, "dev1", firmware)
        await dev2.expect_none(update_topic("dev2"), wait=0.1)
        await dev3.expect_none(update_topic("dev3"), wait=0.1)
        states = await task_states(http, emulator, task_id)
        assert {name: s["state"] for name, s in states.items()} == {"dev1": "sent", "dev2": "pending"}
        await report_version(dev2, "dev2", "0.6")
        await dev2.expect_none(update_topic("dev2"), wait=0.1)
        await report_version(dev2, "dev2", "1.0")
        await expect_update(dev2, "dev2", firmware)


async def test_mode_list_whatever_version_and_via_gateway(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Mode list: listed devices whatever they run; a sub-device online through its gateway gets it at once."""
    firmware = await setup(http, emulator)
    await register_device(http, emulator, "GWPID00001", "gw01", "Z2F0ZXdheS1zZWNyZXQtMQ==")
    await console_call(
        http, emulator, "POST", "/api/bindings", {"gateway": "GWPID00001/gw01", "subdevice": f"{PID}/dev2"}
    )
    async with (
        device(emulator, "dev1", "0.1") as dev1,
        mqtt_client(emulator, "GWPID00001", "gw01", "Z2F0ZXdheS1zZWNyZXQtMQ==") as gateway,
    ):
        assert await gateway.subscribe("$gateway/operation/result/GWPID00001/gw01", update_topic("dev2")) == [
            1,
            1,
        ]
        await gateway.publish(
            "$gateway/operation/GWPID00001/gw01",
            {"type": "online", "payload": {"devices": [{"product_id": PID, "device_name": "dev2"}]}},
        )
        await gateway.expect("$gateway/operation/result/GWPID00001/gw01")
        task_id = await create_task(http, emulator, mode="list", devices=["dev1", "dev2", "dev3"])
        await expect_update(dev1, "dev1", firmware)
        await expect_update(gateway, "dev2", firmware)
        states = await task_states(http, emulator, task_id)
        assert {name: s["state"] for name, s in states.items()} == {
            "dev1": "sent",
            "dev2": "sent",
            "dev3": "pending",
        }
    async with device(emulator, "dev3") as dev3:
        await report_version(dev3, "dev3", "7.7")
        await expect_update(dev3, "dev3", firmware)


async def test_progress_tracked_to_done(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """downloading (percent), burning, done: each shows in the task; the new version's report does not re-push."""
    firmware = await setup(http, emulator)
    async with device(emulator, "dev1", "1.0") as dev1:
        task_id = await create_task(http, emulator, mode="list", devices=["dev1"])
        update = await expect_update(dev1, "dev1", firmware)
        await dev1.publish(report_topic("dev1"), progress("downloading", percent="0"), qos=0)
        await dev1.publish(report_topic("dev1"), progress("downloading", percent="37"), qos=0)

        async def downloading() -> bool:
            entry = (await task_states(http, emulator, task_id))["dev1"]
            return bool(entry["state"] == "downloading" and entry["percent"] == 37)

        await eventually(downloading)
        await dev1.publish(report_topic("dev1"), progress("downloading", percent="100"), qos=0)
        await dev1.publish(report_topic("dev1"), progress("burning"))
        assert (await task_states(http, emulator, task_id))["dev1"]["state"] == "burning"
        await dev1.publish(report_topic("dev1"), progress("done"))
        entry = (await task_states(http, emulator, task_id))["dev1"]
        assert entry | {"task_id": 0} == {
            "task_id": 0,
            "product_id": PID,
            "device_name": "dev1",
            "state": "done",
            "percent": 100,
            "result_code": 0,
            "result_msg": "",
            "history": ["downloading 0", "downloading 37", "downloading 100", "burning", "done"],
        }
        await report_version(dev1, "dev1", "2.0")
        await dev1.expect_none(update_topic("dev1"), wait=0.1)
        status = await console_call(http, emulator, "GET", f"/api/devices/{PID}/dev1")
        assert status["version"] == "2.0"
        assert status["task"]["state"] == "done"
    # The pushed URL serves the image over TLS with the emulator's CA.
    context = ssl.create_default_context(cafile=emulator.ca_file)
    async with http.get(update["url"], ssl=context) as response:
        assert response.status == 200
        assert await response.read() == IMAGE


async def test_progress_fail_is_terminal(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """fail keeps its code and message, and a later report_version does not re-push."""
    firmware = await setup(http, emulator)
    async with device(emulator, "dev1", "1.0") as dev1:
        task_id = await create_task(http, emulator, mode="devices", devices=["dev1"], from_versions=["1.0"])
        await expect_update(dev1, "dev1", firmware)
        await dev1.publish(report_topic("dev1"), progress("fail", code="-4", msg="md5 mismatch"))
        entry = (await task_states(http, emulator, task_id))["dev1"]
        assert (entry["state"], entry["result_code"], entry["result_msg"]) == ("fail", -4, "md5 mismatch")
        await report_version(dev1, "dev1", "1.0")
        await dev1.expect_none(update_topic("dev1"), wait=0.1)


async def test_a_second_terminal_report_is_recorded_not_a_violation(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Tencent's own device SDKs report a bad image twice: `-4` from their check, then `-5` from their samples.
    The cloud must take that: the second is recorded in the device's history, the first outcome stands, and
    nothing is listed as a violation (old emulator: "report_progress after the task ended")."""
    firmware = await setup(http, emulator)
    async with device(emulator, "dev1", "1.0") as dev1:
        task_id = await create_task(http, emulator, mode="list", devices=["dev1"])
        await expect_update(dev1, "dev1", firmware)
        await dev1.publish(report_topic("dev1"), progress("downloading", percent="0"), qos=0)
        await dev1.publish(report_topic("dev1"), progress("fail", code="-4", msg="md5 mismatch"))
        await dev1.publish(report_topic("dev1"), progress("fail", code="-5", msg="time_out"))

        async def both_heard() -> dict[str, Any] | None:
            entry = (await task_states(http, emulator, task_id))["dev1"]
            return entry if len(entry["history"]) == 3 else None

        entry = await eventually(both_heard)
        assert entry["history"] == ["downloading 0", "fail -4", "fail -5"]
        assert (entry["state"], entry["result_code"], entry["result_msg"]) == ("fail", -4, "md5 mismatch")
        await dev1.publish(report_topic("dev1"), progress("downloading", percent="50"), qos=0)

        async def refused() -> list[Any]:
            return list((await console_call(http, emulator, "GET", "/api/violations"))["violations"])

        violations = await eventually(refused)
        assert [v["reason"] for v in violations] == ["report_progress after the task ended (fail)"]


@pytest.mark.parametrize(
    ("told", "reason"),
    [
        ([("downloading", "0"), ("burning", None)], "burning before the device reported downloading 100"),
        (
            [("downloading", "0"), ("downloading", "100"), ("done", None)],
            "done before the device reported burning",
        ),
        (
            [("downloading", "100"), ("burning", None), ("downloading", "100")],
            "downloading after the device reported burning",
        ),
    ],
)
async def test_a_cadence_out_of_order_is_a_violation(
    emulator: Emulator, http: aiohttp.ClientSession, told: list[tuple[str, str | None]], reason: str
) -> None:
    """Spec §3a: the markers are never dropped or reordered. The task log checks it, so a test against the
    emulator sees a gateway that loses `burning` or sends `done` too early."""
    firmware = await setup(http, emulator)
    async with device(emulator, "dev1", "1.0") as dev1:
        await create_task(http, emulator, mode="list", devices=["dev1"])
        await expect_update(dev1, "dev1", firmware)
        for state, percent in told:
            if percent is None:
                await dev1.publish(report_topic("dev1"), progress(state))
            else:
                await dev1.publish(report_topic("dev1"), progress(state, percent=percent), qos=0)

        async def listed() -> list[Any]:
            return list((await console_call(http, emulator, "GET", "/api/violations"))["violations"])

        violations = await eventually(listed)
        assert [v["reason"] for v in violations] == [reason]


async def test_task_times_out_without_progress(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """No progress for timeout_s ends the device's task in `timeout`; progress re-arms the timer."""
    firmware = await setup(http, emulator)
    async with device(emulator, "dev1", "1.0") as dev1, device(emulator, "dev2", "1.0") as dev2:
        task_id = await create_task(http, emulator, mode="list", devices=["dev1", "dev2"], timeout_s=0.4)
        await expect_update(dev1, "dev1", firmware)
        await expect_update(dev2, "dev2", firmware)
        for percent in ("10", "20", "30"):
            await dev2.publish(report_topic("dev2"), progress("downloading", percent=percent), qos=0)
            await dev2.expect_none(update_topic("dev2"), wait=0.2)

        states = await task_states(http, emulator, task_id)
        assert states["dev1"]["state"] == "timeout"
        assert "no progress" in states["dev1"]["result_msg"]
        assert states["dev2"]["state"] == "downloading"

        async def dev2_timed_out() -> bool:
            return bool((await task_states(http, emulator, task_id))["dev2"]["state"] == "timeout")

        await eventually(dev2_timed_out)
        await report_version(dev1, "dev1", "1.0")
        await dev1.expect_none(update_topic("dev1"), wait=0.1)


async def test_wrong_ota_shapes_are_violations(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """An int percent, a non-string result_code, a missing version, bad JSON: each listed, none applied."""
    firmware = await setup(http, emulator)
    async with device(emulator, "dev1", "1.0") as dev1:
        await dev1.publish(report_topic("dev1"), progress("downloading", percent="5"))
        task_id = await create_task(http, emulator, mode="list", devices=["dev1"])
        await expect_update(dev1, "dev1", firmware)
        bad = [
            progress("downloading", percent=37),
            progress("downloading", percent="101"),
            progress("fail", code=-4, msg="md5 mismatch"),
            progress("fail", code="0"),
            progress("exploding"),
            progress("burning", version="9.9"),
            {"type": "report_progress", "report": {"progress": {"state": "burning", "result_code": "0"}}},
            {"type": "report_version", "report": {}},
            {"type": "report_version", "report": {"version": 2}},
            {"type": "report_version", "report": {"version": "x" * 33}},
            {"type": "hello"},
            "{oops",
        ]
        for message in bad:
            await dev1.publish(report_topic("dev1"), message)
        await report_version(dev1, "dev1", "1.0")  # still answering
        entry = (await task_states(http, emulator, task_id))["dev1"]
        assert entry["state"] == "sent"
        assert entry["percent"] is None
    reasons = [
        v["reason"] for v in (await console_call(http, emulator, "GET", "/api/violations"))["violations"]
    ]
    assert len(reasons) == 1 + len(bad), reasons
    assert "without an upgrade task" in reasons[0]
    assert "percent must be a string, got int" in reasons[1]
    assert "'101' is not 0-100" in reasons[2]
    assert "result_code must be a string, got int" in reasons[3]
    assert "non-zero result_code" in reasons[4]
    assert "'exploding'" in reasons[5]
    assert "for version '9.9'" in reasons[6]
    assert "report.version" in reasons[7]
    for index in (8, 9, 10):
        assert "report.version" in reasons[index]
    assert "unknown OTA message type 'hello'" in reasons[11]
    assert reasons[12].startswith("malformed JSON")


async def test_task_console_validation(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Bad task requests get a 4xx with a JSON error message."""
    await setup(http, emulator)
    base = {"product_id": PID, "version": "2.0"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        (base | {"mode": "some"}, 400, "mode must be"),
        (base | {"mode": "all"}, 400, "needs from_versions"),
        (base | {"mode": "devices", "from_versions": ["1.0"]}, 400, "needs devices"),
        (base | {"mode": "list", "devices": "dev1"}, 400, "list of strings"),
        (base | {"mode": "list", "devices": ["nobody"]}, 404, "nobody"),
        (base | {"mode": "list", "devices": ["dev1"], "url_scheme": "ftp"}, 400, "url_scheme"),
        (base | {"version": "3.0", "mode": "list", "devices": ["dev1"]}, 404, "no firmware 3.0"),
    ]
    for body, status, message in cases:
        answer = await console_call(http, emulator, "POST", "/api/tasks", body, status=status)
        assert message in answer["error"]
    emulator.min_task_timeout_s = 120
    answer = await console_call(
        http,
        emulator,
        "POST",
        "/api/tasks",
        base | {"mode": "list", "devices": ["dev1"], "timeout_s": 60},
        status=400,
    )
    assert "between 120 and 900" in answer["error"]
    await console_call(
        http,
        emulator,
        "POST",
        "/api/tasks",
        base | {"mode": "list", "devices": ["dev1"], "timeout_s": 901},
        status=400,
    )
    await console_call(http, emulator, "GET", "/api/tasks/999", status=404)
    await console_call(http, emulator, "GET", "/api/tasks/abc", status=400)
    task_id = await create_task(http, emulator, mode="list", devices=["dev1"], url_scheme="http")
    task = await console_call(http, emulator, "GET", f"/api/tasks/{task_id}")
    assert task["timeout_s"] == 300
    assert task["url_scheme"] == "http"
