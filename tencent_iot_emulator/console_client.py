"""A typed async client of the emulator's console API: used by the CLI, by tests and by the demo.

Every method returns frozen dataclasses (or None), and raises `ConsoleError(status, message)` when the console
answers anything but 2xx. Each dataclass keeps the answer's full JSON in `raw`, so fields the console adds later
are not lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass, field
import json
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import quote

import aiohttp

from .faults import FaultConfig
from .firmware import run_blocking

TaskMode = Literal["all", "devices", "list"]
UrlScheme = Literal["http", "https"]
_UPLOAD_CHUNK = 256 * 1024


class ConsoleError(Exception):
    """The console answered with a non-2xx status (or something that is not the JSON it should be)."""

    def __init__(self, status: int, message: str) -> None:
        """Keep the HTTP status and the console's message."""
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """A product known to the console, with the secret used for dynamic registration."""

    product_id: str
    product_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class DeviceCredentials:
    """A registered device and its secret (never in the repr)."""

    product_id: str
    device_name: str
    device_secret: str = field(repr=False)

    @property
    def key(self) -> str:
        """`PID/DN`."""
        return f"{self.product_id}/{self.device_name}"


@dataclass(frozen=True, slots=True)
class TaskProgress:
    """One device's state within an OTA task."""

    state: str
    percent: int | None = None
    result_code: int | None = None
    result_msg: str | None = None
    task_id: str | None = None
    # What the device reported for the task, in order: "downloading 0", "burning", "done", "fail -4".
    history: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TaskProgress:
        """Parse a per-device task entry (numbers may come as strings, as on the wire)."""
        task_id = raw.get("task_id")
        result_msg = raw.get("result_msg")
        history = raw.get("history")
        return cls(
            state=str(raw.get("state", "")),
            percent=_optional_int(raw.get("percent")),
            result_code=_optional_int(raw.get("result_code")),
            result_msg=None if result_msg is None else str(result_msg),
            task_id=None if task_id is None else str(task_id),
            history=tuple(str(h) for h in history) if isinstance(history, list) else (),
        )


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What the console shows for a device: online, reported version, gateway, current task state."""

    product_id: str
    device_name: str
    online: bool
    version: str | None
    gateway: str | None
    task: TaskProgress | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def key(self) -> str:
        """`PID/DN`."""
        return f"{self.product_id}/{self.device_name}"

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DeviceStatus:
        """Parse `GET /api/devices/{pid}/{dn}` (or one entry of `GET /api/devices`)."""
        task = raw.get("task")
        if isinstance(task, Mapping):
            progress: TaskProgress | None = TaskProgress.from_json(task)
        elif isinstance(raw.get("task_state"), str):
            progress = TaskProgress.from_json(
                {
                    "state": raw["task_state"],
                    "percent": raw.get("percent"),
                    "task_id": raw.get("task_id"),
                }
            )
        else:
            progress = None
        version = raw.get("version", raw.get("reported_version"))
        gateway = raw.get("gateway", raw.get("bound_gateway"))
        return cls(
            product_id=str(raw.get("product_id", "")),
            device_name=str(raw.get("device_name", "")),
            online=bool(raw.get("online", False)),
            version=None if version is None else str(version),
            gateway=None if gateway is None else str(gateway),
            task=progress,
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """An OTA task and the state of each of its devices (keyed `PID/DN` or device name, as the console says)."""

    task_id: str
    devices: Mapping[str, TaskProgress]
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, task_id: str, raw: Mapping[str, Any]) -> TaskStatus:
        """Parse `GET /api/tasks/{task_id}`; `devices` may be an object or a list of entries."""
        entries = raw.get("devices", {})
        devices: dict[str, TaskProgress] = {}
        if isinstance(entries, Mapping):
            devices = {
                str(k): TaskProgress.from_json(v) for k, v in entries.items() if isinstance(v, Mapping)
            }
        elif isinstance(entries, list):
            for entry in entries:
                if isinstance(entry, Mapping):
                    devices[_entry_key(entry)] = TaskProgress.from_json(entry)
        return cls(task_id=str(raw.get("task_id", task_id)), devices=devices, raw=raw)


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One MQTT message in or out of a client, as the console logged it."""

    topic: str
    direction: str
    payload: Any
    time: float
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> MessageRecord:
        """Parse one entry of `GET /api/messages`."""
        when = raw.get("time", 0)
        return cls(
            topic=str(raw.get("topic", "")),
            direction=str(raw.get("direction", "")),
            payload=raw.get("payload"),
            time=float(when) if isinstance(when, int | float) else 0.0,
            raw=raw,
        )


@dataclass(frozen=True, slots=True)
class Violation:
    """An ACL or protocol violation the emulator recorded."""

    client: str | None
    reason: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Violation:
        """Parse one entry of `GET /api/violations`."""
        client = raw.get("client", raw.get("client_id"))
        return cls(client=None if client is None else str(client), reason=str(raw.get("reason", "")), raw=raw)


@dataclass(frozen=True, slots=True)
class ControlRecord:
    """A control the console sent to a device, and the device's answer (`reply_code` None: none yet)."""

    client_token: str
    params: Mapping[str, Any]
    delivered: bool
    pending: bool
    reply_code: int | None
    reply_status: str | None
    sent_at: float = 0.0  # when the cloud sent it (the emulator's `time.time()`)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ControlRecord:
        """Parse one control of `GET /api/devices/{pid}/{dn}/properties` (or the answer to a control)."""
        reply = raw.get("reply")
        params = raw.get("params")
        return cls(
            client_token=str(raw.get("clientToken", "")),
            params=params if isinstance(params, Mapping) else {},
            delivered=bool(raw.get("delivered")),
            pending=bool(raw.get("pending")),
            reply_code=_optional_int(reply.get("code")) if isinstance(reply, Mapping) else None,
            reply_status=str(reply.get("status")) if isinstance(reply, Mapping) else None,
            sent_at=float(raw.get("sent_at") or 0.0),
        )


@dataclass(frozen=True, slots=True)
class ReportArrival:
    """An accepted report as the cloud received it: its arrival time (the emulator's `time.time()`)."""

    time: float
    params: Mapping[str, Any]

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ReportArrival:
        """Parse one report of `GET /api/devices/{pid}/{dn}/properties`."""
        params = raw.get("params")
        return cls(float(raw.get("time", 0.0)), params if isinstance(params, Mapping) else {})


@dataclass(frozen=True, slots=True)
class DeviceProperties:
    """A device's data-template state as the console shows it."""

    reported: Mapping[str, Any]
    pending_control: Mapping[str, Any]
    controls: tuple[ControlRecord, ...]
    refused_reports: int
    info: Mapping[str, Any] | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    # The newest accepted reports, oldest first (the emulator keeps `things.REPORT_HISTORY` of them).
    reports: tuple[ReportArrival, ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DeviceProperties:
        """Parse `GET /api/devices/{pid}/{dn}/properties`."""
        reported, pending, info = raw.get("reported"), raw.get("pending_control"), raw.get("info")
        controls = raw.get("controls")
        return cls(
            reported=reported if isinstance(reported, Mapping) else {},
            pending_control=pending if isinstance(pending, Mapping) else {},
            controls=tuple(ControlRecord.from_json(c) for c in controls or () if isinstance(c, Mapping)),
            refused_reports=_optional_int(raw.get("refused_reports")) or 0,
            info=info if isinstance(info, Mapping) else None,
            raw=raw,
            reports=tuple(
                ReportArrival.from_json(r) for r in raw.get("reports") or () if isinstance(r, Mapping)
            ),
        )

    def control(self, client_token: str) -> ControlRecord | None:
        """The control with this token, if the console still lists it."""
        return next((c for c in self.controls if c.client_token == client_token), None)


@dataclass(frozen=True, slots=True)
class FirmwareInfo:
    """A stored firmware image."""

    product_id: str
    version: str
    md5: str
    size: int

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FirmwareInfo:
        """Parse the answer of `POST /api/firmware` (or an entry of `GET /api/firmware`)."""
        return cls(str(raw["product_id"]), str(raw["version"]), str(raw["md5"]), int(raw["size"]))


@dataclass(frozen=True, slots=True)
class FirmwareCounters:
    """Download counters of one firmware."""

    requests: int
    bytes: int


@dataclass(frozen=True, slots=True)
class DownloadStats:
    """`GET /api/stats`: per firmware `PID/VERSION`, plus requests refused as unknown or forbidden."""

    firmware: Mapping[str, FirmwareCounters]
    not_found: int
    forbidden: int


@dataclass(frozen=True, slots=True)
class VirtualDeviceInfo:
    """A virtual sub-device as `GET /devices/{pid}/{dn}` shows it."""

    product_id: str
    device_name: str
    version: str
    state: str
    pending_version: str | None
    fault: str
    last_error: str | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> VirtualDeviceInfo:
        """Parse the device JSON."""
        pending, error = raw.get("pending_version"), raw.get("last_error")
        return cls(
            product_id=str(raw["product_id"]),
            device_name=str(raw["device_name"]),
            version=str(raw["version"]),
            state=str(raw["state"]),
            pending_version=None if pending is None else str(pending),
            fault=str(raw.get("fault", "none")),
            last_error=None if error is None else str(error),
        )


class ConsoleClient:
    """Calls the console API under `base_url` with `session` (the caller owns the session)."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        """Bind to the console at `base_url` (e.g. `http://127.0.0.1:PORT`)."""
        self.base_url = base_url.rstrip("/")
        self.session = session

    def __repr__(self) -> str:
        """Where this client points."""
        return f"ConsoleClient({self.base_url!r})"

    # --- registry ---------------------------------------------------------------------------------------

    async def add_product(
        self, product_id: str, product_secret: str | None = None, *, gateway: bool | None = None
    ) -> ProductInfo:
        """`POST /api/products`: create a product (a secret is generated when none is given).

        `gateway=False` registers a plain device product, whose devices may not use the gateway protocol.
        """
        body: dict[str, Any] = {"product_id": product_id}
        if product_secret is not None:
            body["product_secret"] = product_secret
        if gateway is not None:
            body["gateway"] = gateway
        raw = await self._json("POST", "/api/products", json=body)
        return ProductInfo(str(raw.get("product_id", product_id)), str(raw.get("product_secret", "")))

    async def add_device(
        self, product_id: str, device_name: str, device_secret: str | None = None
    ) -> DeviceCredentials:
        """`POST /api/devices`: register a device (a secret is generated when none is given)."""
        body: dict[str, Any] = {"product_id": product_id, "device_name": device_name}
        if device_secret is not None:
            body["device_secret"] = device_secret
        raw = await self._json("POST", "/api/devices", json=body)
        return DeviceCredentials(str(raw["product_id"]), str(raw["device_name"]), str(raw["device_secret"]))

    async def add_devices(
        self, devices: Sequence[tuple[str, str]], secrets: Mapping[str, str] | None = None
    ) -> list[DeviceCredentials]:
        """`POST /api/devices/batch`: register many `(pid, dn)` in one request; `secrets` by "PID/DN"."""
        entries: list[dict[str, str]] = []
        for product_id, device_name in devices:
            entry = {"product_id": product_id, "device_name": device_name}
            secret = (secrets or {}).get(f"{product_id}/{device_name}")
            if secret is not None:
                entry["device_secret"] = secret
            entries.append(entry)
        raw = await self._json("POST", "/api/devices/batch", json={"devices": entries})
        return [
            DeviceCredentials(str(e["product_id"]), str(e["device_name"]), str(e["device_secret"]))
            for e in raw.get("devices", [])
        ]

    async def get_device(self, product_id: str, device_name: str) -> DeviceStatus:
        """`GET /api/devices/{pid}/{dn}`: online, reported version, gateway and task state."""
        raw = await self._json("GET", f"/api/devices/{_segment(product_id)}/{_segment(device_name)}")
        return DeviceStatus.from_json(raw)

    async def list_devices(self, product_id: str | None = None) -> list[DeviceStatus]:
        """`GET /api/devices`: every device, or one product's (`{"devices": [...]}` or a bare list)."""
        params = {} if product_id is None else {"product_id": product_id}
        raw = await self._json("GET", "/api/devices", params=params)
        entries = raw.get("devices", []) if isinstance(raw, Mapping) else raw
        return [DeviceStatus.from_json(e) for e in entries if isinstance(e, Mapping)]

    async def bind(self, gateway: str, subdevice: str) -> None:
        """`POST /api/bindings`: bind `subdevice` ("PID/DN") to `gateway` ("PID/DN") from the console."""
        await self._json("POST", "/api/bindings", json={"gateway": gateway, "subdevice": subdevice})

    async def bind_many(self, gateway: str, subdevices: Sequence[str]) -> None:
        """`POST /api/bindings/batch`: bind many sub-devices ("PID/DN") to `gateway` in one request."""
        await self._json(
            "POST", "/api/bindings/batch", json={"gateway": gateway, "subdevices": list(subdevices)}
        )

    async def unbind(self, gateway: str, subdevice: str) -> None:
        """`DELETE /api/bindings`: unbind from the console."""
        await self._json("DELETE", "/api/bindings", json={"gateway": gateway, "subdevice": subdevice})

    async def unbind_all(self, gateway: str) -> None:
        """`POST /api/unbind_all`: push `unbind_all` to the gateway."""
        await self._json("POST", "/api/unbind_all", json={"gateway": gateway})

    async def search_devices(self, gateway: str, *, searching: bool = True) -> bool:
        """`POST /api/search_devices`: the console's search switch; whether it was pushed (gateway online)."""
        raw = await self._json(
            "POST", "/api/search_devices", json={"gateway": gateway, "status": 1 if searching else 0}
        )
        return bool(raw.get("pushed")) if isinstance(raw, Mapping) else False

    # --- OTA --------------------------------------------------------------------------------------------

    async def upload_firmware(
        self, product_id: str, version: str, image: bytes | Path | AsyncIterable[bytes]
    ) -> FirmwareInfo:
        """`POST /api/firmware`: upload an image (bytes, a file streamed from disk, or async chunks)."""
        data: bytes | AsyncIterable[bytes] = _file_chunks(image) if isinstance(image, Path) else image
        raw = await self._json(
            "POST", "/api/firmware", params={"product_id": product_id, "version": version}, data=data
        )
        return FirmwareInfo.from_json(raw)

    async def list_firmware(self) -> list[FirmwareInfo]:
        """`GET /api/firmware`: every stored image."""
        raw = await self._json("GET", "/api/firmware")
        return [FirmwareInfo.from_json(e) for e in raw.get("firmware", [])]

    async def create_task(
        self,
        product_id: str,
        version: str,
        mode: TaskMode,
        *,
        from_versions: list[str] | None = None,
        devices: list[str] | None = None,
        timeout_s: float | None = None,
        url_scheme: UrlScheme | None = None,
        timeout_from: str | None = None,
    ) -> str:
        """`POST /api/tasks`: create an upgrade task; returns its id (`timeout_from`: progress or push)."""
        body: dict[str, Any] = {"product_id": product_id, "version": version, "mode": mode}
        optional = {
            "from_versions": from_versions,
            "devices": devices,
            "timeout_s": timeout_s,
            "url_scheme": url_scheme,
            "timeout_from": timeout_from,
        }
        body |= {k: v for k, v in optional.items() if v is not None}
        raw = await self._json("POST", "/api/tasks", json=body)
        return str(raw["task_id"])

    async def get_task(self, task_id: str | int) -> TaskStatus:
        """`GET /api/tasks/{task_id}`: each device's state, percent and result."""
        raw = await self._json("GET", f"/api/tasks/{_segment(str(task_id))}")
        return TaskStatus.from_json(str(task_id), raw)

    async def messages(self, client: str) -> list[MessageRecord]:
        """`GET /api/messages?client=PID/DN`: every message in and out of that client, in order."""
        raw = await self._json("GET", "/api/messages", params={"client": client})
        entries = raw.get("messages", []) if isinstance(raw, Mapping) else raw
        return [MessageRecord.from_json(e) for e in entries if isinstance(e, Mapping)]

    async def violations(self) -> list[Violation]:
        """`GET /api/violations`: ACL and protocol violations."""
        raw = await self._json("GET", "/api/violations")
        entries = raw.get("violations", []) if isinstance(raw, Mapping) else raw
        return [Violation.from_json(e) for e in entries if isinstance(e, Mapping)]

    # --- data templates -----------------------------------------------------------------------------------

    async def set_template(
        self,
        product_id: str,
        category: str | None = None,
        properties: Sequence[Mapping[str, Any]] | None = None,
    ) -> Mapping[str, Any]:
        """`PUT /api/products/{pid}/template`: a standard category's template, or these properties."""
        body: dict[str, Any] = {"properties": list(properties)} if properties else {"category": category}
        raw = await self._json("PUT", f"/api/products/{_segment(product_id)}/template", json=body)
        return raw if isinstance(raw, Mapping) else {}

    async def device_properties(self, product_id: str, device_name: str) -> DeviceProperties:
        """`GET /api/devices/{pid}/{dn}/properties`: reported state, pending control, controls' answers."""
        path = f"/api/devices/{_segment(product_id)}/{_segment(device_name)}/properties"
        return DeviceProperties.from_json(await self._json("GET", path))

    async def send_control(
        self, product_id: str, device_name: str, params: Mapping[str, Any], *, check: bool = True
    ) -> ControlRecord:
        """`POST /api/devices/{pid}/{dn}/control`: what Tencent's app sends; `check=False` sends anything."""
        path = f"/api/devices/{_segment(product_id)}/{_segment(device_name)}/control"
        raw = await self._json("POST", path, json={"params": dict(params), "check": check})
        return ControlRecord.from_json(raw)

    # --- firmware server --------------------------------------------------------------------------------

    async def get_faults(self) -> FaultConfig:
        """`GET /api/faults`: the fault set in force (with the current `url_ttl_s`)."""
        return FaultConfig.parse(await self._json("GET", "/api/faults"))

    async def set_faults(self, faults: FaultConfig | Mapping[str, Any]) -> FaultConfig:
        """`PUT /api/faults`: replace the fault set (see `faults.py` for the knobs)."""
        body = faults.to_json() if isinstance(faults, FaultConfig) else dict(faults)
        return FaultConfig.parse(await self._json("PUT", "/api/faults", json=body))

    async def set_drops(self, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`PUT /api/drops`: the cloud loses the matching uplinks (see `drops.py`); returns the rules."""
        raw = await self._json("PUT", "/api/drops", json={"drops": rules})
        return list(raw["drops"])

    async def reset_faults(self) -> FaultConfig:
        """`DELETE /api/faults`: no faults, default URL life."""
        return FaultConfig.parse(await self._json("DELETE", "/api/faults"))

    async def stats(self) -> DownloadStats:
        """`GET /api/stats`: download counters."""
        raw = await self._json("GET", "/api/stats")
        return DownloadStats(
            firmware={
                key: FirmwareCounters(int(v["requests"]), int(v["bytes"]))
                for key, v in raw.get("firmware", {}).items()
            },
            not_found=int(raw.get("not_found", 0)),
            forbidden=int(raw.get("forbidden", 0)),
        )

    # --- virtual sub-devices ----------------------------------------------------------------------------

    async def put_virtual_device(self, product_id: str, device_name: str, version: str) -> VirtualDeviceInfo:
        """`PUT /devices/{pid}/{dn}`: create or reset a virtual device running `version`."""
        raw = await self._json("PUT", _virtual_path(product_id, device_name), json={"version": version})
        return VirtualDeviceInfo.from_json(raw)

    async def get_virtual_device(self, product_id: str, device_name: str) -> VirtualDeviceInfo:
        """`GET /devices/{pid}/{dn}`."""
        return VirtualDeviceInfo.from_json(await self._json("GET", _virtual_path(product_id, device_name)))

    async def set_virtual_device_fault(
        self, product_id: str, device_name: str, fault: str, *, reboot_delay_s: float | None = None
    ) -> VirtualDeviceInfo:
        """`PUT /devices/{pid}/{dn}/fault`: none, reject, hang or no_reboot."""
        body: dict[str, Any] = {"fault": fault}
        if reboot_delay_s is not None:
            body["reboot_delay_s"] = reboot_delay_s
        raw = await self._json("PUT", _virtual_path(product_id, device_name) + "/fault", json=body)
        return VirtualDeviceInfo.from_json(raw)

    async def flash_virtual_device(
        self, product_id: str, device_name: str, image: bytes, *, md5: str, version: str
    ) -> VirtualDeviceInfo:
        """`PUT /devices/{pid}/{dn}/firmware`: send an image (202: accepted, rebooting)."""
        raw = await self._json(
            "PUT",
            _virtual_path(product_id, device_name) + "/firmware",
            data=image,
            headers={"X-Firmware-MD5": md5, "X-Firmware-Version": version},
        )
        return VirtualDeviceInfo.from_json(raw)

    # --- plumbing ---------------------------------------------------------------------------------------

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send the request; the decoded JSON answer, or `ConsoleError` for a non-2xx status."""
        try:
            async with self.session.request(method, self.base_url + path, **kwargs) as response:
                text = await response.text()
                if not 200 <= response.status < 300:
                    raise ConsoleError(response.status, _error_message(text) or response.reason or "")
                if not text:
                    return {}
                try:
                    return await response.json(content_type=None)
                except ValueError:
                    raise ConsoleError(
                        response.status, f"the console answered non-JSON: {text[:200]}"
                    ) from None
        except aiohttp.ClientConnectionError as err:
            raise ConsoleError(0, f"cannot reach the console at {self.base_url}: {err}") from err


def _error_message(text: str) -> str:
    """The message of an error answer: `{"error": ...}`, `{"message": ...}` or the text itself."""
    try:
        decoded = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(decoded, Mapping):
        for key in ("error", "message", "reason"):
            if isinstance(decoded.get(key), str):
                return str(decoded[key])
    return text.strip()


def _entry_key(entry: Mapping[str, Any]) -> str:
    """`PID/DN` of a task entry (`product_id` + `device_name`, or a ready `device`/`key` field)."""
    if "product_id" in entry and "device_name" in entry:
        return f"{entry['product_id']}/{entry['device_name']}"
    return str(entry.get("device") or entry.get("key") or entry.get("device_name"))


def _optional_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _segment(value: str) -> str:
    """One URL path segment, escaped (a device name may hold `:` or `@`)."""
    return quote(value, safe="")


def _virtual_path(product_id: str, device_name: str) -> str:
    return f"/devices/{_segment(product_id)}/{_segment(device_name)}"


def _open_for_reading(path: Path) -> IO[bytes]:
    return path.open("rb")


async def _file_chunks(path: Path) -> AsyncIterable[bytes]:
    """A file read in chunks off the event loop, so a large image is never whole in memory."""
    handle = await run_blocking(_open_for_reading, path)
    try:
        while chunk := await run_blocking(handle.read, _UPLOAD_CHUNK):
            yield chunk
    finally:
        await run_blocking(handle.close)
