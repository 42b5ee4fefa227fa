"""Gateway operations (spec §2) against the emulator: results, typed errors, console pushes, many devices,
sub-devices added late or with a wrong secret; and against a scripted cloud: silence, malformed replies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from custom_components.tencent_iot_gateway.engine.errors import GatewayOperationError, OperationTimeoutError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway.operations import (
    AllUnbound,
    GatewayOperations,
    GatewayPush,
    SubDevicesChanged,
)
from custom_components.tencent_iot_gateway.engine.gateway_engine import (
    ConnectionChanged,
    SubDevice,
    SubDeviceStatus,
)
from tencent_iot_emulator.emulator import Emulator
from tests.emulator_fixtures import eventually
from tests.engine.engine_rig import AIRCON, ENGINE_LOGGER, GATEWAY, LIGHTS, SEED, running_gateway, seed_cloud

WRONG_SECRET = "d3Jvbmctc2VjcmV0LXdyb25n"


async def test_unbound_sub_device_is_reported_and_bound_with_its_secret(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """`online` of an unbound device gives -1; with its secret the gateway binds it itself and brings it online."""
    cloud = await seed_cloud(emulator, http, bind=False)
    subs = [SubDevice(LIGHTS[0], "0.1", secret=cloud.secrets[LIGHTS[0]]), SubDevice(LIGHTS[1], "0.1")]
    async with running_gateway(cloud, tmp_path, sub_devices=subs) as gateway:
        engine = gateway.engine
        assert engine.is_online(LIGHTS[0])
        assert not engine.is_online(LIGHTS[1])
        assert SubDeviceStatus(LIGHTS[1], False, -1) in gateway.events
        status = await cloud.console.get_device(LIGHTS[0].product_id, LIGHTS[0].device_name)
        assert status.gateway == GATEWAY.key
        assert status.online
        assert await engine.operations.describe_sub_devices() == [LIGHTS[0]]


async def test_bind_errors_are_typed(emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path) -> None:
    """A wrong secret is 803, a device of another gateway 806, an unknown one 802; 809 counts as success."""
    cloud = await seed_cloud(emulator, http, bind=False)
    other_gateway = await cloud.console.add_device("GWPROD0001", "gateway2")
    await cloud.console.bind(f"GWPROD0001/{other_gateway.device_name}", AIRCON.key)
    async with running_gateway(cloud, tmp_path, sub_devices=[]) as gateway:
        operations = gateway.engine.operations
        with pytest.raises(GatewayOperationError, match="signature is wrong") as wrong:
            await operations.bind(LIGHTS[0], cloud.secrets[LIGHTS[1]])
        assert wrong.value.code == 803
        with pytest.raises(GatewayOperationError) as elsewhere:
            await operations.bind(AIRCON, cloud.secrets[AIRCON])
        assert elsewhere.value.code == 806
        with pytest.raises(GatewayOperationError) as unknown:
            await operations.bind(DeviceId("LIGHTPID01", "nosuchlight"), cloud.secrets[LIGHTS[0]])
        assert unknown.value.code == 802

        await operations.bind(LIGHTS[0], cloud.secrets[LIGHTS[0]])
        await operations.bind(LIGHTS[0], cloud.secrets[LIGHTS[0]])  # already bound here: fine
        assert await operations.describe_sub_devices() == [LIGHTS[0]]

        await operations.unbind(LIGHTS[0])
        assert await operations.describe_sub_devices() == []
        result = await operations.online([LIGHTS[0]])
        assert result.results == {LIGHTS[0]: -1}
        with pytest.raises(GatewayOperationError) as not_bound:
            await operations.unbind(LIGHTS[0])
        assert not_bound.value.code != 0


async def test_console_pushes_become_events(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """`change` from the console raises an event and brings a newly bound known device online; `unbind_all` is answered."""
    cloud = await seed_cloud(emulator, http, bind=False)
    async with running_gateway(cloud, tmp_path, sub_devices=[SubDevice(LIGHTS[0], "0.1")]) as gateway:
        assert not gateway.engine.is_online(LIGHTS[0])
        await cloud.console.bind(GATEWAY.key, LIGHTS[0].key)

        async def came_online() -> bool:
            return gateway.engine.is_online(LIGHTS[0])

        await eventually(came_online)
        assert SubDevicesChanged(bound=True, devices=(LIGHTS[0],)) in gateway.events

        await cloud.console.unbind_all(GATEWAY.key)

        async def acknowledged() -> bool:
            messages = await cloud.console.messages(GATEWAY.key)
            return any(
                m.direction == "in" and m.payload == {"type": "unbind_all", "payload": {"result": 0}}
                for m in messages
            )

        await eventually(acknowledged)
        assert AllUnbound() in gateway.events


async def test_change_and_search_devices_are_acknowledged_as_tencent_documents(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Tencent's topology docs show the gateway answering `change` with `{"type": "change", "result": 0}`; the
    console's search switch (`search_devices`) is answered the same way (old code: `change` got no answer and
    `search_devices` was logged as malformed). A search changes nothing: this gateway has no radio."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path) as gateway:
        await cloud.console.unbind(GATEWAY.key, LIGHTS[1].key)
        assert await cloud.console.search_devices(GATEWAY.key, searching=True)
        assert await cloud.console.search_devices(GATEWAY.key, searching=False)

        async def answers() -> list[object]:
            messages = await cloud.console.messages(GATEWAY.key)
            replies: list[object] = [
                m.payload
                for m in messages
                if m.direction == "in"
                and isinstance(m.payload, dict)
                and m.payload.get("type") in {"change", "search_devices"}
            ]
            return replies if len(replies) == 3 else []

        assert await eventually(answers) == [
            {"type": "change", "result": 0},
            {"type": "search_devices", "result": 0},
            {"type": "search_devices", "result": 0},
        ]
        assert not gateway.engine.is_online(LIGHTS[1])
        assert all(gateway.engine.is_online(d) for d in SEED if d != LIGHTS[1])
    assert await cloud.console.violations() == []
    assert "malformed" not in caplog.text
    assert "search for new sub-devices: add them in Home Assistant" in caplog.text


async def test_many_sub_devices_come_online_in_bounded_batches(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """120 sub-devices come online with a handful of batched requests, not 120 of them."""
    cloud = await seed_cloud(emulator, http, bind=False)
    devices = [DeviceId("MANYPID001", f"node{i:03d}") for i in range(120)]
    await asyncio.gather(*(cloud.console.add_device(d.product_id, d.device_name) for d in devices))
    for device in devices:
        await cloud.console.bind(GATEWAY.key, device.key)
    async with running_gateway(
        cloud, tmp_path, sub_devices=[SubDevice(d, "1.0") for d in devices]
    ) as gateway:
        assert all(gateway.engine.is_online(d) for d in devices)
        messages = await cloud.console.messages(GATEWAY.key)
        online_requests = [
            m.payload for m in messages if m.direction == "in" and m.payload.get("type") == "online"
        ]
        assert len(online_requests) == 3  # batches of 50
        assert max(len(r["payload"]["devices"]) for r in online_requests) == 50


async def test_a_secret_given_later_binds_the_device_without_touching_its_ota_state(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """`update_sub_device` with a secret binds an unbound device and brings it online; its OTA state stays."""
    cloud = await seed_cloud(emulator, http, bind=False)
    async with running_gateway(cloud, tmp_path, sub_devices=[SubDevice(LIGHTS[0], "0.1")]) as gateway:
        engine = gateway.engine
        assert not engine.is_online(LIGHTS[0])
        before = engine.ota.snapshot(LIGHTS[0])
        await engine.update_sub_device(SubDevice(LIGHTS[0], "0.1", secret=cloud.secrets[LIGHTS[0]]))
        assert engine.is_online(LIGHTS[0])
        assert (
            await cloud.console.get_device(LIGHTS[0].product_id, LIGHTS[0].device_name)
        ).gateway == GATEWAY.key
        assert engine.ota.snapshot(LIGHTS[0]) == before
        await engine.stop()
        await engine.stop()  # twice is fine
        assert not engine.connected


async def test_an_update_of_an_unknown_sub_device_adds_it(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """`update_sub_device` for a device the engine does not know yet adds it: online, listed, version reported."""
    cloud = await seed_cloud(emulator, http)
    async with running_gateway(cloud, tmp_path, sub_devices=[]) as gateway:
        engine = gateway.engine
        assert engine.gateway == GATEWAY
        assert engine.sub_devices == []
        await engine.update_sub_device(SubDevice(LIGHTS[0], "0.1"))
        assert engine.sub_devices == [SubDevice(LIGHTS[0], "0.1")]
        assert engine.is_online(LIGHTS[0])
        assert SubDeviceStatus(LIGHTS[0], True, 0) in gateway.events
        status = await cloud.console.get_device(LIGHTS[0].product_id, LIGHTS[0].device_name)
        assert status.online


async def test_a_bind_with_a_wrong_secret_is_logged_and_the_device_stays_offline(
    emulator: Emulator, http: aiohttp.ClientSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unbound device whose secret the cloud rejects: the error is logged, the device stays offline (-1),
    and its status says why the bind was refused (803: the signature is wrong)."""
    cloud = await seed_cloud(emulator, http, bind=False)
    subs = [SubDevice(LIGHTS[0], "0.1", secret=WRONG_SECRET)]
    with caplog.at_level(logging.ERROR, logger=ENGINE_LOGGER):
        async with running_gateway(cloud, tmp_path, sub_devices=subs) as gateway:
            assert not gateway.engine.is_online(LIGHTS[0])
            assert gateway.events[-1] == ConnectionChanged(connected=True)
            assert SubDeviceStatus(LIGHTS[0], False, -1, bind_refused=803) in gateway.events
            status = await cloud.console.get_device(LIGHTS[0].product_id, LIGHTS[0].device_name)
            assert status.gateway is None
    failures = [r.getMessage() for r in caplog.records if "Could not bind" in r.getMessage()]
    assert len(failures) == 1
    assert "LIGHTPID01/light1" in failures[0]
    assert WRONG_SECRET not in caplog.text


# --- against a scripted cloud, for what the emulator never sends ---------------------------------------------
# The test plays the cloud's side of the result topic (the engine's `handle_message` is how the session hands
# it messages), so it can send what the emulator never would.


class ScriptedCloud:
    """Records what the gateway publishes and answers each request with the scripted replies."""

    def __init__(self, reply: Callable[[dict[str, Any]], list[bytes]] | None = None) -> None:
        """`reply` maps a sent message to the raw payloads the cloud sends back (none: silence)."""
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.pushes: list[GatewayPush] = []
        self._reply = reply
        self.ops = GatewayOperations(GATEWAY, self.publish, self.pushes.append, timeout_s=0.1)

    async def publish(self, topic: str, payload: str, qos: int) -> None:
        """The gateway's publish: record, then deliver the scripted replies."""
        message = json.loads(payload)
        self.sent.append((topic, message))
        if self._reply is not None:
            for raw in self._reply(message):
                self.ops.handle_message(raw)


def _entry(product_id: object, device_name: object, **extra: Any) -> dict[str, Any]:
    return {"product_id": product_id, "device_name": device_name, **extra}


async def test_a_silent_cloud_times_out_describe_and_unbind_after_one_request() -> None:
    """No answer: each request fails with an error saying what went unanswered, after sending it once."""
    cloud = ScriptedCloud()
    with pytest.raises(OperationTimeoutError, match="did not list the sub-devices in time"):
        await cloud.ops.describe_sub_devices()
    with pytest.raises(OperationTimeoutError, match="did not answer unbind of LIGHTPID01/light1 in time"):
        await cloud.ops.unbind(LIGHTS[0])
    assert [(t, m["type"]) for t, m in cloud.sent] == [
        ("$gateway/operation/GWPROD0001/gateway1", "describe_sub_devices"),
        ("$gateway/operation/GWPROD0001/gateway1", "unbind"),
    ]


async def test_malformed_replies_are_skipped_and_the_good_one_still_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Garbage on the result topic is logged and ignored; the well-formed reply after it resolves the request."""

    def reply(message: dict[str, Any]) -> list[bytes]:
        good = {
            "type": "online",
            "payload": {
                "devices": [
                    "not an entry",
                    _entry("bad pid!", "light1", result=0),
                    _entry("LIGHTPID01", "light1", result=0),
                    _entry("LIGHTPID01", "light2", result=-1),
                ]
            },
        }
        return [
            b"not json",
            b"[1, 2]",
            json.dumps({"type": "online", "payload": ["x"]}).encode(),
            json.dumps({"type": "reboot"}).encode(),
            json.dumps({"payload": {}}).encode(),
            json.dumps({"type": "online", "payload": {"devices": "everything"}}).encode(),
            json.dumps(good).encode(),
        ]

    cloud = ScriptedCloud(reply)
    with caplog.at_level(logging.WARNING):
        outcome = await cloud.ops.online([LIGHTS[0], LIGHTS[1]])

    assert outcome.results == {LIGHTS[0]: 0, LIGHTS[1]: -1}
    assert outcome.succeeded() == [LIGHTS[0]]
    assert outcome.unanswered == ()
    malformed = [r for r in caplog.records if "malformed gateway message" in r.getMessage()]
    assert len(malformed) == 5
    assert any("payload is not an object" in r.getMessage() for r in malformed)
    assert any("not a JSON object" in r.getMessage() for r in malformed)
    assert any("Ignoring a device entry" in r.getMessage() for r in caplog.records)


async def test_a_console_push_passes_on_only_its_valid_devices() -> None:
    """A console bind push naming an invalid device passes on the valid ones; one with none is dropped."""
    cloud = ScriptedCloud()
    cloud.ops.handle_message(
        json.dumps(
            {
                "type": "change",
                "payload": {
                    "status": 1,
                    "devices": [
                        _entry("", "x"),
                        _entry("LIGHTPID01", "light2"),
                    ],
                },
            }
        ).encode()
    )
    cloud.ops.handle_message(
        json.dumps(
            {
                "type": "change",
                "payload": {
                    "status": 0,
                    "devices": [
                        _entry("LIGHTPID01", "bad/name"),
                    ],
                },
            }
        ).encode()
    )
    assert cloud.pushes == [SubDevicesChanged(bound=True, devices=(LIGHTS[1],))]
