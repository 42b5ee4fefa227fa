# ruff: noqa: RUF001, RUF002  (Chinese punctuation is what these tests check)
"""Form errors in the user's language: each field's problem is its own error key, numbers say their range.

Before, Chinese forms read "无效：must be an absolute path" (our English inside a translated frame) and number
fields "Value -5.0 is too small" (voluptuous' English, without the range).
"""

from __future__ import annotations

from collections.abc import Mapping
import json
from pathlib import Path
from typing import Any

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.tencent_iot_gateway.const import (
    CONF_CANARY_SIZE,
    CONF_CANARY_UNIT,
    CONF_DEVICE_NAME,
    CONF_FLASHER_KIND,
    CONF_GATEWAY_VERSION,
    CONF_INSTALL_POLICY,
    CONF_INSTALLED_VERSION,
    CONF_MAX_DOWNLOADS,
    CONF_MAX_FAILURES,
    CONF_MAX_FIRMWARE_SIZE_MIB,
    CONF_MAX_FLASHES,
    CONF_PREFLIGHT_TIMEOUT_MIN,
    CONF_PRODUCT_ID,
    CONF_ROLLOUT,
    CONF_SOAK_MIN,
    MAX_PREFLIGHT_TIMEOUT_MIN,
    MAX_SOAK_MIN,
    SUBENTRY_SUB_DEVICE,
)
from custom_components.tencent_iot_gateway.ota import failures
from custom_components.tencent_iot_gateway.subentry_flow import Section, nest

from .gateway_rig import Gateway, add_entry
from .helpers import LIGHT_PRODUCT

BASE = Path(failures.__file__).parent.parent


def _text(language: str, section: str, key: str, placeholders: Mapping[str, str]) -> str:
    """An error as the frontend shows it: the language's text with the step's placeholders."""
    strings = json.loads((BASE / f"translations/{language}.json").read_text(encoding="utf-8"))
    tree = strings["config_subentries"]["sub_device"] if section == "sub_device" else strings[section]
    text: str = tree["error"][key]
    return text.format(**placeholders)


async def _settings_form(hass: HomeAssistant, gateway: Gateway) -> str:
    """An add-sub-device flow past its ids step, on the form of everything else."""
    entry = await add_entry(hass, gateway.entry_data)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SUB_DEVICE), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {CONF_PRODUCT_ID: LIGHT_PRODUCT, CONF_DEVICE_NAME: "light1"}
    )
    assert result["step_id"] == "device"
    return str(result["flow_id"])


async def _settings(hass: HomeAssistant, gateway: Gateway, **entered: Any) -> Any:
    flow_id = await _settings_form(hass, gateway)
    form = {CONF_INSTALLED_VERSION: "1.0.0", CONF_FLASHER_KIND: "none"} | entered
    return await hass.config_entries.subentries.async_configure(flow_id, nest(form))


async def _options_rollout_step(hass: HomeAssistant, gateway: Gateway) -> tuple[Any, str]:
    entry = await add_entry(hass, gateway.entry_data)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_INSTALL_POLICY: "manual",
            CONF_MAX_DOWNLOADS: 2,
            CONF_MAX_FLASHES: 2,
            CONF_MAX_FIRMWARE_SIZE_MIB: 64,
            CONF_ROLLOUT: True,
        },
    )
    assert result["step_id"] == "rollout"
    return entry, str(result["flow_id"])


async def test_a_number_out_of_its_range_says_the_range(hass: HomeAssistant, gateway: Gateway) -> None:
    """The rollout's soak time at -5: our own error with 0–1440, not voluptuous' "Value -5.0 is too small"."""
    entry, flow_id = await _options_rollout_step(hass, gateway)
    result = await hass.config_entries.options.async_configure(
        flow_id,
        {CONF_CANARY_SIZE: 1, CONF_CANARY_UNIT: "devices", CONF_SOAK_MIN: -5.0, CONF_MAX_FAILURES: 1},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_SOAK_MIN: "out_of_range"}
    placeholders = result["description_placeholders"] or {}
    assert (placeholders["min"], placeholders["max"]) == ("0", str(MAX_SOAK_MIN))
    assert _text("en", "options", "out_of_range", placeholders) == f"Enter a number from 0 to {MAX_SOAK_MIN}."
    assert (
        _text("zh-Hans", "options", "out_of_range", placeholders)
        == f"请输入 0 到 {MAX_SOAK_MIN} 之间的数字。"
    )
    assert entry.options.get(CONF_SOAK_MIN) is None  # nothing stored


async def test_the_gateway_version_too_long_says_its_length_and_the_limit(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    entry = await add_entry(hass, gateway.entry_data)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_INSTALL_POLICY: "manual",
            CONF_MAX_DOWNLOADS: 2,
            CONF_MAX_FLASHES: 2,
            CONF_MAX_FIRMWARE_SIZE_MIB: 64,
            CONF_GATEWAY_VERSION: "v" * 40,
        },
    )
    assert result["errors"] == {CONF_GATEWAY_VERSION: "too_long"}
    placeholders = result["description_placeholders"] or {}
    assert _text("zh-Hans", "options", "too_long", placeholders) == "当前长度为 40 个字符，最多允许 32 个。"


async def test_a_value_too_long_is_translated(hass: HomeAssistant, gateway: Gateway) -> None:
    """The issue's example: "无效：is 12 characters long; at most 10 are allowed" now reads in Chinese (a product
    ID of the wrong shape has its own error, `product_id_format`: here the running version, at most 32)."""
    result = await _settings(hass, gateway, **{CONF_INSTALLED_VERSION: "v" * 40})
    assert result["errors"] == {CONF_INSTALLED_VERSION: "too_long"}
    placeholders = result["description_placeholders"] or {}
    assert (
        _text("zh-Hans", "sub_device", "too_long", placeholders) == "当前长度为 40 个字符，最多允许 32 个。"
    )
    assert _text("en", "sub_device", "too_long", placeholders) == (
        "This is 40 characters long; at most 32 are allowed."
    )


async def test_a_pre_flight_timeout_out_of_range_says_the_range(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    result = await _settings(hass, gateway, **{CONF_PREFLIGHT_TIMEOUT_MIN: -5})
    # A field inside a section has its error on the section (the frontend shows it there), with the range.
    assert result["errors"] == {Section.PREFLIGHT: "out_of_range"}
    placeholders = result["description_placeholders"] or {}
    assert (placeholders["min"], placeholders["max"]) == ("1", str(MAX_PREFLIGHT_TIMEOUT_MIN))


async def _flasher_form(hass: HomeAssistant, gateway: Gateway, kind: str) -> str:
    result = await _settings(hass, gateway, **{CONF_FLASHER_KIND: kind})
    assert result["step_id"] == f"flasher_{kind}"
    return str(result["flow_id"])


@pytest.mark.parametrize(
    ("entered", "field", "key", "zh"),
    [
        ({"url": "ftp://192.168.1.50/ota"}, "url", "url_scheme", "请输入以 http:// 或 https:// 开头的地址。"),
        ({"timeout_s": -5}, "timeout_s", "out_of_range", "请输入 1 到 86400 之间的数字。"),
        ({"poll_interval_s": 0}, "poll_interval_s", "out_of_range", "请输入 0.1 到 3600 之间的数字。"),
    ],
)
async def test_http_flasher_errors_are_translated(
    hass: HomeAssistant, gateway: Gateway, entered: dict[str, Any], field: str, key: str, zh: str
) -> None:
    """The issue's "无效：must be an http:// or https:// URL", and the flasher's number fields."""
    flow_id = await _flasher_form(hass, gateway, "http")
    form = {CONF_FLASHER_KIND: "http", "url": "http://192.168.1.50/ota", "method": "PUT", "timeout_s": 600}
    form |= entered
    result = await hass.config_entries.subentries.async_configure(flow_id, form)
    assert result["errors"] == {field: key}
    assert _text("zh-Hans", "sub_device", key, result["description_placeholders"] or {}) == zh


async def test_a_relative_directory_is_translated(hass: HomeAssistant, gateway: Gateway) -> None:
    """The issue's "无效：must be an absolute path"."""
    flow_id = await _flasher_form(hass, gateway, "file")
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_FLASHER_KIND: "file", "directory": "relative/dir"}
    )
    assert result["errors"] == {"directory": "absolute_path"}
    text = _text("zh-Hans", "sub_device", "absolute_path", result["description_placeholders"] or {})
    assert text == "请输入以 / 开头的绝对路径。"


async def test_an_unknown_placeholder_names_it_and_the_allowed_ones(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    flow_id = await _flasher_form(hass, gateway, "command")
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_FLASHER_KIND: "command", "program": "/bin/true", "args": ["{nope}"], "timeout_s": 60}
    )
    assert result["errors"] == {"args": "unknown_placeholder"}
    placeholders = result["description_placeholders"] or {}
    assert placeholders["name"] == "{nope}"
    assert "{device_name}" in placeholders["allowed"]
    assert _text("zh-Hans", "sub_device", "unknown_placeholder", placeholders).startswith(
        "{nope} 不是可用的占位符"
    )
