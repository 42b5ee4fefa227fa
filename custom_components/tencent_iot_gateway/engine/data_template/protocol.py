"""The data-template messages on `$thing/{up,down}/property/{pid}/{dn}` (docs/data-template-protocol.md).

Up: `report`, `get_status`, `clear_control`, `report_info`, `control_reply`. Down: `control` and the cloud's
answers (`report_reply`, `get_status_reply`, `clear_control_reply`, `report_info_reply`), each with the
`clientToken` of what it answers, an integer `code` (0 is success) and a `status` text. Downlinks are parsed
into frozen dataclasses or refused with `MalformedDownlinkError`, whose reason names the field, never a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
import json
import math
from types import MappingProxyType
from typing import Any

from custom_components.tencent_iot_gateway.engine.errors import (
    FieldProblem,
    InvalidFieldError,
    MalformedDownlinkError,
)

# A property's value as JSON carries it: Tencent's bool is the integer 0 or 1, a struct an object.
type PropertyValue = bool | int | float | str | list[PropertyValue] | dict[str, PropertyValue]
type Properties = Mapping[str, PropertyValue]

CODE_OK = 0
# What the device answers a control it could not carry out (Tencent's C SDK calls it "deal fail").
CODE_FAILED = -1
MAX_STATUS_LENGTH = 64  # the status text of a control_reply (Tencent's C SDK's buffer)


class Method(StrEnum):
    """The `method` of a property message."""

    REPORT = "report"
    REPORT_REPLY = "report_reply"
    CONTROL = "control"
    CONTROL_REPLY = "control_reply"
    GET_STATUS = "get_status"
    GET_STATUS_REPLY = "get_status_reply"
    CLEAR_CONTROL = "clear_control"
    CLEAR_CONTROL_REPLY = "clear_control_reply"
    REPORT_INFO = "report_info"
    REPORT_INFO_REPLY = "report_info_reply"


class StatusType(StrEnum):
    """What `get_status` asks for: the last reported values, or the controls still pending."""

    REPORT = "report"
    CONTROL = "control"


@dataclass(frozen=True, slots=True)
class Control:
    """The cloud sets writable properties; answer with `control_reply` echoing `client_token`."""

    client_token: str
    params: Properties


@dataclass(frozen=True, slots=True)
class Reply:
    """The cloud's answer to `report`, `clear_control` or `report_info` (`method` is the answer's)."""

    method: Method
    client_token: str
    code: int
    status: str

    @property
    def ok(self) -> bool:
        """Whether the cloud accepted the request."""
        return self.code == CODE_OK


@dataclass(frozen=True, slots=True)
class StatusReply:
    """The answer to `get_status`: `reported` values, and `control`, the params of the pending controls."""

    client_token: str
    code: int
    status: str
    type: StatusType | None
    reported: Properties
    control: Properties

    @property
    def ok(self) -> bool:
        """Whether the cloud accepted the request."""
        return self.code == CODE_OK


type Downlink = Control | Reply | StatusReply

_REPLIES = {Method.REPORT_REPLY, Method.CLEAR_CONTROL_REPLY, Method.REPORT_INFO_REPLY}


def parse_downlink(payload: bytes) -> Downlink:
    """Parse a message of `$thing/down/property/...`; raises `MalformedDownlinkError`."""
    try:
        data = json.loads(payload)
    except UnicodeDecodeError, json.JSONDecodeError:
        raise MalformedDownlinkError("not JSON") from None
    if not isinstance(data, dict):
        raise MalformedDownlinkError("not a JSON object")
    try:
        method = Method(str(data.get("method")))
    except ValueError:
        raise MalformedDownlinkError("method is missing or not a data-template method") from None
    token = data.get("clientToken")
    if not isinstance(token, str) or not token:
        raise MalformedDownlinkError(f"{method}: clientToken must be a non-empty string")
    if method is Method.CONTROL:
        return Control(token, _properties(data.get("params"), f"{method}: params"))
    code = data.get("code")
    if isinstance(code, bool) or not isinstance(code, int):
        raise MalformedDownlinkError(f"{method}: code must be an integer")
    status = data.get("status", "")
    if not isinstance(status, str):
        raise MalformedDownlinkError(f"{method}: status must be a string")
    if method in _REPLIES:
        return Reply(method, token, code, status)
    if method is Method.GET_STATUS_REPLY:
        return _status_reply(data, token, code, status)
    raise MalformedDownlinkError(f"{method} is sent by devices, not by the cloud")


def _status_reply(data: dict[str, Any], token: str, code: int, status: str) -> StatusReply:
    kind_raw = data.get("type")
    try:
        kind = None if kind_raw is None else StatusType(kind_raw)
    except ValueError:
        raise MalformedDownlinkError("get_status_reply: type must be report or control") from None
    body = data.get("data", {})
    if not isinstance(body, dict):
        raise MalformedDownlinkError("get_status_reply: data must be an object")
    # Tencent's SDK logs show `data.reported`; its protocol page's example says `data.report`.
    reported = body.get("reported", body.get("report", {}))
    return StatusReply(
        token,
        code,
        status,
        kind,
        _properties(reported, "get_status_reply: data.reported", allow_empty=True),
        _properties(body.get("control", {}), "get_status_reply: data.control", allow_empty=True),
    )


def _properties(raw: object, where: str, *, allow_empty: bool = False) -> Properties:
    if not isinstance(raw, dict) or (not raw and not allow_empty):
        raise MalformedDownlinkError(f"{where} must be a{'n' if allow_empty else ' non-empty'} object")
    for name, value in raw.items():
        if not name:
            raise MalformedDownlinkError(f"{where}: a property has an empty identifier")
        if not is_property_value(value):
            raise MalformedDownlinkError(f"{where}: {name!r} has no valid value (null, NaN or unknown type)")
    return MappingProxyType(dict(raw))


def is_property_value(value: object) -> bool:
    """Whether `value` is a value a property can have (JSON without null; finite numbers)."""
    if isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_property_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_property_value(v) for k, v in value.items())
    return False


def check_properties(params: Mapping[str, object]) -> None:
    """Refuse what cannot go up as properties (`InvalidFieldError` naming the property)."""
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise InvalidFieldError("params", FieldProblem.REQUIRED)
        if not is_property_value(value):
            # Only a bool, number, string, list or object can go up (the bridge's mapping chose the value).
            raise InvalidFieldError(name, FieldProblem.INVALID)


def _message(method: Method, token: str, **fields: Any) -> str:
    return json.dumps({"method": str(method), "clientToken": token, **fields}, separators=(",", ":"))


def report_message(token: str, params: Properties) -> str:
    """`report`: no `timestamp`, so the cloud stamps the time it received the values (the host's clock may
    be off, and a report that waited for the budget carries the values of when it was sent)."""
    return _message(Method.REPORT, token, params=dict(params))


def get_status_message(token: str, kind: StatusType) -> str:
    """`get_status` of one type, without metadata."""
    return _message(Method.GET_STATUS, token, type=str(kind), showmeta=0)


def clear_control_message(token: str) -> str:
    """`clear_control`: the pending controls are handled (after a `get_status` type control)."""
    return _message(Method.CLEAR_CONTROL, token)


def report_info_message(token: str, info: Mapping[str, object]) -> str:
    """`report_info`: the device's system information (module and firmware versions, labels)."""
    return _message(Method.REPORT_INFO, token, params=dict(info))


def control_reply_message(token: str, code: int, status: str) -> str:
    """`control_reply` echoing the control's token; the status is cut to what Tencent's SDK allows."""
    return _message(Method.CONTROL_REPLY, token, code=code, status=status[:MAX_STATUS_LENGTH])
