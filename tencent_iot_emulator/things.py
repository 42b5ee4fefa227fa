"""The cloud's data-template side: `$thing/up/property/{pid}/{dn}` in, `$thing/down/property/...` out.

What it models (docs/data-template-protocol.md has the sources):
- `report` is checked against the product's template: one unknown property, wrong type or out-of-range value
  refuses the whole report with `report_reply` code 406 and Tencent's status text; the reason is recorded as a
  `template` violation (the real cloud's status does not name the property, so a device cannot rely on it).
  An accepted report updates the device's reported state, and its arrival is kept (the newest
  `REPORT_HISTORY`, with the time it arrived): how long a value took to reach the cloud is measured there.
- `control` is sent by the console (the stand-in for Tencent's app and APIs) and stays pending until the
  device answers it with `control_reply` echoing its `clientToken`, or sends `clear_control`;
  `get_status` type `control` returns the pending ones (merged, latest wins), type `report` the reported state.
- Data-template messages count only from a device that is online (connected itself, or online through its
  gateway): anything else is a `protocol` violation and gets no answer, as the broker's ACL already keeps
  the topics of unbound sub-devices out.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
import itertools
import json
import logging
from pathlib import Path
import time
from typing import Any

from .data_templates import DataTemplate, TemplateError

_LOGGER = logging.getLogger(__name__)

TEMPLATES_FILE = "data_templates.json"
CODE_OK = 0
# Tencent's answer to a report that does not fit the template (seen from the live cloud, see the doc).
CODE_CHECK_FAILED = 406
STATUS_CHECK_FAILED = "checkReportData fail"
CONTROL_HISTORY = 50
# Accepted reports kept per device with their arrival time, for the console (`scripts/bench --bridge` reads
# them after each of its phases, which is a few reports a device).
REPORT_HISTORY = 100

type Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
type Violation = Callable[[str, str, str, str], None]


class ControlError(ValueError):
    """The console cannot send this control (unknown device, invalid params)."""


@dataclass(slots=True)
class ControlRecord:
    """One control the console sent, and the device's answer."""

    client_token: str
    params: dict[str, Any]
    sent_at: float
    delivered: bool
    reply_code: int | None = None
    reply_status: str | None = None
    replied_at: float | None = None
    cleared: bool = False

    @property
    def pending(self) -> bool:
        """Neither answered nor cleared: `get_status` type control returns it."""
        return self.reply_code is None and not self.cleared

    def to_json(self) -> dict[str, Any]:
        """The console's view."""
        return {
            "clientToken": self.client_token,
            "params": self.params,
            "sent_at": self.sent_at,
            "delivered": self.delivered,
            "pending": self.pending,
            "reply": None
            if self.reply_code is None
            else {"code": self.reply_code, "status": self.reply_status, "time": self.replied_at},
        }


@dataclass(frozen=True, slots=True)
class ReportArrival:
    """An accepted report: when it arrived (the emulator's clock, `time.time()`) and its params."""

    time: float
    params: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The console's view."""
        return {"time": self.time, "params": self.params}


@dataclass(frozen=True, slots=True)
class DeviceData:
    """A copy of what the cloud holds of one device's data, as the console page shows it."""

    reported: Mapping[str, Any]
    reported_times: Mapping[str, float]
    last_control: ControlRecord | None
    refused_reports: int


@dataclass(slots=True)
class _DeviceState:
    reported: dict[str, Any] = field(default_factory=dict)
    reported_at: float | None = None
    reports: deque[ReportArrival] = field(default_factory=lambda: deque(maxlen=REPORT_HISTORY))
    # When each property was last reported (a report may carry a few of them): the console page shows it.
    reported_times: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] | None = None
    controls: list[ControlRecord] = field(default_factory=list)
    refused_reports: int = 0


class ThingCloud:
    """Templates per product (saved in the state directory) and each device's reported state and controls."""

    def __init__(
        self,
        state_dir: Path,
        *,
        publish: Publish,
        is_online: Callable[[str], bool],
        violation: Violation,
    ) -> None:
        """`publish(topic, message)` sends as the cloud; `violation(kind, client, topic, reason)` records."""
        self._file = Path(state_dir) / TEMPLATES_FILE
        self._publish = publish
        self._is_online = is_online
        self._violation = violation
        self._templates: dict[str, DataTemplate] = {}
        self._devices: dict[str, _DeviceState] = {}
        self._tokens = itertools.count(1)

    async def load(self) -> None:
        """Read the saved templates (a missing file is no templates)."""
        raw = await asyncio.get_running_loop().run_in_executor(None, self._read)
        for product_id, template in raw.items():
            try:
                self._templates[product_id] = DataTemplate.from_json(template)
            except TemplateError as err:
                _LOGGER.warning("ignoring the saved template of %s: %s", product_id, err)

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self._file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return data if isinstance(data, dict) else {}

    # -- console --------------------------------------------------------------------------------------------

    def template(self, product_id: str) -> DataTemplate | None:
        """The product's data template."""
        return self._templates.get(product_id)

    async def set_template(self, product_id: str, template: DataTemplate) -> None:
        """Give the product a template (saved)."""
        self._templates[product_id] = template
        snapshot = {pid: t.to_json() for pid, t in self._templates.items()}
        text = json.dumps(snapshot, indent=1)
        await asyncio.get_running_loop().run_in_executor(None, self._write, text)

    def _write(self, text: str) -> None:
        tmp = self._file.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self._file)

    def properties(self, key: str) -> dict[str, Any]:
        """What the console shows of a device's data: reported state, pending control, controls' answers."""
        state = self._devices.get(key) or _DeviceState()
        return {
            "reported": dict(state.reported),
            "reported_at": state.reported_at,
            "info": state.info,
            "pending_control": _merged(state.controls),
            "controls": [c.to_json() for c in state.controls],
            "refused_reports": state.refused_reports,
            "reports": [r.to_json() for r in state.reports],
        }

    def data(self, key: str) -> DeviceData:
        """The device's reported values, when each came, and its latest control (for the console page)."""
        state = self._devices.get(key) or _DeviceState()
        return DeviceData(
            dict(state.reported),
            dict(state.reported_times),
            replace(state.controls[-1]) if state.controls else None,
            state.refused_reports,
        )

    async def send_control(self, key: str, params: dict[str, Any], *, check: bool = True) -> ControlRecord:
        """Send `control` (kept pending until answered); `check` False sends anything (a misbehaving cloud)."""
        product_id = key.split("/", 1)[0]
        if check:
            template = self._templates.get(product_id)
            if template is None:
                raise ControlError(f"product {product_id} has no data template")
            if not params:
                raise ControlError("params must name at least one property")
            reason = template.check_control(params)
            if reason is not None:
                raise ControlError(reason)
        token = f"emu-control-{next(self._tokens)}"
        online = self._is_online(key)
        record = ControlRecord(token, dict(params), time.time(), delivered=online)
        controls = self._state(key).controls
        controls.append(record)
        del controls[:-CONTROL_HISTORY]
        if online:
            await self._publish(
                f"$thing/down/property/{key}", {"method": "control", "clientToken": token, "params": params}
            )
        return record

    # -- MQTT in ----------------------------------------------------------------------------------------------

    async def on_uplink(self, key: str, topic: str, data: Any) -> None:
        """A message on `$thing/up/...` of device `key` (already logged by the cloud)."""
        levels = topic.split("/")
        if levels[1] != "up":
            self._violation("protocol", key, topic, "devices publish on $thing/up, not $thing/down")
            return
        if not self._is_online(key):
            self._violation(
                "protocol", key, topic, "a data-template message from a device that is not online"
            )
            return
        if levels[2] != "property":
            self._violation("protocol", key, topic, f"the emulator does not model $thing/up/{levels[2]}")
            return
        method = data.get("method") if isinstance(data, dict) else None
        token = data.get("clientToken") if isinstance(data, dict) else None
        if not isinstance(method, str) or not isinstance(token, str) or not token:
            self._violation("protocol", key, topic, "a property message needs a method and a clientToken")
            return
        match method:
            case "report":
                await self._on_report(key, topic, token, data)
            case "get_status":
                await self._on_get_status(key, topic, token, data)
            case "clear_control":
                for record in self._state(key).controls:
                    record.cleared = record.cleared or record.pending
                await self._reply(key, "clear_control_reply", token, CODE_OK)
            case "report_info":
                params = data.get("params")
                if not isinstance(params, dict):
                    self._violation("protocol", key, topic, "report_info needs params, an object")
                    return
                self._state(key).info = params
                await self._reply(key, "report_info_reply", token, CODE_OK)
            case "control_reply":
                self._on_control_reply(key, topic, token, data)
            case _:
                self._violation("protocol", key, topic, f"unknown property method {method!r}")

    async def _on_report(self, key: str, topic: str, token: str, data: dict[str, Any]) -> None:
        params = data.get("params")
        timestamp = data.get("timestamp")
        template = self._templates.get(key.split("/", 1)[0])
        if not isinstance(params, dict) or not params:
            reason: str | None = "report needs params, a non-empty object"
        elif timestamp is not None and (isinstance(timestamp, bool) or not isinstance(timestamp, int)):
            reason = "report's timestamp must be an integer"
        elif template is None:
            reason = "the product has no data template"
        else:
            reason = template.check_report(params)
        state = self._state(key)
        if reason is not None:
            state.refused_reports += 1
            self._violation("template", key, topic, f"report refused: {reason}")
            await self._reply(key, "report_reply", token, CODE_CHECK_FAILED, STATUS_CHECK_FAILED)
            return
        assert isinstance(params, dict)
        state.reported.update(params)
        state.reported_at = time.time()
        state.reports.append(ReportArrival(state.reported_at, dict(params)))
        state.reported_times.update(dict.fromkeys(params, state.reported_at))
        await self._reply(key, "report_reply", token, CODE_OK)

    async def _on_get_status(self, key: str, topic: str, token: str, data: dict[str, Any]) -> None:
        kind = data.get("type")
        state = self._state(key)
        body: dict[str, Any] = {}
        if kind not in (None, "report", "control"):
            self._violation("protocol", key, topic, f"get_status type {kind!r} is neither report nor control")
            await self._reply(key, "get_status_reply", token, CODE_CHECK_FAILED, "type is report or control")
            return
        if kind in (None, "report"):
            body["reported"] = dict(state.reported)
        pending = _merged(state.controls)
        if kind in (None, "control") and pending:
            body["control"] = pending
        extra: dict[str, Any] = {"data": body}
        if kind is not None:
            extra["type"] = kind
        await self._reply(key, "get_status_reply", token, CODE_OK, extra=extra)

    def _on_control_reply(self, key: str, topic: str, token: str, data: dict[str, Any]) -> None:
        code, status = data.get("code"), data.get("status", "")
        if isinstance(code, bool) or not isinstance(code, int) or not isinstance(status, str):
            self._violation(
                "protocol", key, topic, "control_reply needs an integer code (and a string status)"
            )
            return
        for record in self._state(key).controls:
            if record.client_token == token:
                if record.reply_code is not None:
                    self._violation("protocol", key, topic, f"control {token} was answered twice")
                    return
                record.reply_code, record.reply_status, record.replied_at = code, status, time.time()
                return
        self._violation("protocol", key, topic, f"control_reply for a control never sent: {token!r}")

    async def _reply(
        self,
        key: str,
        method: str,
        token: str,
        code: int,
        status: str = "success",
        *,
        extra: dict[str, Any] | None = None,
    ) -> None:
        message = {"method": method, "clientToken": token, "code": code, "status": status} | (extra or {})
        await self._publish(f"$thing/down/property/{key}", message)

    def _state(self, key: str) -> _DeviceState:
        state = self._devices.get(key)
        if state is None:
            state = self._devices[key] = _DeviceState()
        return state


def _merged(controls: list[ControlRecord]) -> dict[str, Any]:
    """The pending controls' params, oldest first, so the latest value of a property wins."""
    merged: dict[str, Any] = {}
    for record in controls:
        if record.pending:
            merged.update(record.params)
    return merged
