# ruff: noqa: RUF001, RUF002  (Chinese punctuation is what these tests check)
"""What a user reads of a failure or a form error: a plain reason with advice, in their language, no class names.

Every failure the engine can name and every form-error key is rendered here in English and in Simplified
Chinese, with the placeholders our code fills: the Chinese must hold no English sentence of ours (only
placeholders and quoted remote text may be in another language), and no text, of the UI or for the cloud's
`result_msg`, may name a library's class.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
import string
from typing import Any

from homeassistant.const import ATTR_ENTITY_ID, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
import pytest

from custom_components.tencent_iot_gateway.const import DOMAIN
from custom_components.tencent_iot_gateway.engine import (
    Failure,
    FailureReason,
    FailureValue,
    FieldProblem,
    FirmwareSpec,
    OtaError,
)
from custom_components.tencent_iot_gateway.ota import failures
from tests.emulator_fixtures import eventually

from .gateway_rig import Gateway
from .helpers import LIGHT_PRODUCT, VERSION, push, register_lights, setup_gateway, state, sub, wait_for

BASE = Path(failures.__file__).parent.parent
MARK = "\u2063"  # an invisible separator: where a placeholder's value stood
# Three or more ASCII words in a row: an English phrase (a placeholder's value or a quoted text is not one).
_ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'\u2019]*(?:[\s,;:/()-]+[A-Za-z][A-Za-z'\u2019]*){2,}")
_QUOTED = re.compile(r"“[^”]*”")
_CLASS_NAME = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]*)+(?:Error|Exception)\b")
TARGET = FirmwareSpec("https://fw.example.com/x.bin?sign=SECRETQUERY", "0" * 32, 123_456, VERSION)

# A value for every placeholder a failure may carry: what the engine would put there.
SAMPLE_VALUES: dict[str, object] = {
    FailureValue.HOST: "192.168.1.50",
    FailureValue.PORT: 8080,
    FailureValue.PATH: "/share/firmware",
    FailureValue.HTTP_STATUS: 503,
    FailureValue.EXIT_CODE: 3,
    FailureValue.SIGNAL: "SIGKILL",
    FailureValue.SECONDS: "600",
    FailureValue.PROGRAM: "flash-tool",
    FailureValue.ARGUMENT: "-rf",
    FailureValue.EXPECTED: "0123456789abcdef0123456789abcdef",
    FailureValue.ACTUAL: "V100R0001",
    FailureValue.NEEDED: 5 * 1024 * 1024,
    FailureValue.SEEN: "V100R0000",
    FailureValue.FAILED: 2,
    FailureValue.TOTAL: 9,
    FailureValue.REMOTE: "Permission denied by the remote side of things",
}


def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((BASE / name).read_text(encoding="utf-8"))
    return loaded


def _fields(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def _rendered(template: str, placeholders: dict[str, str]) -> str:
    """The text as a user reads it, then with each placeholder's value and each quoted text taken out."""
    marked = template.format(**dict.fromkeys(placeholders, MARK))
    return _QUOTED.sub(MARK, marked)


def _failure_placeholders(reason: FailureReason) -> dict[str, str]:
    error = OtaError(Failure.of(reason, **{str(k): v for k, v in SAMPLE_VALUES.items()}))
    return failures.error_placeholders("Porch light", VERSION, error, TARGET)


def _failure_texts(language: str) -> Iterator[tuple[str, str]]:
    strings = _load(f"translations/{language}.json")
    for key in failures.FAILURE_KEYS:
        yield f"exceptions.failure_{key}", strings["exceptions"][f"failure_{key}"]["message"]
        yield f"issues.install_failed_{key}", strings["issues"][f"install_failed_{key}"]["description"]


def _field_error_texts(language: str) -> Iterator[tuple[str, str]]:
    strings = _load(f"translations/{language}.json")
    sections = {
        "config": strings["config"],
        "options": strings["options"],
        "sub_device": strings["config_subentries"]["sub_device"],
        "bridge": strings["config_subentries"]["bridge"],
    }
    for section, texts in sections.items():
        for problem in FieldProblem:
            yield f"{section}.error.{problem.value}", texts["error"][problem.value]


@pytest.mark.parametrize("reason", list(FailureReason))
def test_every_failure_renders_a_plain_reason_with_advice(reason: FailureReason) -> None:
    """Each failure reads in both languages with the values our code fills in, and says what to do."""
    placeholders = _failure_placeholders(reason)
    for language, advice in (("en", re.compile(r"[.?:] [A-Z]|\?$")), ("zh-Hans", re.compile("请|\uff1f"))):
        strings = _load(f"translations/{language}.json")
        text = strings["exceptions"][f"failure_{reason.value}"]["message"]
        assert _fields(text) <= set(placeholders), (language, reason)
        shown = text.format(**placeholders)
        assert "{" not in shown, (language, reason, shown)
        if reason is not FailureReason.NOT_A_SUB_DEVICE:  # refused before any install: nothing to advise
            assert advice.search(shown), (language, reason, shown)
        assert "SECRETQUERY" not in shown


def test_a_refused_connection_to_the_device_names_host_port_and_the_setting_to_check() -> None:
    """The example of issue 19, in both languages."""
    placeholders = failures.error_placeholders(
        "Porch light",
        "V100R0001",
        OtaError(Failure.of(FailureReason.DEVICE_CONNECTION_REFUSED, host="127.0.0.1", port=9)),
        TARGET,
    )
    en = _load("translations/en.json")["exceptions"]["failure_device_connection_refused"]["message"]
    zh = _load("translations/zh-Hans.json")["exceptions"]["failure_device_connection_refused"]["message"]
    assert en.format(**placeholders).startswith("The device at 127.0.0.1:9 refused the connection")
    assert "Is it on, and is the Upload URL in its flasher settings right?" in en.format(**placeholders)
    assert zh.format(**placeholders).startswith("位于 127.0.0.1:9 的设备拒绝了连接")
    assert "上传地址" in zh.format(**placeholders)  # the field's name on the Chinese form


@pytest.mark.parametrize(
    ("where", "text"), [*_failure_texts("zh-Hans"), *_field_error_texts("zh-Hans")], ids=lambda value: value
)
def test_chinese_texts_hold_no_english_sentence_of_ours(where: str, text: str) -> None:
    """Failures and form errors in zh-Hans: only placeholders and quoted remote text may be other words."""
    placeholders = dict.fromkeys(_fields(text), "x")
    english = _ENGLISH_RUN.findall(_rendered(text, placeholders))
    assert not [run for run in english if run != "Home Assistant"], (where, english)


def test_no_text_has_a_slot_for_an_english_reason() -> None:
    """The old texts wrapped our English in a translated frame ("无效：{reason}", "…：{detail}"): no failure
    or form-error text takes such a slot any more; the detector below finds such English."""
    for language in ("en", "zh-Hans"):
        for where, text in [*_failure_texts(language), *_field_error_texts(language)]:
            assert not _fields(text) & {"reason", "detail"}, (language, where)
    assert _ENGLISH_RUN.findall(_rendered("无效：must be an absolute path", {}))


def test_every_form_error_key_exists_in_every_flow_with_the_problems_placeholders() -> None:
    """Each problem is an error key of each form (config, options, sub-device) in every language."""
    source = _load("strings.json")
    for language in ("en", "zh-Hans"):
        strings = _load(f"translations/{language}.json")
        for section in (
            strings["config"],
            strings["options"],
            strings["config_subentries"]["sub_device"],
            strings["config_subentries"]["bridge"],
        ):
            for problem in FieldProblem:
                assert problem.value in section["error"], (language, problem)
        for problem in FieldProblem:
            assert _fields(strings["config"]["error"][problem.value]) == _fields(
                source["config"]["error"][problem.value]
            )


@pytest.mark.parametrize("reason", list(FailureReason))
def test_no_class_name_in_any_failure_text_or_result_msg(reason: FailureReason) -> None:
    """The cloud's `result_msg` (the failure's English) and the UI's words never name a library class."""
    failure = Failure.of(reason, **{str(k): v for k, v in SAMPLE_VALUES.items()})
    assert not _CLASS_NAME.search(failure.english), failure.english
    assert "?" not in failure.english.replace("is the product secret right?", "")
    for language in ("en", "zh-Hans"):
        text = _load(f"translations/{language}.json")["exceptions"][f"failure_{reason.value}"]["message"]
        assert not _CLASS_NAME.search(text.format(**_failure_placeholders(reason)))


async def test_a_device_that_refuses_the_upload_reads_plainly_everywhere(
    hass: HomeAssistant, gateway: Gateway, socket_enabled: None
) -> None:
    """A real refused connection (nothing listens on 127.0.0.1:9): the install's error, the repair issue's
    placeholders and the cloud's `result_msg` name host and port, not `ClientConnectorError`."""
    await register_lights(gateway, "light1")
    await setup_gateway(
        hass,
        gateway,
        [sub("light1", flasher={"kind": "http", "url": "http://127.0.0.1:9/x", "timeout_s": 5})],
    )
    await push(gateway, bytes(range(256)) * 40, "light1")
    await wait_for(hass, lambda: state(hass, "update.light1_firmware").state == STATE_ON)
    with pytest.raises(HomeAssistantError) as caught:
        await hass.services.async_call(
            "update", "install", {ATTR_ENTITY_ID: "update.light1_firmware"}, blocking=True
        )
    error = caught.value
    assert error.translation_key == "failure_device_connection_refused"
    placeholders = error.translation_placeholders or {}
    assert (placeholders["host"], placeholders["port"], placeholders["code"]) == ("127.0.0.1", "9", "-5")
    assert str(error).startswith("The device at 127.0.0.1:9 refused the connection")
    assert "Error" not in str(error)
    zh = _load("translations/zh-Hans.json")["exceptions"]["failure_device_connection_refused"]["message"]
    assert "ClientConnector" not in zh.format(**placeholders)
    summary = state(hass, "update.light1_firmware").attributes["release_summary"]
    assert summary.startswith("The device at 127.0.0.1:9 refused the connection")

    async def result_msg() -> str | None:
        task = (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).task
        return task.result_msg if task is not None and task.state == "fail" else None

    message = await eventually(result_msg)
    assert message == "the sub-device at 127.0.0.1:9 refused the connection"
    assert DOMAIN not in message
