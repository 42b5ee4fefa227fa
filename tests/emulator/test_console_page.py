"""The console's page at `/`: devices with their version and online state, tasks with each device's state and
percent, refreshed in place, and every value escaped."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from tencent_iot_emulator.console_page import ConsoleSnapshot, DeviceRow, TaskDeviceRow, TaskView, render_page
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import MqttTestClient, console_call, eventually, mqtt_client, register_device

PID = "PAGEPID001"
SECRETS = {"lamp1": "bGFtcC1vbmU=", "lamp2": "bGFtcC10d28=", "lamp3": "bGFtcC10aHJlZQ=="}
# A version is whatever a device reports (1 to 32 characters): the page must show it as text.
HOSTILE_VERSION = "<script>alert(1)</script>"


async def _page(http: aiohttp.ClientSession, emu: Emulator) -> tuple[str, dict[str, str]]:
    async with http.get(emu.http_url + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert response.charset == "utf-8"
        return await response.text(), dict(response.headers)


def _main(page: str) -> str:
    """The part of the page its script swaps in on every refresh."""
    match = re.search(r'<main id="console">.*</main>', page, re.DOTALL)
    assert match is not None, page
    return match[0]


def _row(page: str, key: str) -> str:
    """The first table row that names `key`."""
    match = re.search(rf"<tr><td><code>{re.escape(key)}</code></td>.*?</tr>", page)
    assert match is not None, f"no row for {key} in {page}"
    return match[0]


async def _report(client: MqttTestClient, name: str, body: dict[str, Any]) -> None:
    await client.publish(f"$ota/report/{PID}/{name}", body)


async def _report_version(client: MqttTestClient, name: str, version: str) -> None:
    await _report(client, name, {"type": "report_version", "report": {"version": version}})
    await client.expect(f"$ota/update/{PID}/{name}", lambda p: p.get("type") == "report_version_rsp")


async def _downloading(client: MqttTestClient, name: str, percent: int) -> None:
    progress = {"state": "downloading", "percent": str(percent), "result_code": "0", "result_msg": ""}
    await _report(
        client, name, {"type": "report_progress", "report": {"progress": progress, "version": "2.0"}}
    )


async def test_the_page_shows_devices_and_a_task_with_its_percent(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Online and offline devices with their versions; the task's device downloading at 37 %, then 64 %."""
    for name, secret in SECRETS.items():
        await register_device(http, emulator, PID, name, secret)
    async with http.post(
        f"{emulator.http_url}/api/firmware?product_id={PID}&version=2.0", data=b"image"
    ) as up:
        assert up.status in (200, 201)

    page, headers = await _page(http, emulator)
    assert "<h2>Devices (3)</h2>" in page
    assert "No upgrade task yet." in page
    assert "offline" in _row(page, f"{PID}/lamp1")

    async with (
        mqtt_client(emulator, PID, "lamp1", SECRETS["lamp1"]) as lamp1,
        mqtt_client(emulator, PID, "lamp2", SECRETS["lamp2"]) as lamp2,
    ):
        assert await lamp1.subscribe(f"$ota/update/{PID}/lamp1") == [1]
        assert await lamp2.subscribe(f"$ota/update/{PID}/lamp2") == [1]
        await _report_version(lamp1, "lamp1", "1.0")
        await _report_version(lamp2, "lamp2", HOSTILE_VERSION)
        answer = await console_call(
            http,
            emulator,
            "POST",
            "/api/tasks",
            {
                "product_id": PID,
                "version": "2.0",
                "mode": "all",
                "from_versions": ["1.0"],
                "url_scheme": "http",
            },
            status=201,
        )
        task_id = int(answer["task_id"])
        await lamp1.expect(f"$ota/update/{PID}/lamp1", lambda p: p.get("type") == "update_firmware")
        await _downloading(lamp1, "lamp1", 0)
        await _downloading(lamp1, "lamp1", 37)

        async def at_37() -> bool:
            task = await console_call(http, emulator, "GET", f"/api/tasks/{task_id}")
            return bool(task["devices"][0]["percent"] == 37)

        await eventually(at_37)
        page, headers = await _page(http, emulator)

        devices = page[page.index("<h2>Devices") : page.index("<h2>Upgrade tasks")]
        lamp1_row = _row(devices, f"{PID}/lamp1")
        assert "● online" in lamp1_row
        assert "<code>1.0</code>" in lamp1_row
        assert f"#{task_id} " in lamp1_row
        assert "downloading" in lamp1_row
        assert "37 %" in lamp1_row
        assert "offline" in _row(devices, f"{PID}/lamp3")

        tasks = page[page.index("<h2>Upgrade tasks (1)</h2>") :]
        assert f"Task #{task_id}: <code>{PID}</code> to <code>2.0</code>" in tasks
        task_row = _row(tasks, f"{PID}/lamp1")
        assert "downloading" in task_row
        assert '<progress max="100" value="37">' in task_row
        assert "37 %" in task_row
        assert 'title="Reported: downloading 0, downloading 37"' in task_row
        assert f"<code>{PID}/lamp2</code>" not in tasks  # its version is not one the task upgrades from

        # The hostile version shows as text; the page's only script is its own, allowed by the CSP's nonce.
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in _row(devices, f"{PID}/lamp2")
        assert HOSTILE_VERSION not in page
        assert page.count("<script") == 1
        nonce = re.search(r"<script nonce=\"([^\"]+)\">", page)
        assert nonce is not None
        csp = str(headers["Content-Security-Policy"])
        assert f"script-src 'nonce-{nonce[1]}'" in csp
        assert "default-src 'none'" in csp
        assert "fetch(location.pathname" in page  # the refresh: the same page, its <main> swapped in
        assert "<link" not in page
        assert "src=" not in page  # no external asset

        # What a refresh swaps in follows the task.
        before = _main(page)
        await _downloading(lamp1, "lamp1", 64)

        async def at_64() -> str | None:
            main = _main((await _page(http, emulator))[0])
            return main if 'value="64"' in main else None

        after = await eventually(at_64)
        assert "64 %" in _row(after, f"{PID}/lamp1")
        assert 'value="37"' in before


async def test_the_page_answers_on_the_https_port_too(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The console is the same on both ports (the demo prints the http one)."""
    async with http.get(emulator.https_url + "/", ssl=False) as response:
        assert response.status == 200
        assert "<h1>Tencent IoT emulator: console</h1>" in await response.text()


def test_a_device_name_with_markup_is_escaped() -> None:
    """The registry refuses `<` in device names, but the page does not count on it: every value is escaped
    (names, versions, gateways, result messages and the reported history in an attribute)."""
    hostile = '<script>alert("x")</script>'
    snapshot = ConsoleSnapshot(
        devices=(DeviceRow(f"PID/{hostile}", True, hostile, f"GW/{hostile}", 1, "fail", None),),
        tasks=(
            TaskView(
                1,
                "PID",
                hostile,
                "list",
                (hostile,),
                (
                    TaskDeviceRow(
                        f"PID/{hostile}",
                        "fail",
                        12,
                        -5,
                        f'"><img src=x onerror=alert(1)>{hostile}',
                        (f'fail -5 "{hostile}',),
                    ),
                ),
            ),
        ),
    )
    page = render_page(snapshot, "n0nce")
    assert page.count("<script") == 1
    assert '<script nonce="n0nce">' in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "code -5: &quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'title="Reported: fail -5 &quot;&lt;script&gt;' in page
