"""Gateway operations (spec §2): bring sub-devices online, bind them, and hear what the console changed.

The cloud's replies carry no request id: a reply is matched to its request by operation type and device.
Requests for many devices go in batches with a bounded number in flight, so a gateway with a thousand
sub-devices comes online without flooding the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
import json
import logging
import secrets
import time
from typing import Any

from custom_components.tencent_iot_gateway.engine.errors import (
    GatewayOperationError,
    InvalidFieldError,
    OperationTimeoutError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.auth import SignMethod, bind_signature
from custom_components.tencent_iot_gateway.engine.mqtt.topics import gateway_operation

_LOGGER = logging.getLogger(__name__)

OPERATION_TIMEOUT_S = 20.0
BATCH_SIZE = 50
MAX_IN_FLIGHT = 4
# Results of a sub-device in an operation's answer (spec §2). One place for each: the engine and the HA layer
# both tell "not bound to this gateway" apart from other refusals.
RESULT_NOT_BOUND = -1
_ALREADY_BOUND = 809

type Publish = Callable[[str, str, int], Awaitable[None]]


class Operation(StrEnum):
    """The `type` of a gateway operation message."""

    ONLINE = "online"
    OFFLINE = "offline"
    BIND = "bind"
    UNBIND = "unbind"
    DESCRIBE = "describe_sub_devices"
    CHANGE = "change"
    UNBIND_ALL = "unbind_all"
    SEARCH = "search_devices"


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Per-device results of a multi-device operation; `unanswered` got no reply in time."""

    results: dict[DeviceId, int] = field(default_factory=dict)
    unanswered: tuple[DeviceId, ...] = ()

    def succeeded(self) -> list[DeviceId]:
        """Devices the cloud answered with result 0."""
        return [device for device, code in self.results.items() if code == 0]


@dataclass(frozen=True, slots=True)
class SubDevicesChanged:
    """The console bound (`bound` True) or unbound sub-devices of this gateway."""

    bound: bool
    devices: tuple[DeviceId, ...]


@dataclass(frozen=True, slots=True)
class AllUnbound:
    """The console unbound every sub-device of this gateway."""


@dataclass(frozen=True, slots=True)
class SearchRequested:
    """The console asks the gateway to start (`searching` True) or stop looking for new sub-devices."""

    searching: bool


type GatewayPush = SubDevicesChanged | AllUnbound | SearchRequested


def _device_entry(device: DeviceId) -> dict[str, Any]:
    return {"product_id": device.product_id, "device_name": device.device_name}


def _parse_devices(entries: object) -> list[tuple[DeviceId, dict[str, Any]]]:
    """The valid device entries of a payload, each with its raw dict; invalid entries are logged and skipped."""
    if not isinstance(entries, list):
        return []
    parsed: list[tuple[DeviceId, dict[str, Any]]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        try:
            device = DeviceId(str(entry.get("product_id", "")), str(entry.get("device_name", "")))
        except InvalidFieldError as err:
            _LOGGER.warning("Ignoring a device entry from the cloud: %s", err)
            continue
        parsed.append((device, entry))
    return parsed


def _decode(payload: bytes) -> tuple[Operation, dict[str, Any]]:
    """Type and body of a result-topic message; raises ValueError, KeyError or TypeError when malformed."""
    message = json.loads(payload)
    if not isinstance(message, dict):
        raise TypeError("the message is not a JSON object")
    kind = Operation(message["type"])
    body = message.get("payload") or {}
    if not isinstance(body, dict):
        raise TypeError("payload is not an object")
    return kind, body


class GatewayOperations:
    """Sends operations on `$gateway/operation/...` and resolves them from `$gateway/operation/result/...`."""

    def __init__(
        self,
        gateway: DeviceId,
        publish: Publish,
        on_push: Callable[[GatewayPush], None],
        *,
        timeout_s: float = OPERATION_TIMEOUT_S,
        batch_size: int = BATCH_SIZE,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        """Operate `gateway` through `publish(topic, payload, qos)`; pushes from the console go to `on_push`."""
        self._gateway = gateway
        self._topic = gateway_operation(gateway)
        self._publish = publish
        self._on_push = on_push
        self._timeout_s = timeout_s
        self._batch_size = batch_size
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._waiting: dict[tuple[Operation, DeviceId | None], list[asyncio.Future[Any]]] = {}

    async def online(self, devices: Sequence[DeviceId]) -> BatchResult:
        """Tell the cloud these sub-devices are online; -1 in the results means not bound to this gateway."""
        return await self._batched(Operation.ONLINE, devices)

    async def offline(self, devices: Sequence[DeviceId]) -> BatchResult:
        """Tell the cloud these sub-devices went offline."""
        return await self._batched(Operation.OFFLINE, devices)

    async def bind(
        self, device: DeviceId, device_secret: str, *, method: SignMethod = SignMethod.HMAC_SHA256
    ) -> None:
        """Bind a sub-device to this gateway, signed with its secret; already bound here counts as success."""
        timestamp = int(time.time())
        nonce = secrets.randbelow(2**31)
        entry = _device_entry(device) | {
            "signature": bind_signature(
                device, device_secret, random=nonce, timestamp=timestamp, method=method
            ),
            "random": nonce,
            "timestamp": timestamp,
            "signmethod": method.value,
            "authtype": "psk",
        }
        code = await self._single(Operation.BIND, device, entry)
        if code != 0 and abs(code) != _ALREADY_BOUND:
            raise GatewayOperationError(Operation.BIND, device.key, code)

    async def unbind(self, device: DeviceId) -> None:
        """Unbind a sub-device from this gateway."""
        code = await self._single(Operation.UNBIND, device, _device_entry(device))
        if code != 0:
            raise GatewayOperationError(Operation.UNBIND, device.key, code)

    async def describe_sub_devices(self) -> list[DeviceId]:
        """The sub-devices the cloud has bound to this gateway."""
        future = self._expect(Operation.DESCRIBE, None)
        async with self._in_flight:
            try:
                await self._publish(self._topic, json.dumps({"type": Operation.DESCRIBE.value}), 1)
                async with asyncio.timeout(self._timeout_s):
                    devices: list[DeviceId] = await future
            except TimeoutError:
                raise OperationTimeoutError("the cloud did not list the sub-devices in time") from None
            finally:
                self._forget(Operation.DESCRIBE, None, future)
        return devices

    def handle_message(self, payload: bytes) -> None:
        """Route one message of the result topic: a reply to a waiting request, or a console push."""
        try:
            kind, body = _decode(payload)
        except (ValueError, KeyError, TypeError) as err:
            _LOGGER.warning("Ignoring a malformed gateway message from the cloud (%s): %.200r", err, payload)
            return
        if kind is Operation.DESCRIBE:
            self._resolve(kind, None, [device for device, _ in _parse_devices(body.get("devices"))])
        elif kind is Operation.CHANGE:
            status = body.get("status")
            changed = tuple(device for device, _ in _parse_devices(body.get("devices")))
            if status in (0, 1) and changed:
                self._on_push(SubDevicesChanged(bound=status == 1, devices=changed))
        elif kind is Operation.UNBIND_ALL:
            self._on_push(AllUnbound())
        elif kind is Operation.SEARCH:
            status = body.get("status")
            if status in (0, 1) and not isinstance(status, bool):
                self._on_push(SearchRequested(searching=status == 1))
            else:
                _LOGGER.warning(
                    "Ignoring a search_devices request without a status of 0 or 1: %.200r", payload
                )
        else:
            for device, entry in _parse_devices(body.get("devices")):
                result = entry.get("result")
                if isinstance(result, int) and not isinstance(result, bool):
                    self._resolve(kind, device, result)

    async def acknowledge(self, push: GatewayPush) -> None:
        """Answer a console push as Tencent's topology docs ask: `unbind_all` with `payload.result`, `change`
        and `search_devices` with a top-level `result` (0: done)."""
        match push:
            case AllUnbound():
                reply: dict[str, Any] = {"type": Operation.UNBIND_ALL.value, "payload": {"result": 0}}
            case SubDevicesChanged():
                reply = {"type": Operation.CHANGE.value, "result": 0}
            case SearchRequested():
                reply = {"type": Operation.SEARCH.value, "result": 0}
        await self._publish(self._topic, json.dumps(reply), 1)

    # -- plumbing -----------------------------------------------------------------------------------------

    async def _single(self, kind: Operation, device: DeviceId, entry: dict[str, Any]) -> int:
        future = self._expect(kind, device)
        async with self._in_flight:
            try:
                await self._publish(self._topic, self._message(kind, [entry]), 1)
                async with asyncio.timeout(self._timeout_s):
                    code: int = await future
            except TimeoutError:
                raise OperationTimeoutError(f"the cloud did not answer {kind} of {device} in time") from None
            finally:
                self._forget(kind, device, future)
        return code

    async def _batched(self, kind: Operation, devices: Sequence[DeviceId]) -> BatchResult:
        batches = [devices[i : i + self._batch_size] for i in range(0, len(devices), self._batch_size)]
        outcomes = await asyncio.gather(*(self._batch(kind, batch) for batch in batches))
        results: dict[DeviceId, int] = {}
        unanswered: list[DeviceId] = []
        for outcome in outcomes:
            results.update(outcome.results)
            unanswered.extend(outcome.unanswered)
        return BatchResult(results, tuple(unanswered))

    async def _batch(self, kind: Operation, devices: Sequence[DeviceId]) -> BatchResult:
        futures = {device: self._expect(kind, device) for device in devices}
        async with self._in_flight:
            try:
                await self._publish(self._topic, self._message(kind, map(_device_entry, devices)), 1)
                await asyncio.wait(futures.values(), timeout=self._timeout_s)
            except OperationTimeoutError as err:
                # No PUBACK: the request may or may not have arrived; its devices count as unanswered.
                _LOGGER.warning(
                    "Sending %s for %d sub-device(s) was not acknowledged: %s", kind, len(devices), err
                )
            finally:
                for device, future in futures.items():
                    self._forget(kind, device, future)
        results = {d: f.result() for d, f in futures.items() if f.done() and not f.cancelled()}
        unanswered = tuple(d for d in devices if d not in results)
        if unanswered:
            _LOGGER.warning("The cloud did not answer %s for %d sub-device(s)", kind, len(unanswered))
        return BatchResult(results, unanswered)

    @staticmethod
    def _message(kind: Operation, entries: Iterable[dict[str, Any]]) -> str:
        return json.dumps({"type": kind.value, "payload": {"devices": list(entries)}})

    def _expect(self, kind: Operation, device: DeviceId | None) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((kind, device), []).append(future)
        return future

    def _forget(self, kind: Operation, device: DeviceId | None, future: asyncio.Future[Any]) -> None:
        waiting = self._waiting.get((kind, device))
        if waiting is None:
            return
        if future in waiting:
            waiting.remove(future)
        if not waiting:
            del self._waiting[(kind, device)]
        future.cancel()

    def _resolve(self, kind: Operation, device: DeviceId | None, value: object) -> None:
        waiting = self._waiting.get((kind, device))
        if not waiting:
            _LOGGER.debug("Unsolicited %s reply for %s", kind, device or self._gateway)
            return
        for future in waiting:
            if not future.done():
                future.set_result(value)
