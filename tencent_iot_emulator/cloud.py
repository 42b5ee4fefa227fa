"""The cloud side of spec §2-§3: gateway operations, OTA messages, presence, message log and violations.

It talks to mosquitto as one privileged client. That client is a minimal asyncio MQTT 3.1.1 client written
here rather than paho: paho's network loop wants a thread (or hand-driving its socket through
add_reader/add_writer plus loop_misc timers), while the cloud needs only CONNECT, SUBSCRIBE, QoS 0/1 PUBLISH
and PUBACK over a loopback link to a broker we start ourselves; ~100 lines of asyncio do that with no thread
and no blocking call. Keepalive is 0, so no PINGREQ timer is needed either.

Presence: mosquitto's plugin sends `connect`/`disconnect` events for every device client straight to this
client (on `$emulator/events`), so a directly connected device (or gateway) is online while it has a session;
a sub-device is online from a successful `online` operation through its gateway until `offline`, an unbind,
or its gateway's disconnect. ACL and login refusals arrive the same way and become violations.
"""

from __future__ import annotations

import asyncio
import base64
from collections import deque
from collections.abc import AsyncIterator
import contextlib
from dataclasses import dataclass
import hashlib
import hmac
import json
import logging
from pathlib import Path
import struct
import time
from typing import Any, Protocol

from .broker import CloudCredential
from .drops import UplinkDrops
from .firmware import Firmware
from .registry import Registry, device_key
from .tasks import Progress, ProgressState, Task, TaskDevice, TaskManager
from .things import ThingCloud

_LOGGER = logging.getLogger(__name__)

EVENT_TOPIC = "$emulator/events"
MESSAGE_LOG_LIMIT = 5000
VERSION_MAX = 32

# Gateway operation results (spec §2).
RESULT_OK = 0
RESULT_NOT_BOUND = -1
RESULT_PARAMETER = 801
RESULT_NO_DEVICE = 802
RESULT_BAD_SIGNATURE = 803
RESULT_SIGNMETHOD = 804
RESULT_BOUND_ELSEWHERE = 806
RESULT_NOT_BINDABLE = 807
RESULT_ALREADY_BOUND = 809

_SIGN_DIGESTS = {"hmacsha1": hashlib.sha1, "hmacsha256": hashlib.sha256}


class FirmwareSource(Protocol):
    """What the cloud needs from E2's firmware store and server to build `update_firmware`."""

    def find(self, product_id: str, version: str) -> Firmware | None:
        """The stored image, if uploaded."""

    def url(self, firmware: Firmware, scheme: str) -> str:
        """A fresh pre-signed URL for it, on the https or http port."""


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One MQTT message between the cloud and a device, as `/api/messages` shows it."""

    topic: str
    direction: str  # "in" (device -> cloud) or "out" (cloud -> device)
    payload: Any
    time: float

    def to_json(self) -> dict[str, Any]:
        """The console's view."""
        return {"topic": self.topic, "direction": self.direction, "payload": self.payload, "time": self.time}


@dataclass(frozen=True, slots=True)
class Violation:
    """Something a device did that Tencent would refuse: `acl`, `auth`, `protocol`, `limit` or `template`."""

    time: float
    kind: str
    client: str
    topic: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The console's view."""
        return {
            "time": self.time,
            "kind": self.kind,
            "client": self.client,
            "topic": self.topic,
            "reason": self.reason,
        }


def topic_owner(topic: str) -> tuple[str, str] | None:
    """(product id, device name) a device topic belongs to; the same shapes as the broker plugin's ACL."""
    levels = topic.split("/")
    if levels[0].startswith("$"):
        match levels:
            case ["$ota", "update" | "report", pid, dn]:
                pass
            case ["$gateway", "operation", pid, dn] | ["$gateway", "operation", "result", pid, dn]:
                pass
            case ["$thing", "up" | "down", kind, pid, dn] if kind:
                pass
            case _:
                return None
    elif len(levels) >= 3:
        pid, dn = levels[0], levels[1]
    else:
        return None
    return (pid, dn) if pid and dn else None


def _parse_payload(payload: bytes) -> tuple[Any, str | None]:
    """(parsed JSON or text, reason it is not JSON)."""
    try:
        return json.loads(payload), None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return payload.decode("utf-8", errors="replace"), f"malformed JSON: {err}"


class MqttLink:
    """A minimal MQTT 3.1.1 client over asyncio streams (see the module docstring for why)."""

    def __init__(self) -> None:
        """Create an unconnected link."""
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._packet_ids = 0
        self._subacks: dict[int, asyncio.Future[bytes]] = {}

    async def connect(self, host: str, port: int, credential: CloudCredential) -> None:
        """CONNECT with a clean session and no keepalive; raise on refusal."""
        self._reader, self._writer = await asyncio.open_connection(host, port)
        body = (
            _utf8("MQTT")
            + bytes([4, 0xC2])  # protocol level 4; flags: username, password, clean session
            + struct.pack("!H", 0)
            + _utf8(credential.client_id)
            + _utf8(credential.username)
            + _utf8(credential.password)
        )
        await self._send(0x10, body)
        header, payload = await self._read_packet()
        if header >> 4 != 2 or len(payload) != 2 or payload[1] != 0:
            raise ConnectionError(f"the broker refused the cloud client: {payload.hex()}")

    async def subscribe(self, filters: list[str]) -> None:
        """SUBSCRIBE at QoS 1; the SUBACK is awaited by the read loop, which must be running."""
        packet_id = self._next_id()
        body = struct.pack("!H", packet_id) + b"".join(_utf8(f) + b"\x01" for f in filters)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._subacks[packet_id] = future
        await self._send(0x82, body)
        granted = await asyncio.wait_for(future, 10)
        if any(code == 0x80 for code in granted):
            raise ConnectionError("the broker refused a cloud subscription")

    async def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        """PUBLISH (QoS 0 or 1; the PUBACK is not waited for, the link is loopback)."""
        body = _utf8(topic)
        if qos:
            body += struct.pack("!H", self._next_id())
        await self._send(0x30 | (qos << 1), body + payload)

    async def messages(self) -> AsyncIterator[tuple[str, bytes]]:
        """Yield (topic, payload) for every PUBLISH, acknowledging QoS 1 ones; ends when the link closes."""
        while True:
            try:
                header, body = await self._read_packet()
            except asyncio.IncompleteReadError, ConnectionError:
                return
            kind = header >> 4
            if kind == 3:
                qos = (header >> 1) & 3
                (topic_len,) = struct.unpack_from("!H", body)
                topic = body[2 : 2 + topic_len].decode("utf-8", errors="replace")
                offset = 2 + topic_len
                if qos:
                    try:
                        await self._send(0x40, body[offset : offset + 2])
                    except ConnectionError, OSError:
                        return  # closed while acknowledging: the link is over, like a failed read
                    offset += 2
                yield topic, body[offset:]
            elif kind == 9:
                (packet_id,) = struct.unpack_from("!H", body)
                future = self._subacks.pop(packet_id, None)
                if future is not None and not future.done():
                    future.set_result(body[2:])

    async def close(self) -> None:
        """DISCONNECT and close the socket."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        with contextlib.suppress(OSError, RuntimeError):
            writer.write(b"\xe0\x00")
            writer.close()
            await writer.wait_closed()

    def _next_id(self) -> int:
        self._packet_ids = self._packet_ids % 0xFFFF + 1
        return self._packet_ids

    async def _send(self, header: int, body: bytes) -> None:
        if self._writer is None:
            raise ConnectionError("the cloud client is not connected")
        self._writer.write(bytes([header]) + _varint(len(body)) + body)
        await self._writer.drain()

    async def _read_packet(self) -> tuple[int, bytes]:
        if self._reader is None:
            raise ConnectionError("the cloud client is not connected")
        header = (await self._reader.readexactly(1))[0]
        length = 0
        for shift in range(0, 28, 7):
            byte = (await self._reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
        return header, await self._reader.readexactly(length)


def _utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class Cloud:
    """Tencent's cloud logic behind the broker; also the `Sender` of OTA tasks."""

    def __init__(
        self,
        registry: Registry,
        credential: CloudCredential,
        firmware: FirmwareSource,
        *,
        min_task_timeout_s: float,
        state_dir: Path,
    ) -> None:
        """Serve the devices of `registry`; log in to the broker with `credential`; save into `state_dir`."""
        self._registry = registry
        self._credential = credential
        self._firmware = firmware
        self._link = MqttLink()
        self._reader_task: asyncio.Task[None] | None = None
        self.tasks = TaskManager(self, min_timeout_s=min_task_timeout_s)
        self._sessions: dict[str, int] = {}  # device key -> open MQTT sessions
        self._via_gateway: dict[str, str] = {}  # sub-device key -> gateway key it is online through
        self._versions: dict[str, str] = {}
        self._messages: dict[str, deque[MessageRecord]] = {}
        self._violations: list[Violation] = []
        self.drops = UplinkDrops()
        self.things = ThingCloud(
            state_dir, publish=self._publish, is_online=self.is_online, violation=self.record_violation
        )
        self._stopping = False

    async def start(self) -> None:
        """Connect, subscribe to every device-to-cloud topic, and start handling messages."""
        await self.things.load()
        await self._link.connect("127.0.0.1", self._credential.port, self._credential)
        self._reader_task = asyncio.create_task(self._read_loop(), name="tencent-iot-emulator-cloud")
        # `+/+/#` never matches a `$` topic, so each `$` family is named.
        await self._link.subscribe(["$ota/report/+/+", "$gateway/operation/+/+", "$thing/up/+/+/+", "+/+/#"])

    async def stop(self) -> None:
        """Disconnect, stop the reader and cancel task timers."""
        self._stopping = True
        self.tasks.close()
        await self._link.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
            self._reader_task = None

    # -- what the console and the tasks ask --------------------------------------------------------------

    def is_online(self, key: str) -> bool:
        """Whether the device is connected itself, or online through its gateway."""
        return self._sessions.get(key, 0) > 0 or key in self._via_gateway

    def version_of(self, key: str) -> str | None:
        """The version the device last reported."""
        return self._versions.get(key)

    def device_names(self, product_id: str) -> list[str]:
        """Names of the product's registered devices."""
        return [d.device_name for d in self._registry.devices(product_id)]

    def messages(self, key: str) -> list[dict[str, Any]]:
        """Every message in and out for a device, oldest first."""
        return [record.to_json() for record in self._messages.get(key, ())]

    def violations(self) -> list[dict[str, Any]]:
        """Every ACL, login and protocol violation, oldest first."""
        return [violation.to_json() for violation in self._violations]

    def record_violation(self, kind: str, client: str, topic: str, reason: str) -> None:
        """Remember a violation (the console lists them)."""
        _LOGGER.info("violation (%s) by %s on %s: %s", kind, client, topic, reason)
        self._violations.append(Violation(time.time(), kind, client, topic, reason))

    async def send_update(self, task: Task, entry: TaskDevice) -> None:
        """Push `update_firmware` with a fresh signed URL (`Sender` protocol of the tasks)."""
        spec = task.spec
        firmware = self._firmware.find(spec.product_id, spec.version)
        if firmware is None:
            _LOGGER.warning(
                "firmware %s %s vanished; cannot push task %s", spec.product_id, spec.version, task.task_id
            )
            return
        message = {
            "file_size": firmware.size,
            "md5sum": firmware.md5,
            "type": "update_firmware",
            "url": self._firmware.url(firmware, spec.url_scheme),
            "version": firmware.version,
        }
        await self._publish(f"$ota/update/{entry.product_id}/{entry.device_name}", message)

    async def subdevices_changed(self, gateway_key: str, subs: list[str], *, bound: bool) -> bool:
        """After a console bind/unbind: forget unbound sub-devices' presence, push `change` if the gateway is up."""
        if not bound:
            for sub in subs:
                if self._via_gateway.get(sub) == gateway_key:
                    del self._via_gateway[sub]
        if not subs or self._sessions.get(gateway_key, 0) <= 0:
            return False
        devices = [_device_entry(sub) for sub in subs]
        payload = {"type": "change", "payload": {"status": 1 if bound else 0, "devices": devices}}
        await self._publish(f"$gateway/operation/result/{gateway_key}", payload)
        return True

    async def push_unbind_all(self, gateway_key: str, subs: list[str]) -> bool:
        """After a console unbind-all: forget the sub-devices' presence, push `unbind_all` if the gateway is up."""
        for sub in subs:
            if self._via_gateway.get(sub) == gateway_key:
                del self._via_gateway[sub]
        if self._sessions.get(gateway_key, 0) <= 0:
            return False
        await self._publish(f"$gateway/operation/result/{gateway_key}", {"type": "unbind_all"})
        return True

    async def push_search(self, gateway_key: str, *, searching: bool) -> bool:
        """The console's "search sub-devices" switch: push `search_devices` if the gateway is up."""
        if self._sessions.get(gateway_key, 0) <= 0:
            return False
        payload = {"type": "search_devices", "payload": {"status": 1 if searching else 0}}
        await self._publish(f"$gateway/operation/result/{gateway_key}", payload)
        return True

    # -- MQTT in -----------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        async for topic, payload in self._link.messages():
            try:
                await self._handle(topic, payload)
            except Exception:
                # One bad message must never take the cloud down.
                _LOGGER.exception("error while handling a message on %s", topic)
                self.record_violation("protocol", "", topic, "the cloud could not process this message")
        if not self._stopping:
            _LOGGER.error(
                "the broker closed the cloud client's connection; the cloud is deaf until a restart"
            )

    async def _handle(self, topic: str, payload: bytes) -> None:
        if topic == EVENT_TOPIC:
            self._on_event(payload)
            return
        owner = topic_owner(topic)
        if owner is None:
            return
        key = device_key(*owner)
        data, error = _parse_payload(payload)
        if error is None and self.drops.take(key, data):
            self._log(key, topic, "dropped", data)
            return
        self._log(key, topic, "in", data)
        if error is not None:
            self.record_violation("protocol", key, topic, error)
            return
        levels = topic.split("/")
        if levels[0] == "$gateway":
            await self._on_gateway_operation(owner, topic, data)
        elif levels[0] == "$ota":
            await self._on_ota_report(owner, topic, data)
        elif levels[0] == "$thing":
            await self.things.on_uplink(key, topic, data)

    def _on_event(self, payload: bytes) -> None:
        event = json.loads(payload)
        client = str(event.get("client", ""))
        device = self._registry.by_client_id(client)
        key = device.key if device is not None else client
        match event.get("event"):
            case "connect":
                self._sessions[key] = self._sessions.get(key, 0) + 1
            case "disconnect":
                remaining = max(0, self._sessions.get(key, 0) - 1)
                self._sessions[key] = remaining
                if remaining == 0:
                    for sub in [s for s, gw in self._via_gateway.items() if gw == key]:
                        del self._via_gateway[sub]
            case "publish_denied":
                self.record_violation(
                    "acl", key, event.get("topic", ""), f"publish dropped: {event.get('reason')}"
                )
            case "subscribe_denied":
                self.record_violation(
                    "acl", key, event.get("topic", ""), f"subscription refused: {event.get('reason')}"
                )
            case "auth":
                self.record_violation("auth", key, "", f"login refused: {event.get('reason')}")
            case "limit":
                self.record_violation("limit", key, event.get("topic", ""), str(event.get("reason")))

    # -- gateway operations (spec §2) --------------------------------------------------------------------

    async def _on_gateway_operation(self, gateway: tuple[str, str], topic: str, data: Any) -> None:
        gateway_key = device_key(*gateway)
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self.record_violation(
                "protocol", gateway_key, topic, "a gateway operation must be an object with a type"
            )
            return
        kind = data["type"]
        if kind == "describe_sub_devices":
            devices = [_device_entry(sub) for sub in self._registry.subdevices_of(gateway_key)]
            await self._reply(gateway_key, {"type": kind, "payload": {"devices": devices}})
            return
        if kind == "unbind_all":
            result = data.get("payload", {}).get("result") if isinstance(data.get("payload"), dict) else None
            if isinstance(result, bool) or not isinstance(result, int):
                self.record_violation(
                    "protocol", gateway_key, topic, "unbind_all reply needs an int payload.result"
                )
            return
        if kind in ("change", "search_devices"):
            # The gateway's answer to a push of ours (Tencent's topology docs: a top-level int `result`).
            result = data.get("result")
            if isinstance(result, bool) or not isinstance(result, int):
                self.record_violation("protocol", gateway_key, topic, f"{kind} reply needs an int result")
            return
        if kind not in ("online", "offline", "bind", "unbind"):
            self.record_violation("protocol", gateway_key, topic, f"unknown gateway operation type {kind!r}")
            return
        entries = data.get("payload", {}).get("devices") if isinstance(data.get("payload"), dict) else None
        if not isinstance(entries, list) or not entries:
            self.record_violation(
                "protocol", gateway_key, topic, f"{kind} needs a non-empty payload.devices list"
            )
            return
        results = []
        for entry in entries:
            if not isinstance(entry, dict):
                self.record_violation(
                    "protocol", gateway_key, topic, f"{kind}: a device entry must be an object"
                )
                continue
            product_id, device_name = entry.get("product_id"), entry.get("device_name")
            if not isinstance(product_id, str) or not isinstance(device_name, str):
                self.record_violation(
                    "protocol", gateway_key, topic, f"{kind}: product_id and device_name must be strings"
                )
                if kind in ("bind", "unbind"):
                    results.append(
                        {"product_id": product_id, "device_name": device_name, "result": RESULT_PARAMETER}
                    )
                continue
            sub_key = device_key(product_id, device_name)
            match kind:
                case "online" | "offline":
                    result = self._online(gateway_key, sub_key, online=kind == "online")
                case "bind":
                    result = await self._bind(gateway_key, sub_key, entry, topic)
                case _:
                    result = await self._unbind(gateway_key, sub_key)
            results.append({"product_id": product_id, "device_name": device_name, "result": result})
        if results:
            await self._reply(gateway_key, {"type": kind, "payload": {"devices": results}})

    def _online(self, gateway_key: str, sub_key: str, *, online: bool) -> int:
        if self._registry.gateway_of(sub_key) != gateway_key:
            return RESULT_NOT_BOUND
        if online:
            self._via_gateway[sub_key] = gateway_key
        else:
            self._via_gateway.pop(sub_key, None)
        return RESULT_OK

    async def _bind(self, gateway_key: str, sub_key: str, entry: dict[str, Any], topic: str) -> int:
        sub = self._registry.by_key(sub_key)
        if sub is None:
            return RESULT_NO_DEVICE
        signature, random, timestamp = entry.get("signature"), entry.get("random"), entry.get("timestamp")
        method, authtype = entry.get("signmethod"), entry.get("authtype")
        if (
            not isinstance(signature, str)
            or isinstance(random, bool)
            or not isinstance(random, int)
            or isinstance(timestamp, bool)
            or not isinstance(timestamp, int)
            or not isinstance(method, str)
            or authtype != "psk"
        ):
            self.record_violation(
                "protocol",
                gateway_key,
                topic,
                "bind needs signature (str), random (int), timestamp (int), signmethod (str), authtype 'psk'",
            )
            return RESULT_PARAMETER
        digest = _SIGN_DIGESTS.get(method)
        if digest is None:
            return RESULT_SIGNMETHOD
        text = f"{sub.product_id}{sub.device_name};{random};{timestamp}"
        # The key is the secret's base64 text itself, not the decoded bytes (spec §2).
        expected = base64.b64encode(hmac.new(sub.secret.encode(), text.encode(), digest).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            return RESULT_BAD_SIGNATURE
        if sub_key == gateway_key:
            return RESULT_NOT_BINDABLE
        current = self._registry.gateway_of(sub_key)
        if current == gateway_key:
            return RESULT_ALREADY_BOUND
        if current is not None:
            return RESULT_BOUND_ELSEWHERE
        await self._registry.bind(gateway_key, sub_key)
        return RESULT_OK

    async def _unbind(self, gateway_key: str, sub_key: str) -> int:
        if self._registry.by_key(sub_key) is None:
            return RESULT_NO_DEVICE
        if self._registry.gateway_of(sub_key) != gateway_key:
            return RESULT_NOT_BOUND
        await self._registry.unbind(gateway_key, sub_key)
        self._via_gateway.pop(sub_key, None)
        return RESULT_OK

    async def _reply(self, gateway_key: str, message: dict[str, Any]) -> None:
        await self._publish(f"$gateway/operation/result/{gateway_key}", message)

    # -- OTA (spec §3) -----------------------------------------------------------------------------------

    async def _on_ota_report(self, device: tuple[str, str], topic: str, data: Any) -> None:
        key = device_key(*device)
        if topic.split("/")[1] != "report":
            self.record_violation("protocol", key, topic, "devices publish on $ota/report, not $ota/update")
            return
        if not isinstance(data, dict):
            self.record_violation("protocol", key, topic, "an OTA message must be a JSON object")
            return
        kind = data.get("type")
        report = data.get("report")
        if kind == "report_version":
            version = report.get("version") if isinstance(report, dict) else None
            if not isinstance(version, str) or not 1 <= len(version) <= VERSION_MAX:
                self.record_violation(
                    "protocol", key, topic, "report_version needs report.version, a 1-32 char string"
                )
                return
            self._versions[key] = version
            rsp = {
                "result_code": 0,
                "result_msg": "success",
                "type": "report_version_rsp",
                "version": version,
            }
            await self._publish(f"$ota/update/{key}", rsp)
            await self.tasks.on_report_version(device[0], device[1], version)
        elif kind == "report_progress":
            progress, reason = _parse_progress(report)
            if progress is None:
                self.record_violation("protocol", key, topic, f"report_progress: {reason}")
                return
            refusal = self.tasks.on_progress(device[0], device[1], progress)
            if refusal is not None:
                self.record_violation("protocol", key, topic, refusal)
        else:
            self.record_violation("protocol", key, topic, f"unknown OTA message type {kind!r}")

    # -- MQTT out ----------------------------------------------------------------------------------------

    async def publish_raw(self, topic: str, payload: bytes) -> None:
        """Send any bytes as the cloud: how tests and demos play a cloud that misbehaves (bad pushes)."""
        owner = topic_owner(topic)
        if owner is not None:
            self._log(device_key(*owner), topic, "out", payload.decode("utf-8", errors="replace"))
        await self._link.publish(topic, payload, qos=1)

    async def _publish(self, topic: str, message: dict[str, Any]) -> None:
        owner = topic_owner(topic)
        if owner is not None:
            self._log(device_key(*owner), topic, "out", message)
        await self._link.publish(topic, json.dumps(message, separators=(",", ":")).encode(), qos=1)

    def _log(self, key: str, topic: str, direction: str, payload: Any) -> None:
        log = self._messages.get(key)
        if log is None:
            log = self._messages[key] = deque(maxlen=MESSAGE_LOG_LIMIT)
        log.append(MessageRecord(topic, direction, payload, time.time()))


def _device_entry(key: str) -> dict[str, str]:
    product_id, device_name = key.split("/", 1)
    return {"product_id": product_id, "device_name": device_name}


def _parse_progress(report: object) -> tuple[Progress | None, str]:
    """Validate the exact shape of spec §3; (None, reason) when it is off."""
    if not isinstance(report, dict):
        return None, "report must be an object"
    version = report.get("version")
    if not isinstance(version, str) or not version:
        return None, "report.version (the target version) must be a non-empty string"
    progress = report.get("progress")
    if not isinstance(progress, dict):
        return None, "report.progress must be an object"
    try:
        state = ProgressState(str(progress.get("state")))
    except ValueError:
        return None, f"progress.state {progress.get('state')!r} is not downloading, burning, done or fail"
    code_text = progress.get("result_code")
    if not isinstance(code_text, str):
        return None, f"progress.result_code must be a string, got {type(code_text).__name__}"
    try:
        code = int(code_text)
    except ValueError:
        return None, f"progress.result_code {code_text!r} is not an integer in a string"
    message = progress.get("result_msg", "")
    if not isinstance(message, str):
        return None, f"progress.result_msg must be a string, got {type(message).__name__}"
    percent: int | None = None
    if state is ProgressState.DOWNLOADING:
        percent_text = progress.get("percent")
        if not isinstance(percent_text, str):
            return None, f"progress.percent must be a string, got {type(percent_text).__name__}"
        if not percent_text.isdigit() or not 0 <= int(percent_text) <= 100:
            return None, f"progress.percent {percent_text!r} is not 0-100"
        percent = int(percent_text)
    if state is ProgressState.FAIL and code == 0:
        return None, "a fail report needs a non-zero result_code"
    return Progress(version, state, percent, code, message), ""
