"""Gateway operations of spec §2 against the emulator's cloud, with a bare paho client as the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
import contextlib
import time
from typing import Any

import aiohttp

from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import (
    MqttTestClient,
    bind_signature,
    console_call,
    eventually,
    mqtt_client,
    register_device,
)

GW = ("GWPID00001", "gw01", "Z2F0ZXdheS1zZWNyZXQtMQ==")
GW2 = ("GWPID00001", "gw02", "Z2F0ZXdheS1zZWNyZXQtMg==")
SUB = ("SUBPID0001", "lamp01", "c3ViZGV2LXNlY3JldA==")
SUB2 = ("SUBPID0001", "lamp02", "c3ViZGV2LXNlY3JldC0y")
OP = "$gateway/operation/GWPID00001/gw01"
RESULT = "$gateway/operation/result/GWPID00001/gw01"


@contextlib.asynccontextmanager
async def gateway(
    emu: Emulator, http: aiohttp.ClientSession, creds: tuple[str, str, str] = GW
) -> AsyncIterator[MqttTestClient]:
    """Register everything, connect the gateway and subscribe it to its result topic."""
    for device in (GW, GW2, SUB, SUB2):
        await register_device(http, emu, *device)
    async with mqtt_client(emu, *creds) as client:
        assert await client.subscribe(f"$gateway/operation/result/{creds[0]}/{creds[1]}") == [1]
        yield client


async def operate(
    client: MqttTestClient, kind: str, devices: list[dict[str, Any]], topic: str = OP
) -> list[dict[str, Any]]:
    """Send one operation and return the per-device results of its reply."""
    await client.publish(topic, {"type": kind, "payload": {"devices": devices}})
    reply = await client.expect(
        topic.replace("operation/", "operation/result/"), lambda p: p.get("type") == kind
    )
    return list(reply["payload"]["devices"])


def bind_entry(
    device: tuple[str, str, str], *, method: str = "hmacsha256", secret: str | None = None
) -> dict[str, Any]:
    """A bind request entry signed as spec §2 says."""
    product_id, device_name, real_secret = device
    timestamp, random = int(time.time()), 12345
    return {
        "product_id": product_id,
        "device_name": device_name,
        "signature": bind_signature(
            product_id, device_name, secret or real_secret, random, timestamp, method
        ),
        "random": random,
        "timestamp": timestamp,
        "signmethod": method,
        "authtype": "psk",
    }


def entry(device: tuple[str, str, str]) -> dict[str, str]:
    """A plain device entry."""
    return {"product_id": device[0], "device_name": device[1]}


async def device_status(
    http: aiohttp.ClientSession, emu: Emulator, device: tuple[str, str, str]
) -> dict[str, Any]:
    """GET /api/devices/{pid}/{dn}."""
    return dict(await console_call(http, emu, "GET", f"/api/devices/{device[0]}/{device[1]}"))


def test_bind_signature_matches_spec_vectors() -> None:
    """The tests' own signer agrees with spec §2's vectors (so a bind test failing means the cloud is wrong)."""
    assert bind_signature("SUBPID0001", "lamp01", "c3ViZGV2LXNlY3JldA==", 12345, 1700000000, "hmacsha1") == (
        "OYPbHHf/KphVpYF6Olm+8O4gYCE="
    )
    assert bind_signature("SUBPID0001", "lamp01", "c3ViZGV2LXNlY3JldA==", 12345, 1700000000) == (
        "WO4ANG3q/A4NkpN1y/+SZpqRkxzD3mpITOQkLnkG2IE="
    )


async def test_bind_with_both_methods_then_already_bound(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """bind answers 0 with a good signature (sha256 and sha1), then 809 for a device already bound here."""
    async with gateway(emulator, http) as client:
        assert await operate(client, "bind", [bind_entry(SUB)]) == [entry(SUB) | {"result": 0}]
        assert await operate(client, "bind", [bind_entry(SUB2, method="hmacsha1")]) == [
            entry(SUB2) | {"result": 0}
        ]
        assert await operate(client, "bind", [bind_entry(SUB)]) == [entry(SUB) | {"result": 809}]
        described = await console_call(http, emulator, "GET", "/api/devices/SUBPID0001/lamp01")
        assert described["gateway"] == "GWPID00001/gw01"


async def test_bind_bad_signature_unknown_device_and_bound_elsewhere(
    emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    """803 for a wrong signature, 802 for an unknown device, 806 when another gateway holds the device, 804 for a bad method."""
    async with gateway(emulator, http) as client:
        wrong = bind_entry(SUB, secret=SUB2[2])
        assert await operate(client, "bind", [wrong]) == [entry(SUB) | {"result": 803}]
        # The key is the secret's base64 text, not the decoded bytes: signing with the decoded bytes fails.
        decoded_key = bind_entry(SUB, secret="c3ViZGV2LXNlY3JldA")
        assert (await operate(client, "bind", [decoded_key]))[0]["result"] == 803
        ghost = bind_entry(("SUBPID0001", "ghost", "Z2hvc3Q="))
        assert await operate(client, "bind", [ghost]) == [
            {"product_id": "SUBPID0001", "device_name": "ghost", "result": 802}
        ]
        odd = bind_entry(SUB) | {"signmethod": "hmacmd5"}
        assert (await operate(client, "bind", [odd]))[0]["result"] == 804
        missing = {k: v for k, v in bind_entry(SUB).items() if k != "random"}
        assert (await operate(client, "bind", [missing]))[0]["result"] == 801
        await console_call(
            http,
            emulator,
            "POST",
            "/api/bindings",
            {"gateway": "GWPID00001/gw02", "subdevice": "SUBPID0001/lamp01"},
        )
        assert await operate(client, "bind", [bind_entry(SUB)]) == [entry(SUB) | {"result": 806}]
    violations = (await console_call(http, emulator, "GET", "/api/violations"))["violations"]
    assert any("random (int)" in v["reason"] for v in violations)


async def test_online_offline_and_not_bound(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """online/offline answer 0 for a bound sub-device (and track presence) and -1 for an unbound one."""
    async with gateway(emulator, http) as client:
        assert await operate(client, "online", [entry(SUB)]) == [entry(SUB) | {"result": -1}]
        assert (await device_status(http, emulator, SUB))["online"] is False
        assert (await operate(client, "bind", [bind_entry(SUB)]))[0]["result"] == 0
        assert await operate(client, "online", [entry(SUB), entry(SUB2)]) == [
            entry(SUB) | {"result": 0},
            entry(SUB2) | {"result": -1},
        ]
        assert (await device_status(http, emulator, SUB))["online"] is True
        assert (await device_status(http, emulator, GW))["online"] is True
        assert await operate(client, "offline", [entry(SUB)]) == [entry(SUB) | {"result": 0}]
        assert (await device_status(http, emulator, SUB))["online"] is False
        assert await operate(client, "offline", [entry(SUB2)]) == [entry(SUB2) | {"result": -1}]
        assert (await operate(client, "online", [entry(SUB)]))[0]["result"] == 0

    async def offline() -> bool:
        return (await device_status(http, emulator, SUB))["online"] is False and (
            await device_status(http, emulator, GW)
        )["online"] is False

    # The gateway's disconnect takes its sub-devices offline too.
    await eventually(offline)


async def test_unbind_and_describe(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """describe_sub_devices lists bindings; unbind answers 0, then -1 once unbound, 802 for an unknown device."""
    async with gateway(emulator, http) as client:
        await client.publish(OP, {"type": "describe_sub_devices"})
        assert await client.expect(RESULT) == {"type": "describe_sub_devices", "payload": {"devices": []}}
        await operate(client, "bind", [bind_entry(SUB)])
        await operate(client, "bind", [bind_entry(SUB2)])
        await client.publish(OP, {"type": "describe_sub_devices"})
        assert await client.expect(RESULT) == {
            "type": "describe_sub_devices",
            "payload": {"devices": [entry(SUB), entry(SUB2)]},
        }
        assert (await operate(client, "online", [entry(SUB)]))[0]["result"] == 0
        assert await operate(client, "unbind", [entry(SUB)]) == [entry(SUB) | {"result": 0}]
        assert (await device_status(http, emulator, SUB))["online"] is False
        assert (await device_status(http, emulator, SUB))["gateway"] is None
        assert await operate(client, "unbind", [entry(SUB)]) == [entry(SUB) | {"result": -1}]
        ghost = {"product_id": "SUBPID0001", "device_name": "ghost"}
        assert await operate(client, "unbind", [ghost]) == [ghost | {"result": 802}]
        # Unbound, the sub-device's topics are closed to the gateway again.
        assert await client.subscribe("$ota/update/SUBPID0001/lamp01") == [0x80]
        assert await client.subscribe("$ota/update/SUBPID0001/lamp02") == [1]


async def test_console_binding_pushes_change(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Console bind/unbind push `change` (status 1 / 0) to the online gateway; an offline one gets nothing."""
    binding = {"gateway": "GWPID00001/gw01", "subdevice": "SUBPID0001/lamp01"}
    async with gateway(emulator, http) as client:
        answer = await console_call(http, emulator, "POST", "/api/bindings", binding)
        assert answer == binding | {"bound": True, "pushed": True}
        assert await client.expect(RESULT) == {
            "type": "change",
            "payload": {"status": 1, "devices": [entry(SUB)]},
        }
        answer = await console_call(http, emulator, "DELETE", "/api/bindings", binding)
        assert answer["pushed"] is True
        assert await client.expect(RESULT) == {
            "type": "change",
            "payload": {"status": 0, "devices": [entry(SUB)]},
        }
    await eventually(lambda: _offline(http, emulator, GW))
    answer = await console_call(http, emulator, "POST", "/api/bindings", binding)
    assert answer["pushed"] is False
    error = await console_call(
        http, emulator, "POST", "/api/bindings", binding | {"gateway": "GWPID00001/gw02"}, status=409
    )
    assert "another gateway" in error["error"]
    error = await console_call(
        http, emulator, "POST", "/api/bindings", binding | {"subdevice": "SUBPID0001/nope"}, status=404
    )
    assert "no device" in error["error"]
    await console_call(http, emulator, "POST", "/api/bindings", {"gateway": "bad"}, status=400)


async def _offline(http: aiohttp.ClientSession, emu: Emulator, device: tuple[str, str, str]) -> bool:
    return (await device_status(http, emu, device))["online"] is False


async def test_console_unbind_all(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """unbind_all from the console unbinds every sub-device and pushes `unbind_all`; the reply is accepted."""
    async with gateway(emulator, http) as client:
        await operate(client, "bind", [bind_entry(SUB)])
        await operate(client, "bind", [bind_entry(SUB2)])
        await operate(client, "online", [entry(SUB)])
        answer = await console_call(http, emulator, "POST", "/api/unbind_all", {"gateway": "GWPID00001/gw01"})
        assert answer == {
            "gateway": "GWPID00001/gw01",
            "subdevices": ["SUBPID0001/lamp01", "SUBPID0001/lamp02"],
            "pushed": True,
        }
        assert await client.expect(RESULT) == {"type": "unbind_all"}
        await client.publish(OP, {"type": "unbind_all", "payload": {"result": 0}})
        await client.publish(OP, {"type": "describe_sub_devices"})
        assert await client.expect(RESULT) == {"type": "describe_sub_devices", "payload": {"devices": []}}
        assert (await device_status(http, emulator, SUB))["online"] is False
    violations = (await console_call(http, emulator, "GET", "/api/violations"))["violations"]
    assert violations == []


async def test_malformed_operations_are_violations(emulator: Emulator, http: aiohttp.ClientSession) -> None:
    """Broken JSON and wrong shapes never crash the cloud: each is listed with a reason, and it keeps answering."""
    async with gateway(emulator, http) as client:
        await client.publish(OP, "{not json")
        await client.publish(OP, [1, 2])
        await client.publish(OP, {"type": "teleport"})
        await client.publish(OP, {"type": "online", "payload": {"devices": "lamp01"}})
        await client.publish(
            OP, {"type": "online", "payload": {"devices": [{"product_id": 1, "device_name": None}]}}
        )
        await client.publish(OP, b"\xff\xfe")
        await client.publish(OP, {"type": "describe_sub_devices"})
        assert (await client.expect(RESULT))["type"] == "describe_sub_devices"

    violations = (await console_call(http, emulator, "GET", "/api/violations"))["violations"]
    reasons = [v["reason"] for v in violations]
    assert len(reasons) == 6, reasons
    assert reasons[0].startswith("malformed JSON")
    assert "object with a type" in reasons[1]
    assert "unknown gateway operation" in reasons[2]
    assert "non-empty payload.devices" in reasons[3]
    assert "must be strings" in reasons[4]
    assert reasons[5].startswith("malformed JSON")
    assert all(v["kind"] == "protocol" and v["client"] == "GWPID00001/gw01" for v in violations)
    messages = (await console_call(http, emulator, "GET", "/api/messages?client=GWPID00001/gw01"))["messages"]
    assert messages[0] == {
        "topic": OP,
        "direction": "in",
        "payload": "{not json",
        "time": messages[0]["time"],
    }
    assert messages[-1]["direction"] == "out"
    assert messages[-1]["topic"] == RESULT
