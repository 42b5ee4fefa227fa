"""The sub-device subentry flow against a running gateway: add, every error, edit, remove (with unbind)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.components.update import UpdateEntityFeature
from homeassistant.components.update.const import ATTR_INSTALLED_VERSION
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest

from custom_components.tencent_iot_gateway.const import (
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_FLASHER,
    CONF_FLASHER_KIND,
    CONF_INSTALLED_VERSION,
    CONF_MAINTENANCE_START,
    CONF_PRODUCT_ID,
    CONF_UNBIND_ON_REMOVE,
    DOMAIN,
    SUBENTRY_SUB_DEVICE,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.subentry_flow import SECTION_FIELDS, UPDATED, Section, nest
from tests.emulator_fixtures import eventually

from .gateway_rig import Gateway, add_entry
from .helpers import (
    LIGHT_PRODUCT,
    add_sub_device,
    available,
    console_online,
    frontend_fields,
    gateway_operations,
    light_key,
    operation_seen,
    register_lights,
    setup_gateway,
    state,
    sub,
    suggested,
    wait_for,
)

GOOD_SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="


async def _start_add(hass: HomeAssistant, entry: ConfigEntry) -> str:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SUB_DEVICE), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return str(result["flow_id"])


def _device_input(name: str, **extra: Any) -> dict[str, Any]:
    return {
        CONF_PRODUCT_ID: LIGHT_PRODUCT,
        CONF_DEVICE_NAME: name,
        CONF_INSTALLED_VERSION: "1.0.0",
        CONF_FLASHER_KIND: "none",
        CONF_UNBIND_ON_REMOVE: False,
    } | extra


async def _add(hass: HomeAssistant, entry: ConfigEntry, user_input: dict[str, Any]) -> dict[str, Any]:
    return dict(await add_sub_device(hass, entry, user_input))


async def _to_settings_form(hass: HomeAssistant, entry: ConfigEntry, name: str) -> str:
    """A flow past the ids of `name`, on the form of everything else."""
    flow_id = await _start_add(hass, entry)
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_PRODUCT_ID: LIGHT_PRODUCT, CONF_DEVICE_NAME: name}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "device"
    assert result["errors"] in (None, {})
    return flow_id


def _subentry_id(entry: ConfigEntry, name: str) -> str:
    return next(sid for sid, s in entry.subentries.items() if s.unique_id == light_key(name))


async def test_add_without_secret_then_bound_in_console(hass: HomeAssistant, gateway: Gateway) -> None:
    """Added without a secret while unbound: unavailable; bound in the console: online, version reported.

    (A device bound before the gateway starts is adopted on its own: see test_dynamic_devices.py.)
    """
    await register_lights(gateway, "light1", bind=False)
    entry = await add_entry(hass, gateway.entry_data)
    result = await _add(hass, entry, _device_input("light1"))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "light1"  # the device name: no product id in what the user reads
    subentry = entry.subentries[_subentry_id(entry, "light1")]
    assert dict(subentry.data) == {
        CONF_PRODUCT_ID: LIGHT_PRODUCT,
        CONF_DEVICE_NAME: "light1",
        CONF_INSTALLED_VERSION: "1.0.0",
        CONF_UNBIND_ON_REMOVE: False,
    }
    await wait_for(hass, lambda: hass.states.get("update.light1_firmware") is not None)
    await operation_seen(gateway, "online", light_key("light1"))
    assert not available(hass, "update.light1_firmware")

    await gateway.emulator.console.bind(gateway.key, light_key("light1"))
    await wait_for(hass, lambda: available(hass, "update.light1_firmware"))
    assert state(hass, "update.light1_firmware").attributes[ATTR_INSTALLED_VERSION] == "1.0.0"
    assert await console_online(gateway, "light1")
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, light_key("light1")), entry.entry_id)
    assert device is not None
    assert device.config_subentry_id == subentry.subentry_id
    assert len(entry.subentries) == 1  # the `change` push did not add it a second time

    async def reported() -> bool:
        return (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).version == "1.0.0"

    await eventually(reported)


async def test_add_with_secret_binds_through_the_gateway(hass: HomeAssistant, gateway: Gateway) -> None:
    """Not bound in the cloud, but given its secret: the gateway binds it and brings it online."""
    secrets = await register_lights(gateway, "light2", bind=False)
    entry = await add_entry(hass, gateway.entry_data)
    result = await _add(hass, entry, _device_input("light2", **{CONF_DEVICE_SECRET: secrets["light2"]}))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.subentries[_subentry_id(entry, "light2")].data[CONF_DEVICE_SECRET] == secrets["light2"]
    await wait_for(hass, lambda: available(hass, "update.light2_firmware"))
    await operation_seen(gateway, "bind", light_key("light2"))
    status = await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light2")
    assert status.gateway == gateway.key
    assert status.online


async def test_add_unbound_without_secret_stays_unavailable(
    hass: HomeAssistant, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Not bound and no secret: the subentry is kept, its entities unavailable, and the log says why."""
    await register_lights(gateway, "light3", bind=False)
    entry = await add_entry(hass, gateway.entry_data)
    result = await _add(hass, entry, _device_input("light3"))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await wait_for(hass, lambda: "is not bound to gateway" in caplog.text)
    assert not available(hass, "update.light3_firmware")
    assert entry.runtime_data.online_result(DeviceId(LIGHT_PRODUCT, "light3")) == -1


@pytest.mark.parametrize(
    ("ids", "field", "error"),
    [
        ({CONF_PRODUCT_ID: "bad id!"}, CONF_PRODUCT_ID, "product_id_format"),
        ({CONF_PRODUCT_ID: ""}, CONF_PRODUCT_ID, "product_id_format"),
        ({CONF_PRODUCT_ID: "lightpid"}, CONF_PRODUCT_ID, "product_id_format"),
        ({CONF_PRODUCT_ID: "lightprod1"}, CONF_PRODUCT_ID, "product_id_format"),
        ({CONF_PRODUCT_ID: "LIGHTPROD12"}, CONF_PRODUCT_ID, "product_id_format"),
        ({CONF_DEVICE_NAME: "bad name!"}, CONF_DEVICE_NAME, "device_name_characters"),
        ({CONF_PRODUCT_ID: "GWPROD0001", CONF_DEVICE_NAME: "gw01"}, "base", "sub_device_is_gateway"),
    ],
)
async def test_bad_ids_are_refused_on_the_first_step(
    hass: HomeAssistant, gateway: Gateway, ids: dict[str, Any], field: str, error: str
) -> None:
    """Product ID (Tencent's 10 upper-case letters and digits), device name and the gateway itself are checked
    before anything else is asked; a correction goes on to the rest."""
    entry = await add_entry(hass, gateway.entry_data)
    flow_id = await _start_add(hass, entry)
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_PRODUCT_ID: LIGHT_PRODUCT, CONF_DEVICE_NAME: "light1"} | ids
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {field: error}
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_PRODUCT_ID: LIGHT_PRODUCT, CONF_DEVICE_NAME: "light1"}
    )
    assert result["step_id"] == "device"
    assert result["description_placeholders"] == {"device": "light1"}


@pytest.mark.parametrize(
    ("user_input", "field", "error"),
    [
        ({CONF_DEVICE_SECRET: "not base64 !!"}, CONF_DEVICE_SECRET, "not_base64"),
        ({CONF_INSTALLED_VERSION: "v" * 33}, CONF_INSTALLED_VERSION, "too_long"),
        ({CONF_INSTALLED_VERSION: "a\tb"}, CONF_INSTALLED_VERSION, "control_character"),
    ],
)
async def test_add_field_errors(
    hass: HomeAssistant, gateway: Gateway, user_input: dict[str, Any], field: str, error: str
) -> None:
    """Each bad field is named on the form with its problem's key (and its values); a correction succeeds."""
    entry = await add_entry(hass, gateway.entry_data)
    flow_id = await _to_settings_form(hass, entry, "light1")
    entered = _device_input("light1", **user_input)
    del entered[CONF_PRODUCT_ID], entered[CONF_DEVICE_NAME]
    result = await hass.config_entries.subentries.async_configure(flow_id, nest(entered))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "device"
    assert result["errors"] == {field: error}
    if error == "too_long":
        placeholders = dict(result["description_placeholders"] or {})
        assert (placeholders["length"], placeholders["max"]) == ("33", "32")
    result = await hass.config_entries.subentries.async_configure(
        flow_id, nest(entered | {CONF_DEVICE_SECRET: "", CONF_INSTALLED_VERSION: "1.0.0"})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_a_configured_device_is_refused_before_the_rest_is_asked(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """The same sub-device twice: said on the first step, on the device name, with the name it is known by."""
    named = sub("light1")
    named["title"] = "Porch light"
    entry = await add_entry(hass, gateway.entry_data, subentries=[named])
    flow_id = await _start_add(hass, entry)
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_PRODUCT_ID: LIGHT_PRODUCT, CONF_DEVICE_NAME: "light1"}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {CONF_DEVICE_NAME: "sub_device_exists"}
    assert result["description_placeholders"] == {"device": "Porch light"}
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {CONF_PRODUCT_ID: LIGHT_PRODUCT, CONF_DEVICE_NAME: "light2"}
    )
    assert result["step_id"] == "device"


async def test_a_device_added_meanwhile_aborts_at_the_end(hass: HomeAssistant, gateway: Gateway) -> None:
    """Added from another window while this flow was on its second form: not a second subentry."""
    entry = await add_entry(hass, gateway.entry_data)
    flow_id = await _to_settings_form(hass, entry, "light1")
    assert (await _add(hass, entry, _device_input("light1")))["type"] is FlowResultType.CREATE_ENTRY
    entered = _device_input("light1")
    del entered[CONF_PRODUCT_ID], entered[CONF_DEVICE_NAME]
    result = await hass.config_entries.subentries.async_configure(flow_id, nest(entered))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert len(entry.subentries) == 1


async def _to_flasher_form(hass: HomeAssistant, entry: ConfigEntry, kind: str) -> str:
    flow_id = await _to_settings_form(hass, entry, "light1")
    entered = _device_input("light1", **{CONF_FLASHER_KIND: kind})
    del entered[CONF_PRODUCT_ID], entered[CONF_DEVICE_NAME]
    result = await hass.config_entries.subentries.async_configure(flow_id, nest(entered))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == f"flasher_{kind}"
    return flow_id


def _selectors(result: Any) -> dict[str, Any]:
    schema = result["data_schema"]
    assert schema is not None
    return {str(key): value for key, value in schema.schema.items()}


async def test_each_flasher_kind_has_its_own_form(hass: HomeAssistant, gateway: Gateway) -> None:
    """No object editor: every kind's fields with their own selectors (URL, password, select, seconds), after
    the kind itself (the way to another kind's form)."""
    entry = await add_entry(hass, gateway.entry_data)
    expected = {
        "command": {"program", "args", "timeout_s"},
        "http": {
            "url",
            "method",
            "token",
            "version_url",
            "poll_interval_s",
            "timeout_s",
            "version_timeout_s",
        },
        "file": {"directory"},
        "automation": {"timeout_s"},
    }
    for kind, fields in expected.items():
        flow_id = await _to_flasher_form(hass, entry, kind)
        result = await hass.config_entries.subentries.async_configure(flow_id)
        selectors = _selectors(result)
        assert next(iter(selectors)) == CONF_FLASHER_KIND
        assert set(selectors) == fields | {CONF_FLASHER_KIND}, kind
        # Nothing the user must type is required by the schema: HA's frontend would not submit a change of
        # kind with it empty (the kind's own check names a missing field instead).
        assert not [f["name"] for f in frontend_fields(result) if f.get("required") and "default" not in f]
        assert "{path}" in (result["description_placeholders"] or {})["placeholders"]
        hass.config_entries.subentries.async_abort(flow_id)
        if kind == "http":
            assert selectors["url"].config["type"] == "url"
            assert selectors["version_url"].config["type"] == "url"
            assert selectors["token"].config["type"] == "password"
            assert selectors["method"].config["options"] == ["PUT", "POST"]
            for seconds in ("poll_interval_s", "timeout_s", "version_timeout_s"):
                assert selectors[seconds].config["unit_of_measurement"] == "s"
        if kind == "command":
            assert selectors["args"].config["multiple"] is True


async def test_http_flasher_form_stores_the_settings(hass: HomeAssistant, gateway: Gateway) -> None:
    """A wrong URL is named on its field with every value kept; the corrected form stores the engine's shape."""
    entry = await add_entry(hass, gateway.entry_data)
    flow_id = await _to_flasher_form(hass, entry, "http")
    entered = {
        "url": "ftp://192.168.1.50/ota",
        "method": "POST",
        "token": "tok-123",
        "version_url": "http://192.168.1.50/version",
        "poll_interval_s": 1.5,
        "timeout_s": 120,
        "version_timeout_s": 60,
    }
    result = await hass.config_entries.subentries.async_configure(flow_id, entered)
    assert result["errors"] == {"url": "url_scheme"}
    assert suggested(result) == entered | {CONF_FLASHER_KIND: "http"}
    # An address without its scheme: a plain hint of the form's own, on the field.
    for field in ("url", "version_url"):
        without_scheme = entered | {"url": "http://192.168.1.50/ota", field: "192.168.1.50/x"}
        result = await hass.config_entries.subentries.async_configure(flow_id, without_scheme)
        assert result["errors"] == {field: "url_without_scheme"}, field
        assert suggested(result) == without_scheme | {CONF_FLASHER_KIND: "http"}
    result = await hass.config_entries.subentries.async_configure(flow_id, entered | {"url": ""})
    assert result["errors"] == {"url": "required_setting"}
    result = await hass.config_entries.subentries.async_configure(
        flow_id, entered | {"url": "http://192.168.1.50/ota/{device_name}"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.subentries[_subentry_id(entry, "light1")].data[CONF_FLASHER] == {
        "kind": "http",
        "url": "http://192.168.1.50/ota/{device_name}",
        "method": "POST",
        "token": "tok-123",
        "version_url": "http://192.168.1.50/version",
        "poll_interval_s": 1.5,
        "timeout_s": 120.0,
        "version_timeout_s": 60.0,
    }


async def test_command_flasher_form_checks_the_program(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """A program that is missing or not executable is named on its field; arguments are a list."""
    entry = await add_entry(hass, gateway.entry_data)
    flow_id = await _to_flasher_form(hass, entry, "command")
    not_executable = tmp_path / "flash.sh"
    not_executable.write_text("#!/bin/sh\n")
    for program in (str(tmp_path / "missing"), str(not_executable), "no-such-program-on-path"):
        entered = {"program": program, "args": ["--port", "/dev/ttyUSB0", "{path}"], "timeout_s": 30}
        result = await hass.config_entries.subentries.async_configure(flow_id, entered)
        assert result["errors"] == {"program": "program_not_found"}, program
        assert suggested(result) == entered | {CONF_FLASHER_KIND: "command"}
    result = await hass.config_entries.subentries.async_configure(
        flow_id, {"program": "true", "args": ["{unknown}"], "timeout_s": 30}
    )
    assert result["errors"] == {"args": "unknown_placeholder"}
    not_executable.chmod(0o755)
    result = await hass.config_entries.subentries.async_configure(
        flow_id,
        {"program": str(not_executable), "args": ["--port", "/dev/ttyUSB0", "{path}"], "timeout_s": 30},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.subentries[_subentry_id(entry, "light1")].data[CONF_FLASHER] == {
        "kind": "command",
        "program": str(not_executable),
        "args": ["--port", "/dev/ttyUSB0", "{path}"],
        "timeout_s": 30.0,
    }


async def test_file_flasher_form_checks_the_directory(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """A missing directory, a file in its place and a relative path are each named on the field."""
    entry = await add_entry(hass, gateway.entry_data)
    flow_id = await _to_flasher_form(hass, entry, "file")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for directory, error in (
        (str(tmp_path / "missing"), "directory_not_found"),
        (str(a_file), "not_a_directory"),
        ("relative/dir", "absolute_path"),
    ):
        result = await hass.config_entries.subentries.async_configure(flow_id, {"directory": directory})
        assert result["errors"] == {"directory": error}, directory
        assert suggested(result) == {CONF_FLASHER_KIND: "file", "directory": directory}
    result = await hass.config_entries.subentries.async_configure(flow_id, {"directory": str(tmp_path)})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    flasher = entry.subentries[_subentry_id(entry, "light1")].data[CONF_FLASHER]
    assert flasher == {"kind": "file", "directory": str(tmp_path)}


async def _reconfigure(
    hass: HomeAssistant, entry: ConfigEntry, name: str, user_input: dict[str, Any]
) -> dict[str, Any]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SUB_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": _subentry_id(entry, name)},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    return dict(await hass.config_entries.subentries.async_configure(result["flow_id"], nest(user_input)))


async def test_edit_version_and_flasher_live(hass: HomeAssistant, gateway: Gateway, tmp_path: Path) -> None:
    """Editing the version reports it and updates the device; adding a flasher enables install; no reload."""
    secrets = await register_lights(gateway, "light1")
    entry = await setup_gateway(hass, gateway, [sub("light1", secret=secrets["light1"])])
    runtime = entry.runtime_data
    features = state(hass, "update.light1_firmware").attributes["supported_features"]
    assert not features & UpdateEntityFeature.INSTALL

    result = await _reconfigure(
        hass,
        entry,
        "light1",
        {CONF_INSTALLED_VERSION: "2.0.0", CONF_FLASHER_KIND: "file", CONF_UNBIND_ON_REMOVE: True},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "flasher_file"
    result = dict(
        await hass.config_entries.subentries.async_configure(result["flow_id"], {"directory": str(tmp_path)})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == UPDATED
    data = entry.subentries[_subentry_id(entry, "light1")].data
    assert data[CONF_DEVICE_SECRET] == secrets["light1"]  # left empty: kept
    assert data[CONF_UNBIND_ON_REMOVE] is True

    await wait_for(
        hass, lambda: state(hass, "update.light1_firmware").attributes[ATTR_INSTALLED_VERSION] == "2.0.0"
    )
    assert entry.runtime_data is runtime  # applied live, not by a reload
    features = state(hass, "update.light1_firmware").attributes["supported_features"]
    assert features & UpdateEntityFeature.INSTALL
    device = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, light_key("light1")), entry.entry_id)
    assert device is not None
    assert device.sw_version == "2.0.0"

    async def reported() -> bool:
        return (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).version == "2.0.0"

    await eventually(reported)

    # And back to no flasher: install goes away.
    result = await _reconfigure(
        hass,
        entry,
        "light1",
        {CONF_INSTALLED_VERSION: "2.0.0", CONF_FLASHER_KIND: "none", CONF_UNBIND_ON_REMOVE: True},
    )
    assert result["reason"] == UPDATED
    assert CONF_FLASHER not in entry.subentries[_subentry_id(entry, "light1")].data
    await wait_for(
        hass,
        lambda: (
            not (
                state(hass, "update.light1_firmware").attributes["supported_features"]
                & UpdateEntityFeature.INSTALL
            )
        ),
    )


async def test_edit_errors(hass: HomeAssistant, gateway: Gateway) -> None:
    """A bad version or secret on the edit form is named; the subentry is unchanged."""
    entry = await add_entry(hass, gateway.entry_data, subentries=[sub("light1")])
    for field, value, error in (
        (CONF_INSTALLED_VERSION, "x" * 33, "too_long"),
        (CONF_DEVICE_SECRET, "%%%", "not_base64"),
    ):
        user_input = {CONF_INSTALLED_VERSION: "1.0", CONF_FLASHER_KIND: "none", field: value}
        result = await _reconfigure(hass, entry, "light1", user_input)
        assert result["type"] is FlowResultType.FORM
        assert result["errors"] == {field: error}
    assert entry.subentries[_subentry_id(entry, "light1")].data[CONF_INSTALLED_VERSION] == "0.1"


async def test_edit_suggests_current_flasher_settings(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """Editing a sub-device with a file flasher suggests its directory on the file form."""
    flasher = {"kind": "file", "directory": str(tmp_path)}
    entry = await add_entry(hass, gateway.entry_data, subentries=[sub("light1", flasher=flasher)])
    result = await _reconfigure(
        hass, entry, "light1", {CONF_INSTALLED_VERSION: "0.1", CONF_FLASHER_KIND: "file"}
    )
    assert result["step_id"] == "flasher_file"
    assert suggested(result) == {"directory": str(tmp_path)}


async def test_settings_stored_by_the_object_editor_open_in_the_new_form(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """Subentries saved as objects (the storage shape is unchanged) show on the form and keep their token.

    The old editor stored whatever `to_dict()` gave (`token: null`, `version_url: null`) or a hand-written
    subset: both load, are suggested without nulls and without the token, and an empty token keeps it.
    """
    stored = {
        "kind": "http",
        "url": "http://192.168.1.50/ota/{device_name}?mode=full",
        "method": "PUT",
        "token": "old-token",
        "version_url": None,
        "poll_interval_s": 2.0,
        "timeout_s": 600.0,
        "version_timeout_s": 300.0,
    }
    await register_lights(gateway, "light1")
    entry = await setup_gateway(hass, gateway, [sub("light1", flasher=stored)])
    assert entry.runtime_data.has_flasher(DeviceId(LIGHT_PRODUCT, "light1"))
    result = await _reconfigure(
        hass, entry, "light1", {CONF_INSTALLED_VERSION: "0.1", CONF_FLASHER_KIND: "http"}
    )
    assert result["step_id"] == "flasher_http"
    assert suggested(result) == {
        "url": "http://192.168.1.50/ota/{device_name}?mode=full",
        "method": "PUT",
        "poll_interval_s": 2.0,
        "timeout_s": 600.0,
        "version_timeout_s": 300.0,
    }
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], suggested(result) | {CONF_FLASHER_KIND: "http"}
        )
    )
    assert result["reason"] == UPDATED
    assert entry.subentries[_subentry_id(entry, "light1")].data[CONF_FLASHER] == stored


@pytest.mark.parametrize("unbind", [False, True])
async def test_remove_sends_offline_and_unbind_when_asked(
    hass: HomeAssistant, gateway: Gateway, unbind: bool
) -> None:
    """Deleting the subentry: `offline` always, `unbind` when asked; device and entities go."""
    await register_lights(gateway, "light1")
    entry = await setup_gateway(hass, gateway, [sub("light1", unbind_on_remove=unbind)])
    assert await console_online(gateway, "light1")
    assert hass.config_entries.async_remove_subentry(entry, _subentry_id(entry, "light1"))
    await operation_seen(gateway, "offline", light_key("light1"))
    await wait_for(hass, lambda: hass.states.get("update.light1_firmware") is None)
    assert (
        dr.async_get(hass).async_get_device_by_identifier((DOMAIN, light_key("light1")), entry.entry_id)
        is None
    )
    assert er.async_get(hass).async_get("update.light1_firmware") is None
    status = await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")
    assert not status.online
    if unbind:
        await operation_seen(gateway, "unbind", light_key("light1"))

        async def unbound() -> bool:
            return (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).gateway is None

        await eventually(unbound)
    else:
        assert status.gateway == gateway.key
        assert not [
            p
            for p in await gateway_operations(gateway, "unbind")
            if any(d.get("device_name") == "light1" for d in p.get("devices") or [])
        ]


async def test_a_removed_but_still_bound_device_stays_removed(hass: HomeAssistant, gateway: Gateway) -> None:
    """Removed without unbinding, a sub-device is not adopted again on the next connect; a console re-bind brings it back."""
    await register_lights(gateway, "light1")
    entry = await setup_gateway(hass, gateway, [sub("light1")])
    assert hass.config_entries.async_remove_subentry(entry, _subentry_id(entry, "light1"))
    await wait_for(hass, lambda: hass.states.get("update.light1_firmware") is None)
    listed_before = len(await gateway_operations(gateway, "describe_sub_devices"))

    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()

    async def listed_again() -> bool:
        return len(await gateway_operations(gateway, "describe_sub_devices")) > listed_before

    await eventually(listed_again)
    await hass.async_block_till_done()
    status = await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")
    assert status.gateway == gateway.key  # still bound in the cloud...
    assert all(s.unique_id != light_key("light1") for s in entry.subentries.values())  # ...but not back
    assert hass.states.get("update.light1_firmware") is None

    await gateway.emulator.console.unbind(gateway.key, light_key("light1"))
    await gateway.emulator.console.bind(gateway.key, light_key("light1"))
    await wait_for(hass, lambda: any(s.unique_id == light_key("light1") for s in entry.subentries.values()))
    await wait_for(hass, lambda: hass.states.get("update.light1_firmware") is not None)


async def test_editing_an_adopted_sub_device_may_leave_its_version_unknown(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """An adopted sub-device has no version: its edit form does not invent one (no `0.0.0` default), so
    saving it without a version keeps it unknown; a version entered later is stored."""
    adopted = sub("light1")
    adopted["data"] = {k: v for k, v in adopted["data"].items() if k != CONF_INSTALLED_VERSION}
    entry = await add_entry(hass, gateway.entry_data, subentries=[adopted])
    result = await _reconfigure(hass, entry, "light1", {CONF_FLASHER_KIND: "none"})
    assert result["reason"] == UPDATED
    assert CONF_INSTALLED_VERSION not in entry.subentries[_subentry_id(entry, "light1")].data
    result = await _reconfigure(
        hass, entry, "light1", {CONF_INSTALLED_VERSION: "3.1", CONF_FLASHER_KIND: "none"}
    )
    assert result["reason"] == UPDATED
    assert entry.subentries[_subentry_id(entry, "light1")].data[CONF_INSTALLED_VERSION] == "3.1"


def _sections(result: Any) -> dict[str, dict[str, Any]]:
    return {field["name"]: field for field in frontend_fields(result) if field.get("type") == "expandable"}


async def test_the_settings_form_keeps_the_optional_parts_in_collapsed_sections(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """After the ids: four fields, then details, pre-flight and health check in sections, all collapsed; the
    version has no default (none is invented)."""
    entry = await add_entry(hass, gateway.entry_data)
    flow_id = await _to_settings_form(hass, entry, "light1")
    result = await hass.config_entries.subentries.async_configure(flow_id, None)
    fields = frontend_fields(result)
    assert [field["name"] for field in fields if field.get("type") != "expandable"] == [
        "name",
        CONF_DEVICE_SECRET,
        CONF_INSTALLED_VERSION,
        CONF_FLASHER_KIND,
    ]
    version = next(field for field in fields if field["name"] == CONF_INSTALLED_VERSION)
    assert not version["required"]
    assert "default" not in version
    sections = _sections(result)
    assert list(sections) == [Section.DETAILS, Section.PREFLIGHT, Section.HEALTH]
    assert not any(part["expanded"] for part in sections.values())
    inside = {field["name"] for part in sections.values() for field in part["schema"]}
    assert inside == {field for fields in SECTION_FIELDS.values() for field in fields}
    assert CONF_UNBIND_ON_REMOVE in inside


async def test_an_error_inside_a_section_is_said_on_it_and_opens_it(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """HA shows a section's error above it (not a field's inside it): a maintenance window without an end is
    an error of the pre-flight section, which comes back open with what was entered."""
    entry = await add_entry(hass, gateway.entry_data)
    flow_id = await _to_settings_form(hass, entry, "light1")
    entered = {CONF_FLASHER_KIND: "none", CONF_MAINTENANCE_START: "02:00:00"}
    result = await hass.config_entries.subentries.async_configure(flow_id, nest(entered))
    assert result["step_id"] == "device"
    assert result["errors"] == {Section.PREFLIGHT: "window_incomplete"}
    assert {name: part["expanded"] for name, part in _sections(result).items()} == {
        Section.DETAILS: False,
        Section.PREFLIGHT: True,
        Section.HEALTH: False,
    }
    assert suggested(result)[CONF_MAINTENANCE_START] == "02:00:00"


async def test_a_new_sub_device_without_a_version_reports_none(hass: HomeAssistant, gateway: Gateway) -> None:
    """Added with the version left empty: stored without one, unknown in HA, and nothing reported to the cloud
    (no "0.0.0" that nobody knows to be true)."""
    secrets = await register_lights(gateway, "light1", bind=False)
    entry = await add_entry(hass, gateway.entry_data)
    entered = _device_input("light1", **{CONF_DEVICE_SECRET: secrets["light1"]})
    del entered[CONF_INSTALLED_VERSION]
    result = await _add(hass, entry, entered)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_INSTALLED_VERSION not in entry.subentries[_subentry_id(entry, "light1")].data
    await wait_for(hass, lambda: available(hass, "update.light1_firmware"))
    await entry.runtime_data.engine.wait_versions_reported()
    assert state(hass, "update.light1_firmware").attributes[ATTR_INSTALLED_VERSION] is None
    assert (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).version is None


async def test_the_edit_form_shows_the_running_version_and_records_going_back(
    hass: HomeAssistant, gateway: Gateway
) -> None:
    """The subentry still says 0.1 while the device runs V100R0002 (flashed since): the form shows V100R0002.
    Entering 0.1 (the subentry's value, not what runs) is the user saying it went back: recorded, reported."""
    await register_lights(gateway, "light1")
    entry = await setup_gateway(hass, gateway, [sub("light1", version="0.1")])
    device = DeviceId(LIGHT_PRODUCT, "light1")

    async def cloud_version() -> str | None:
        return (await gateway.emulator.console.get_device(LIGHT_PRODUCT, "light1")).version

    await entry.runtime_data.async_set_installed_version(device, "V100R0002")
    assert entry.subentries[_subentry_id(entry, "light1")].data[CONF_INSTALLED_VERSION] == "0.1"
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SUB_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": _subentry_id(entry, "light1")},
    )
    assert suggested(result)[CONF_INSTALLED_VERSION] == "V100R0002"
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], nest({CONF_INSTALLED_VERSION: "0.1", CONF_FLASHER_KIND: "none"})
    )
    assert result["reason"] == UPDATED
    await wait_for(hass, lambda: entry.runtime_data.snapshot(device).installed_version == "0.1")
    assert state(hass, "update.light1_firmware").attributes[ATTR_INSTALLED_VERSION] == "0.1"

    async def reported_back() -> bool:
        return await cloud_version() == "0.1"

    await eventually(reported_back)

    # Submitted as shown (only the name changed): not a statement, nothing recorded over what runs.
    await entry.runtime_data.async_set_installed_version(device, "V100R0003")
    renamed = await _reconfigure(
        hass,
        entry,
        "light1",
        {"name": "Porch", CONF_INSTALLED_VERSION: "V100R0003", CONF_FLASHER_KIND: "none"},
    )
    assert renamed["reason"] == UPDATED
    await hass.async_block_till_done()
    assert entry.runtime_data.snapshot(device).installed_version == "V100R0003"
    assert entry.subentries[_subentry_id(entry, "light1")].data[CONF_INSTALLED_VERSION] == "V100R0003"


async def test_the_flasher_form_leads_to_another_kind_or_to_none(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """Changing the kind on a flasher's form (nothing else filled in) goes to that kind's form, without an
    error; none saves the sub-device without a flasher."""
    entry = await add_entry(hass, gateway.entry_data)
    flow_id = await _to_flasher_form(hass, entry, "http")
    result = await hass.config_entries.subentries.async_configure(flow_id, {CONF_FLASHER_KIND: "file"})
    assert result["step_id"] == "flasher_file"
    assert result["errors"] in (None, {})
    result = await hass.config_entries.subentries.async_configure(flow_id, {CONF_FLASHER_KIND: "file"})
    assert result["errors"] == {"directory": "required_setting"}
    result = await hass.config_entries.subentries.async_configure(flow_id, {CONF_FLASHER_KIND: "none"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert CONF_FLASHER not in entry.subentries[_subentry_id(entry, "light1")].data


async def test_editing_goes_to_another_kind_and_back_to_the_stored_settings(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path
) -> None:
    """On the edit flow, the kind's form leads to another kind (nothing suggested there) and back to the
    stored one, whose settings are suggested again."""
    flasher = {"kind": "file", "directory": str(tmp_path)}
    entry = await add_entry(hass, gateway.entry_data, subentries=[sub("light2", flasher=flasher)])
    result = await _reconfigure(hass, entry, "light2", {CONF_FLASHER_KIND: "file"})
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {CONF_FLASHER_KIND: "command"}
        )
    )
    assert result["step_id"] == "flasher_command"
    assert suggested(result) == {}
    result = dict(
        await hass.config_entries.subentries.async_configure(result["flow_id"], {CONF_FLASHER_KIND: "file"})
    )
    assert suggested(result) == {"directory": str(tmp_path)}
