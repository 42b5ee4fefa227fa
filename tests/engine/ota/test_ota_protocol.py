"""OTA messages have the exact shapes and types of spec §3; every malformed push is classified, never raised."""

from __future__ import annotations

import json
from typing import Any

import pytest

from custom_components.tencent_iot_gateway.engine.errors import OtaResultCode
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec, url_without_query
from custom_components.tencent_iot_gateway.engine.ota.protocol import (
    InvalidUpdate,
    ProgressState,
    Unrecognised,
    UpdateFirmware,
    VersionAcknowledged,
    parse_update_topic,
    report_progress,
    report_version,
)

GOOD_PUSH: dict[str, Any] = {
    "file_size": 29972,
    "md5sum": "20a4d2b1f8492a22fa3e472a758bf9ec",
    "type": "update_firmware",
    "url": "https://ota-1255858890.cos.ap-guangzhou.myqcloud.com/fw.bin?sign=SECRETSIGNATURE",
    "version": "V100R0001",
}


def test_report_version_shape() -> None:
    """`report_version` exactly as spec §3."""
    assert json.loads(report_version("0.1")) == {"type": "report_version", "report": {"version": "0.1"}}


def test_downloading_report_has_string_percent_and_code() -> None:
    """While downloading, percent and result_code are strings; version is the target."""
    doc = json.loads(report_progress(ProgressState.DOWNLOADING, "V100R0001", percent=37))
    assert doc == {
        "type": "report_progress",
        "report": {
            "progress": {"state": "downloading", "percent": "37", "result_code": "0", "result_msg": ""},
            "version": "V100R0001",
        },
    }


@pytest.mark.parametrize("state", [ProgressState.BURNING, ProgressState.DONE])
def test_burning_and_done_have_no_percent(state: ProgressState) -> None:
    """`burning` and `done` carry no percent."""
    doc = json.loads(report_progress(state, "V100R0001"))
    assert doc["report"]["progress"] == {"state": state.value, "result_code": "0", "result_msg": ""}
    assert doc["report"]["version"] == "V100R0001"


def test_fail_report_carries_code_as_string_and_message() -> None:
    """A failure carries Tencent's code as a string and a real message."""
    doc = json.loads(
        report_progress(ProgressState.FAIL, "V1", code=OtaResultCode.MD5_MISMATCH, message="md5 mismatch")
    )
    assert doc["report"]["progress"] == {"state": "fail", "result_code": "-4", "result_msg": "md5 mismatch"}


def test_percent_is_clamped() -> None:
    """A percent outside 0..100 never reaches the cloud."""
    assert (
        json.loads(report_progress(ProgressState.DOWNLOADING, "V1", percent=140))["report"]["progress"][
            "percent"
        ]
        == "100"
    )


def test_valid_push_is_parsed() -> None:
    """A push as in the spec becomes a FirmwareSpec; the MD5 is lower-cased."""
    message = parse_update_topic(json.dumps(GOOD_PUSH | {"md5sum": GOOD_PUSH["md5sum"].upper()}).encode())
    assert isinstance(message, UpdateFirmware)
    assert message.firmware == FirmwareSpec(
        url=GOOD_PUSH["url"], md5=GOOD_PUSH["md5sum"], size=29972, version="V100R0001"
    )
    assert message.firmware.host == "ota-1255858890.cos.ap-guangzhou.myqcloud.com"
    assert "SECRETSIGNATURE" not in repr(message.firmware)
    assert message.firmware.public_url == url_without_query(GOOD_PUSH["url"])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"url": "ftp://host/fw.bin"}, "not an http or https URL"),
        ({"url": "https:///nohost"}, "not an http or https URL"),
        ({"url": "https://host/a b"}, "not an http or https URL"),
        ({"url": 42}, "url is missing"),
        ({"md5sum": "xyz"}, "md5sum"),
        ({"md5sum": "20a4d2b1f8492a22fa3e472a758bf9e"}, "md5sum"),
        ({"file_size": "29972"}, "file_size is missing or not an integer"),
        ({"file_size": True}, "file_size is missing or not an integer"),
        ({"file_size": 0}, "not positive"),
        ({"file_size": 2**40}, "exceeds the configured maximum"),
        ({"version": ""}, "version: must not be empty"),
        ({"version": "V1\n2"}, "control character"),
        ({"version": "v" * 33}, "at most 32"),
    ],
)
def test_invalid_pushes_are_classified(change: dict[str, Any], reason: str) -> None:
    """Each malformed field gives an InvalidUpdate whose message names it, and never the signed query."""
    message = parse_update_topic(json.dumps(GOOD_PUSH | change).encode())
    assert isinstance(message, InvalidUpdate)
    assert reason in str(message.error)
    assert "SECRETSIGNATURE" not in str(message.error)
    assert message.error.code == OtaResultCode.UPGRADE_FAILED


@pytest.mark.parametrize(
    "version", ["_v1", "-rc1", ".1", "1.0 (beta)/2", "v" * 32, "V1.0.0_2026-12", "固件1"]
)
def test_versions_tencent_accepts_are_accepted(version: str) -> None:
    """Tencent's rule is 1 to 32 characters (its console allows letters, digits, `.`, `-`, `_`, a subset): the
    old rule refused a leading `_`, `-` or `.` and anything else, and such a push was reported failed."""
    message = parse_update_topic(json.dumps(GOOD_PUSH | {"version": version}).encode())
    assert isinstance(message, UpdateFirmware)
    assert message.firmware.version == version


@pytest.mark.parametrize("version", [None, "", 7, "v" * 33, "V1\x00"])
def test_a_push_without_a_valid_version_names_none(version: object) -> None:
    """With no valid version, nothing could name the push's task: `InvalidUpdate.version` is empty."""
    message = parse_update_topic(json.dumps(GOOD_PUSH | {"version": version}).encode())
    assert isinstance(message, InvalidUpdate)
    assert message.version == ""


def test_missing_field_keeps_the_named_version() -> None:
    """When the version itself is fine, the fail report can name it."""
    push = dict(GOOD_PUSH)
    del push["md5sum"]
    message = parse_update_topic(json.dumps(push).encode())
    assert isinstance(message, InvalidUpdate)
    assert message.version == "V100R0001"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"type": "something_else"}', "unknown message type"),
        (b'{"type": "report_version_rsp", "result_code": "0", "version": "0.1"}', "integer result_code"),
    ],
)
def test_garbage_is_unrecognised(payload: bytes, reason: str) -> None:
    """Garbage on the update topic is classified with a reason."""
    message = parse_update_topic(payload)
    assert isinstance(message, Unrecognised)
    assert reason in message.reason


def test_version_ack_is_parsed() -> None:
    """`report_version_rsp` with its int result_code."""
    payload = b'{"result_code":0,"result_msg":"success","type":"report_version_rsp","version":"0.1"}'
    assert parse_update_topic(payload) == VersionAcknowledged("0.1", 0)


def test_firmware_spec_round_trips_through_storage() -> None:
    """What is saved to survive a restart parses back to the same spec."""
    spec = FirmwareSpec.parse(GOOD_PUSH)
    assert FirmwareSpec.parse(spec.to_dict()) == spec
