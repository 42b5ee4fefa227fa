"""Gateway operations against a scripted cloud: silence, malformed replies, and bad device entries.

The test plays the cloud's side of the result topic (the engine's `handle_message` is how the session hands
it messages), so it can send what the emulator never would.
"""

from __future__ import annotations

from collections.abc import Callable
import json
import logging
from typing import Any

import pytest

from custom_components.tencent_iot_gateway.engine.errors import OperationTimeoutError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.gateway.operations import (
    GatewayOperations,
    GatewayPush,
    SubDevicesChanged,
)

GATEWAY = DeviceId("GWPROD0001", "gateway1")
LIGHT1 = DeviceId("LIGHTPID01", "light1")
LIGHT2 = DeviceId("LIGHTPID01", "light2")


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


async def test_silent_cloud_times_out_describe_and_unbind() -> None:
    """No answer: each request fails with an error saying what went unanswered, after sending it once."""
    cloud = ScriptedCloud()
    with pytest.raises(OperationTimeoutError, match="did not list the sub-devices in time"):
        await cloud.ops.describe_sub_devices()
    with pytest.raises(OperationTimeoutError, match="did not answer unbind of LIGHTPID01/light1 in time"):
        await cloud.ops.unbind(LIGHT1)
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
        outcome = await cloud.ops.online([LIGHT1, LIGHT2])

    assert outcome.results == {LIGHT1: 0, LIGHT2: -1}
    assert outcome.succeeded() == [LIGHT1]
    assert outcome.unanswered == ()
    malformed = [r for r in caplog.records if "malformed gateway message" in r.getMessage()]
    assert len(malformed) == 5
    assert any("payload is not an object" in r.getMessage() for r in malformed)
    assert any("not a JSON object" in r.getMessage() for r in malformed)
    assert any("Ignoring a device entry" in r.getMessage() for r in caplog.records)


async def test_change_push_keeps_only_valid_devices() -> None:
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
    assert cloud.pushes == [SubDevicesChanged(bound=True, devices=(LIGHT2,))]
