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
    CONF_CANARY_PERCENT,
    CONF_DEVICE_NAME,
    CONF_FLASHER_KIND,
    CONF_GATEWAY_VERSION,
    CONF_INSTALL_POLICY,
    CONF_INSTALLED_VERSION,
    CONF_MAX_DOWNLOADS,
    CONF_MAX_FIRMWARE_SIZE_MIB,
    CONF_MAX_FLASHES,
    CONF_PREFLIGHT_TIMEOUT_MIN,
    CONF_PRODUCT_ID,
    CONF_UNBIND_ON_REMOVE,
    MAX_PREFLIGHT_TIMEOUT_MIN,
    SUBENTRY_SUB_DEVICE,
)
from custom_components.tencent_iot_gateway.ota import failures

from .gateway_rig import Gateway, add_entry
from .helpers import LIGHT_PRODUCT

BASE = Path(failures.__file__).parent.parent


def _text(language: str, section: str, key: str, placeholders: Mapping[str, str]) -> str:
    """An error as the frontend shows it: the language's text with the step's placeholders."""
    strings = json.loads((BASE / f"translations/{language}.json").read_text(encoding="utf-8"))
    tree = strings["config_subentries"]["sub_device"] if section == "sub_device" else strings[section]
    text: str = tree["error"][key]
    return text.format(**placeholders)


def _device_input(**extra: Any) -> dict[str, Any]:
    return {
        CONF_PRODUCT_ID: LIGHT_PRODUCT,
        CONF_DEVICE_NAME: "light1",
        CONF_INSTALLED_VERSION: "1.0.0",
        CONF_FLASHER_KIND: "none",
        CONF_UNBIND_ON_REMOVE: False,
    } | extra


async def _add(hass: HomeAssistant, gateway: Gateway, user_input: dict[str, Any]) -> Any:
    entry = await add_entry(hass, gateway.entry_data)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SUB_DEVICE), context={"source": SOURCE_USER}
    )
    return await hass.config_entries.subentries.async_configure(result["flow_id"], user_input)


async def test_a_number_out_of_its_range_says_the_range(hass: HomeAssistant, gateway: Gateway) -> None:
    """The options' canary share at -5: our own error with 0–100, not voluptuous' "Value -5.0 is too small"."""
    entry = await add_entry(hass, gateway.entry_data)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_INSTALL_POLICY: "manual",
            CONF_MAX_DOWNLOADS: 2,
            CONF_MAX_FLASHES: 2,
            CONF_MAX_FIRMWARE_SIZE_MIB: 64,
            CONF_CANARY_PERCENT: -5.0,
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_CANARY_PERCENT: "out_of_range"}
    placeholders = result["description_placeholders"] or {}
    assert (placeholders["min"], placeholders["max"]) == ("0", "100")
    assert _text("en", "options", "out_of_range", placeholders) == "Enter a number from 0 to 100."
    assert _text("zh-Hans", "options", "out_of_range", placeholders) == "请输入 0 到 100 之间的数字。"
    assert entry.options.get(CONF_CANARY_PERCENT) is None  # nothing stored


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


async def test_a_product_id_too_long_is_translated(hass: HomeAssistant, gateway: Gateway) -> None:
    """The issue's example: "无效：is 12 characters long; at most 10 are allowed" now reads in Chinese."""
    result = await _add(hass, gateway, _device_input(**{CONF_PRODUCT_ID: "ABCDEFGHIJKL"}))
    assert result["errors"] == {CONF_PRODUCT_ID: "too_long"}
    placeholders = result["description_placeholders"] or {}
    assert (
        _text("zh-Hans", "sub_device", "too_long", placeholders) == "当前长度为 12 个字符，最多允许 10 个。"
    )
    assert _text("en", "sub_device", "too_long", placeholders) == (
        "This is 12 characters long; at most 10 are allowed."
    )


async def test_a_pre_flight_timeout_out_of_range_says_the_range(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    result = await _add(hass, gateway, _device_input(**{CONF_PREFLIGHT_TIMEOUT_MIN: -5}))
    assert result["errors"] == {CONF_PREFLIGHT_TIMEOUT_MIN: "out_of_range"}
    placeholders = result["description_placeholders"] or {}
    assert (placeholders["min"], placeholders["max"]) == ("1", str(MAX_PREFLIGHT_TIMEOUT_MIN))


async def _flasher_form(hass: HomeAssistant, gateway: Gateway, kind: str) -> str:
    result = await _add(hass, gateway, _device_input(**{CONF_FLASHER_KIND: kind}))
    assert result["step_id"] == f"flasher_{kind}"
    return str(result["flow_id"])


@pytest.mark.parametrize(
    ("entered", "field", "key", "zh"),
    [
        ({"url": "192.168.1.50/ota"}, "url", "url_scheme", "请输入以 http:// 或 https:// 开头的地址。"),
        ({"timeout_s": -5}, "timeout_s", "out_of_range", "请输入 1 到 86400 之间的数字。"),
        ({"poll_interval_s": 0}, "poll_interval_s", "out_of_range", "请输入 0.1 到 3600 之间的数字。"),
    ],
)
async def test_http_flasher_errors_are_translated(
    hass: HomeAssistant, gateway: Gateway, entered: dict[str, Any], field: str, key: str, zh: str
) -> None:
    """The issue's "无效：must be an http:// or https:// URL", and the flasher's number fields."""
    flow_id = await _flasher_form(hass, gateway, "http")
    form = {"url": "http://192.168.1.50/ota", "method": "PUT", "timeout_s": 600} | entered
    result = await hass.config_entries.subentries.async_configure(flow_id, form)
    assert result["errors"] == {field: key}
    assert _text("zh-Hans", "sub_device", key, result["description_placeholders"] or {}) == zh


async def test_a_relative_directory_is_translated(hass: HomeAssistant, gateway: Gateway) -> None:
    """The issue's "无效：must be an absolute path"."""
    flow_id = await _flasher_form(hass, gateway, "file")
    result = await hass.config_entries.subentries.async_configure(flow_id, {"directory": "relative/dir"})
    assert result["errors"] == {"directory": "absolute_path"}
    text = _text("zh-Hans", "sub_device", "absolute_path", result["description_placeholders"] or {})
    assert text == "请输入以 / 开头的绝对路径。"


async def test_an_unknown_placeholder_names_it_and_the_allowed_ones(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    flow_id = await _flasher_form(hass, gateway, "command")
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {"program": "/bin/true", "args": ["{nope}"], "timeout_s": 60}
    )
    assert result["errors"] == {"args": "unknown_placeholder"}
    placeholders = result["description_placeholders"] or {}
    assert placeholders["name"] == "{nope}"
    assert "{device_name}" in placeholders["allowed"]
    assert _text("zh-Hans", "sub_device", "unknown_placeholder", placeholders).startswith(
        "{nope} 不是可用的占位符"
    )
