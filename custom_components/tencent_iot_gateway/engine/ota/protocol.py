"""OTA messages (spec §3): what a device reports, and what the cloud sends on its update topic.

The shapes are exact: `percent` and `result_code` inside `progress` are strings, `version` is the target
version, `result_code` of `report_version_rsp` is an int.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
import json
from typing import Any

from custom_components.tencent_iot_gateway.engine.errors import InvalidFirmwareError, OtaResultCode
from custom_components.tencent_iot_gateway.engine.ota.firmware import (
    DEFAULT_MAX_FIRMWARE_SIZE,
    FirmwareSpec,
    validate_version,
)


class ProgressState(StrEnum):
    """`state` of a `report_progress`."""

    DOWNLOADING = "downloading"
    BURNING = "burning"
    DONE = "done"
    FAIL = "fail"


def report_version(version: str) -> str:
    """Tell the cloud which firmware a device runs (also how to ask it to re-send a pending push)."""
    return json.dumps({"type": "report_version", "report": {"version": version}})


def report_progress(
    state: ProgressState,
    version: str,
    *,
    percent: int | None = None,
    code: OtaResultCode | None = None,
    message: str = "",
    echo: Mapping[str, str | int] | None = None,
) -> str:
    """A `report_progress` for the target `version`; `percent` only while downloading, `code` only on fail.

    `echo`: fields of the push repeated beside `version` (`fw_type`, `task_id`: see README, "Fields of
    `update_firmware`", for why and how sure we are).
    """
    progress: dict[str, str] = {"state": state.value}
    if state is ProgressState.DOWNLOADING:
        progress["percent"] = str(max(0, min(100, percent or 0)))
    progress["result_code"] = str(int(code)) if code is not None else "0"
    progress["result_msg"] = message
    report: dict[str, Any] = {"progress": progress, "version": version} | dict(echo or {})
    return json.dumps({"type": "report_progress", "report": report})


@dataclass(frozen=True, slots=True)
class UpdateFirmware:
    """A valid `update_firmware` push."""

    firmware: FirmwareSpec


@dataclass(frozen=True, slots=True)
class InvalidUpdate:
    """An `update_firmware` push that cannot be acted on; `version` is the valid version it named, else ""."""

    error: InvalidFirmwareError
    version: str


@dataclass(frozen=True, slots=True)
class VersionAcknowledged:
    """The cloud's answer to `report_version`."""

    version: str
    result_code: int


@dataclass(frozen=True, slots=True)
class Unrecognised:
    """Anything else on the update topic; `reason` says why, for one log line."""

    reason: str


type UpdateTopicMessage = UpdateFirmware | InvalidUpdate | VersionAcknowledged | Unrecognised


def parse_update_topic(payload: bytes, *, max_size: int = DEFAULT_MAX_FIRMWARE_SIZE) -> UpdateTopicMessage:
    """Classify one message of `$ota/update/...`; never raises."""
    try:
        message: Any = json.loads(payload)
    except ValueError:
        return Unrecognised("the message is not JSON")
    if not isinstance(message, dict):
        return Unrecognised("the message is not a JSON object")
    kind = message.get("type")
    if kind == "update_firmware":
        try:
            return UpdateFirmware(FirmwareSpec.parse(message, max_size=max_size))
        except InvalidFirmwareError as err:
            try:
                named = validate_version(message.get("version"))
            except InvalidFirmwareError:
                named = ""
            return InvalidUpdate(err, named)
    if kind == "report_version_rsp":
        code = message.get("result_code")
        version = message.get("version")
        if isinstance(code, int) and not isinstance(code, bool):
            return VersionAcknowledged(version if isinstance(version, str) else "", code)
        return Unrecognised("report_version_rsp without an integer result_code")
    return Unrecognised(f"unknown message type {kind!r}")
