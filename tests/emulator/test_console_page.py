"""The console's page at `/`: devices with their version and online state, tasks with each device's state and
percent, refreshed in place, and every value escaped."""

from __future__ import annotations

import re
from typing import Any

import aiohttp

from tencent_iot_emulator.console_page import (
    ConsoleSnapshot,
    ControlView,
    DeviceRow,
    PropertyRow,
    TaskDeviceRow,
    TaskView,
    ThingView,
    render_page,
)
from tencent_iot_emulator.emulator import Emulator
from tests.emulator.test_data_templates import DOWN, LAMP, ask, lamp_online
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


def _thing(page: str, key: str) -> str:
    """The data section's article of device `key`."""
    match = re.search(
        rf'<article class="thing" data-device="{re.escape(key)}">.*?</article>', page, re.DOTALL
    )
    assert match is not None, f"no data of {key} in {page}"
    return match[0]


def _property(article: str, property_id: str) -> str:
    match = re.search(rf"<tr><td><code>{re.escape(property_id)}</code>.*?</tr>", article)
    assert match is not None, f"no row for {property_id} in {article}"
    return match[0]


async def test_the_page_shows_reported_properties_and_its_form_sends_a_control(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A light's reported properties (value, when, what the template allows), and a control sent the way the
    page's form sends it (its path, a property it offers, the value as a number) reaching the device, whose
    answer the page then shows."""
    async with lamp_online(emulator, http) as client:
        page, _ = await _page(http, emulator)
        lamp = _thing(page, LAMP)
        assert "<h2>Device data (2)</h2>" in page  # lamp01 and lamp02, both of the light product
        assert "● online" in lamp
        assert "category light" in lamp
        assert "none reported" in _property(lamp, "power_switch")
        assert "No control sent yet." in lamp

        reply = await ask(
            client, {"method": "report", "clientToken": "r1", "params": {"power_switch": 1, "color": 2}}
        )
        assert reply["code"] == 0
        lamp = _thing((await _page(http, emulator))[0], LAMP)
        power = _property(lamp, "power_switch")
        assert '<code class="value">1</code>' in power
        assert re.search(r"<td>\d\d:\d\d:\d\d</td>", power), power
        assert "bool: 0 or 1" in power
        assert '<code class="value">2</code> <span class="muted">(blue)</span>' in _property(lamp, "color")
        assert "none reported" in _property(lamp, "brightness")
        assert "int: 0 to 100" in _property(lamp, "brightness")

        # The form: the control API of this device, the light's writable properties, sent by its script.
        form = re.search(r'<form class="control" data-control="([^"]+)">(.*?)</form>', lamp, re.DOTALL)
        assert form is not None, lamp
        path, fields = form[1], form[2]
        assert path == f"/api/devices/{LAMP}/control"
        offered = re.findall(r'<option value="([^"]+)" data-kind="([^"]+)">', fields)
        assert offered == [
            ("power_switch", "bool"),
            ("brightness", "int"),
            ("color_temp", "int"),
            ("color", "enum"),
            ("rgb_color", "int"),
        ]
        assert '<input name="value"' in fields
        sent = await console_call(http, emulator, "POST", path, {"params": {"power_switch": 0}}, status=201)
        control = await client.expect(DOWN, lambda p: p.get("method") == "control")
        assert control["params"] == {"power_switch": 0}
        assert control["clientToken"] == sent["clientToken"]

        lamp = _thing((await _page(http, emulator))[0], LAMP)
        assert "Last control <code>{&quot;power_switch&quot;:0}</code>" in lamp
        assert "pending: no answer yet" in lamp
        await client.publish(
            f"$thing/up/property/{LAMP}",
            {"method": "control_reply", "clientToken": control["clientToken"], "code": 0, "status": "ok"},
        )

        async def answered() -> str | None:
            article = _thing((await _page(http, emulator))[0], LAMP)
            return article if "answered code 0 (ok)" in article else None

        await eventually(answered)

        # What the form's script shows when the API refuses a value: the API's reason.
        async with http.post(emulator.http_url + path, json={"params": {"power_switch": 2}}) as refused:
            assert refused.status == 400
            assert "takes 0 or 1" in (await refused.json())["error"]


async def test_the_data_section_is_empty_without_templates(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Devices of products without a data template are not listed in the data section."""
    await register_device(http, emulator, PID, "lamp1", SECRETS["lamp1"])
    page, _ = await _page(http, emulator)
    assert "<h2>Device data (0)</h2>" in page
    assert "No device of a product with a data template yet." in page
    assert "<form" not in page


def test_reported_values_and_controls_with_markup_are_escaped() -> None:
    """A string property's reported value, a property id and a control's params are shown as text; a
    read-only property gets no place in the form."""
    hostile = '"><img src=x onerror=alert(1)><script>alert(2)</script>'
    thing = ThingView(
        "PID/lamp",
        True,
        "custom",
        (
            PropertyRow("label", "string", True, "text", f'"{hostile}"', None, 1.0),
            PropertyRow(f"x{hostile}", "int", False, "0 to 1", "1", hostile, None),
        ),
        ControlView(f'{{"label":"{hostile}"}}', 2.0, True, 1, hostile, False),
        3,
    )
    page = render_page(ConsoleSnapshot((), (), (thing,)), "n0nce")
    assert page.count("<script") == 1
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "3 report(s) refused" in page
    assert "answered code 1 (&quot;&gt;&lt;img" in page
    options = re.findall(r'<option value="([^"]*)"', page)
    assert options == ["label"]  # the read-only property is not offered
