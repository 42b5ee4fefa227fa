"""Data templates against the emulator's cloud (tencent_iot_emulator/things.py), with a bare gateway client."""

from __future__ import annotations

from collections.abc import AsyncIterator
import contextlib
import time
from typing import Any

import aiohttp
import pytest

from tencent_iot_emulator import things
from tencent_iot_emulator.console_client import ConsoleClient, ConsoleError
from tencent_iot_emulator.emulator import Emulator
from tests.emulator.test_cloud_gateway import SUB, bind_entry, entry, gateway, operate
from tests.emulator_fixtures import MqttTestClient, eventually

LAMP = f"{SUB[0]}/{SUB[1]}"
UP = f"$thing/up/property/{LAMP}"
DOWN = f"$thing/down/property/{LAMP}"


@contextlib.asynccontextmanager
async def lamp_online(emu: Emulator, http: aiohttp.ClientSession) -> AsyncIterator[MqttTestClient]:
    """The gateway connected, the lamp (a `light` product) bound, online and subscribed to its down topic."""
    async with gateway(emu, http) as client:
        await ConsoleClient(emu.http_url, http).set_template(SUB[0], "light")
        assert (await operate(client, "bind", [bind_entry(SUB)]))[0]["result"] == 0
        assert (await operate(client, "online", [entry(SUB)]))[0]["result"] == 0
        assert await client.subscribe(DOWN) == [1]
        yield client


async def ask(client: MqttTestClient, message: dict[str, Any]) -> dict[str, Any]:
    """Publish on the lamp's up topic; the reply with the same clientToken."""
    await client.publish(UP, message, qos=0)
    reply: dict[str, Any] = await client.expect(
        DOWN, lambda p: p.get("clientToken") == message["clientToken"] and p.get("method") != "control"
    )
    return reply


async def test_a_report_is_accepted_and_stored(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """A valid report answers code 0 and the console shows the reported values; get_status report returns them."""
    console = ConsoleClient(emulator.http_url, http)
    async with lamp_online(emulator, http) as client:
        reply = await ask(client, {"method": "report", "clientToken": "r1", "params": {"power_switch": 1}})
        assert reply == {"method": "report_reply", "clientToken": "r1", "code": 0, "status": "success"}
        reply = await ask(
            client,
            {"method": "report", "clientToken": "r2", "params": {"brightness": 40, "color_temp": 3000}},
        )
        assert reply["code"] == 0
        shown = await console.device_properties(*SUB[:2])
        assert shown.reported == {"power_switch": 1, "brightness": 40, "color_temp": 3000}
        status = await ask(client, {"method": "get_status", "clientToken": "s1", "type": "report"})
        assert status["code"] == 0
        assert status["type"] == "report"
        assert status["data"] == {"reported": {"power_switch": 1, "brightness": 40, "color_temp": 3000}}


async def test_each_accepted_report_is_kept_with_its_arrival_time(
    emulator: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The console lists accepted reports oldest first with the time each arrived (what the bridge benchmark
    measures staleness from), leaves refused ones out, and keeps the newest `REPORT_HISTORY`; a control
    shows when it was sent."""
    monkeypatch.setattr(things, "REPORT_HISTORY", 3)
    console = ConsoleClient(emulator.http_url, http)
    async with lamp_online(emulator, http) as client:
        before = time.time()
        for brightness in (10, 20, 30, 40):
            token = f"b{brightness}"
            reply = await ask(
                client, {"method": "report", "clientToken": token, "params": {"brightness": brightness}}
            )
            assert reply["code"] == 0
        refused = await ask(client, {"method": "report", "clientToken": "bad", "params": {"brightness": 101}})
        assert refused["code"] == 406
        after = time.time()
        shown = await console.device_properties(*SUB[:2])
        assert [dict(r.params) for r in shown.reports] == [
            {"brightness": 20},
            {"brightness": 30},
            {"brightness": 40},
        ]
        times = [r.time for r in shown.reports]
        assert times == sorted(times)
        assert before <= times[0]
        assert times[-1] <= after
        sent = await console.send_control(*SUB[:2], {"power_switch": 1})
        assert after <= sent.sent_at <= time.time()


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"power_switch": 1, "fan_speed": 2}, "'fan_speed' is not a property"),
        ({"brightness": "40"}, "takes an integer"),
        ({"brightness": 101}, "outside"),
        ({"power_switch": True}, "JSON boolean"),
        ({"color": 7}, "none of the enum's values"),
    ],
)
async def test_a_report_that_does_not_fit_the_template_is_refused_whole(
    emulator: Emulator, http: aiohttp.ClientSession, params: dict[str, Any], why: str
) -> None:
    """Unknown property, wrong type, out of range: code 406 as Tencent answers, nothing stored, the reason
    in the violations (the reply's status, like Tencent's, does not name the property)."""
    console = ConsoleClient(emulator.http_url, http)
    async with lamp_online(emulator, http) as client:
        reply = await ask(client, {"method": "report", "clientToken": "bad", "params": params})
        assert reply == {
            "method": "report_reply",
            "clientToken": "bad",
            "code": 406,
            "status": "checkReportData fail",
        }
        shown = await console.device_properties(*SUB[:2])
        assert shown.reported == {}
        assert shown.refused_reports == 1
        violations = [v for v in await console.violations() if v.raw["kind"] == "template"]
        assert len(violations) == 1
        assert why in violations[0].reason


async def test_a_control_is_delivered_and_its_reply_checked(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """The console's control reaches the gateway; control_reply with its clientToken answers it; a reply
    for a token never sent is a violation."""
    console = ConsoleClient(emulator.http_url, http)
    async with lamp_online(emulator, http) as client:
        sent = await console.send_control(*SUB[:2], {"power_switch": 1, "brightness": 80})
        assert sent.delivered
        assert sent.pending
        control = await client.expect(DOWN, lambda p: p.get("method") == "control")
        assert control == {
            "method": "control",
            "clientToken": sent.client_token,
            "params": {"power_switch": 1, "brightness": 80},
        }
        reply = {"method": "control_reply", "clientToken": sent.client_token, "code": 0, "status": "ok"}
        await client.publish(UP, reply, qos=0)

        async def answered() -> bool:
            record = (await console.device_properties(*SUB[:2])).control(sent.client_token)
            return record is not None and record.reply_code == 0 and not record.pending

        await eventually(answered)
        await client.publish(UP, reply | {"clientToken": "never-sent"}, qos=0)

        async def violation() -> bool:
            return any("never sent" in v.reason for v in await console.violations())

        await eventually(violation)
        assert (await console.device_properties(*SUB[:2])).pending_control == {}


async def test_an_unanswered_control_stays_pending_until_cleared(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Pending controls (merged, latest wins) come back in get_status type control, until clear_control."""
    console = ConsoleClient(emulator.http_url, http)
    async with lamp_online(emulator, http) as client:
        await console.send_control(*SUB[:2], {"power_switch": 1, "brightness": 10})
        await console.send_control(*SUB[:2], {"brightness": 20})
        status = await ask(client, {"method": "get_status", "clientToken": "s1", "type": "control"})
        assert status["code"] == 0
        assert status["type"] == "control"
        assert status["data"] == {"control": {"power_switch": 1, "brightness": 20}}
        cleared = await ask(client, {"method": "clear_control", "clientToken": "c1"})
        assert cleared == {
            "method": "clear_control_reply",
            "clientToken": "c1",
            "code": 0,
            "status": "success",
        }
        status = await ask(client, {"method": "get_status", "clientToken": "s2", "type": "control"})
        assert status["data"] == {}
        assert (await console.device_properties(*SUB[:2])).pending_control == {}


async def test_a_control_to_an_offline_device_is_kept_for_get_status(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Sent while the lamp is offline: not delivered, but pending, so the next get_status returns it."""
    console = ConsoleClient(emulator.http_url, http)
    async with gateway(emulator, http) as client:
        await console.set_template(SUB[0], "light")
        assert (await operate(client, "bind", [bind_entry(SUB)]))[0]["result"] == 0
        sent = await console.send_control(*SUB[:2], {"power_switch": 0})
        assert not sent.delivered
        assert sent.pending
        assert (await operate(client, "online", [entry(SUB)]))[0]["result"] == 0
        assert await client.subscribe(DOWN) == [1]
        status = await ask(client, {"method": "get_status", "clientToken": "s1", "type": "control"})
        assert status["data"] == {"control": {"power_switch": 0}}


async def test_the_console_sends_only_valid_controls_unless_told(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Read-only or unknown properties and bad values are refused (400), `check=False` sends them anyway."""
    console = ConsoleClient(emulator.http_url, http)
    await console.set_template("CURTAINPID", "cover")
    await console.add_device("CURTAINPID", "curtain1")
    async with lamp_online(emulator, http) as client:
        with pytest.raises(ConsoleError, match="not a property") as refused:
            await console.send_control(*SUB[:2], {"fan_speed": 1})
        assert refused.value.status == 400
        with pytest.raises(ConsoleError, match="outside"):
            await console.send_control(*SUB[:2], {"brightness": 500})
        with pytest.raises(ConsoleError, match="read-only"):
            await console.send_control("CURTAINPID", "curtain1", {"percent_state": 5})
        sent = await console.send_control(*SUB[:2], {"fan_speed": "fast"}, check=False)
        control = await client.expect(DOWN, lambda p: p.get("method") == "control")
        assert control["clientToken"] == sent.client_token
        assert control["params"] == {"fan_speed": "fast"}


async def test_messages_of_a_device_that_is_not_online_get_no_answer(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """Bound but not online: the report is a violation, unanswered and not stored."""
    console = ConsoleClient(emulator.http_url, http)
    async with gateway(emulator, http) as client:
        await console.set_template(SUB[0], "light")
        assert (await operate(client, "bind", [bind_entry(SUB)]))[0]["result"] == 0
        assert await client.subscribe(DOWN) == [1]
        await client.publish(UP, {"method": "report", "clientToken": "r1", "params": {"power_switch": 1}})
        await client.expect_none(DOWN)
        assert any("not online" in v.reason for v in await console.violations())
        assert (await console.device_properties(*SUB[:2])).reported == {}


async def test_templates_are_saved_and_custom_ones_checked(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """A custom template is used as given; a broken one is refused; both survive in the state directory."""
    console = ConsoleClient(emulator.http_url, http)
    custom = [{"id": "level", "type": "int", "mode": "r", "min": 0, "max": 3}]
    shown = await console.set_template("CUSTOMPID1", properties=custom)
    assert shown["properties"][0] == {"id": "level", "type": "int", "mode": "r", "min": 0, "max": 3}
    with pytest.raises(ConsoleError, match="category is one of"):
        await console.set_template("CUSTOMPID1", "toaster")
    with pytest.raises(ConsoleError, match="needs a mapping"):
        await console.set_template("CUSTOMPID1", properties=[{"id": "m", "type": "enum"}])
    saved = (emulator.state_dir / "data_templates.json").read_text()
    assert '"level"' in saved
