"""The config flow, reauth, reconfigure and options, through HA's real flow manager against the emulator."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock, patch

from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest

from custom_components.tencent_iot_gateway.const import (
    CONF_CA_CERT,
    CONF_CANARY_COUNT,
    CONF_CANARY_PERCENT,
    CONF_CANARY_SIZE,
    CONF_CANARY_UNIT,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_HOST,
    CONF_INSTALL_POLICY,
    CONF_MAX_DOWNLOADS,
    CONF_MAX_FAILURES,
    CONF_MAX_FIRMWARE_SIZE_MIB,
    CONF_MAX_FLASHES,
    CONF_PORT,
    CONF_PRODUCT_ID,
    CONF_PRODUCT_SECRET,
    CONF_REGION,
    CONF_REGISTRATION_URL,
    CONF_ROLLBACK_BUDGET_MIB,
    CONF_ROLLOUT,
    CONF_SOAK_MIN,
    CONF_TLS,
    DOMAIN,
)
from custom_components.tencent_iot_gateway.engine.errors import CannotConnectError, ConnectCause
from custom_components.tencent_iot_gateway.engine.mqtt import registration
from custom_components.tencent_iot_gateway.entry_config import rollout_settings

from .gateway_rig import PRODUCT_SECRET, Gateway, add_entry
from .helpers import frontend_fields, suggested


def frontend_defaults(result: Any) -> dict[str, Any]:
    """The default of each field of a form, as the frontend shows it."""
    return {field["name"]: field.get("default") for field in frontend_fields(result)}


WRONG_SECRET = "d3Jvbmctc2VjcmV0LXZhbHVl"  # valid base64, not the device's secret


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _user_input(gateway: Gateway, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        CONF_REGION: "custom",
        CONF_PRODUCT_ID: gateway.product_id,
        CONF_DEVICE_NAME: gateway.device_name,
        CONF_DEVICE_SECRET: gateway.secret,
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


async def _start(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return str(result["flow_id"])


async def _reauth(hass: HomeAssistant, entry: ConfigEntry) -> Any:
    entry.async_start_reauth(hass)
    await hass.async_block_till_done()
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert len(flows) == 1
    return flows[0]


async def _reconfigure(hass: HomeAssistant, entry: ConfigEntry) -> Any:
    return await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_RECONFIGURE, "entry_id": entry.entry_id}
    )


async def _configure(hass: HomeAssistant, flow_id: str, data: dict[str, Any]) -> Any:
    return await hass.config_entries.flow.async_configure(flow_id, data)


async def test_custom_broker_creates_the_entry(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """Ids + device secret, then the emulator's TLS broker with its CA: logged in, entry created."""
    flow_id = await _start(hass)
    result = await _configure(hass, flow_id, _user_input(gateway))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "custom"
    assert CONF_REGISTRATION_URL not in result["data_schema"].schema
    result = await _configure(hass, flow_id, gateway.custom)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"{gateway.device_name} ({gateway.product_id})"
    assert result["data"] == gateway.entry_data | {CONF_CA_CERT: gateway.ca_pem.strip() + "\n"}
    assert result["result"].unique_id == gateway.key
    assert len(mock_setup_entry.mock_calls) == 1
    device = await gateway.emulator.console.get_device(gateway.product_id, gateway.device_name)
    assert device.online is False  # the flow's test login has left again


async def test_wrong_secret_is_invalid_auth_then_fixed(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """The broker refuses a wrong secret: invalid_auth on the user form, which can then fix it."""
    flow_id = await _start(hass)
    await _configure(hass, flow_id, _user_input(gateway, device_secret=WRONG_SECRET))
    result = await _configure(hass, flow_id, gateway.custom)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "invalid_auth"}
    result = await _configure(hass, flow_id, _user_input(gateway))
    assert result["step_id"] == "custom"
    result = await _configure(hass, flow_id, gateway.custom)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_a_device_that_is_not_a_gateway_is_refused_with_a_reason(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """Login passes but the gateway topics are refused: the form says why, and no session stays behind."""
    await gateway.emulator.console.add_product(gateway.product_id, gateway=False)
    flow_id = await _start(hass)
    await _configure(hass, flow_id, _user_input(gateway))
    result = await _configure(hass, flow_id, gateway.custom)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {
        "base": "not_gateway"
    }  # old code: an unexpected error, the session left running
    device = await gateway.emulator.console.get_device(gateway.product_id, gateway.device_name)
    assert device.online is False
    assert not mock_setup_entry.mock_calls


async def test_setup_of_a_device_that_is_not_a_gateway_retries(hass: HomeAssistant, gateway: Gateway) -> None:
    """The product changed in the console after the entry was made: setup is retried, nothing leaks."""
    await gateway.emulator.console.add_product(gateway.product_id, gateway=False)
    entry = await add_entry(hass, gateway.entry_data)
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "not a gateway" in str(entry.reason)
    device = await gateway.emulator.console.get_device(gateway.product_id, gateway.device_name)
    assert device.online is False


async def test_unreachable_broker_is_cannot_connect(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """Nothing listens on the port: cannot_connect on the custom form, which can fix the port."""
    flow_id = await _start(hass)
    await _configure(hass, flow_id, _user_input(gateway))
    port = _free_port()
    result = await _configure(hass, flow_id, gateway.custom | {CONF_PORT: port})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "custom"
    assert result["errors"] == {"base": "cannot_connect_refused"}
    placeholders = result["description_placeholders"] or {}
    assert (placeholders["host"], placeholders["port"]) == ("127.0.0.1", str(port))
    result = await _configure(hass, flow_id, gateway.custom)
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_untrusted_broker_is_cannot_connect(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """Without the emulator's CA, Tencent's root does not trust the broker: cannot_connect."""
    flow_id = await _start(hass)
    await _configure(hass, flow_id, _user_input(gateway))
    custom = {key: value for key, value in gateway.custom.items() if key != CONF_CA_CERT}
    result = await _configure(hass, flow_id, custom)
    assert result["errors"] == {"base": "cannot_connect_tls"}


async def test_bad_pem_is_a_field_error(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """Text that is not a PEM certificate: `not_pem` on that field (its text shows what PEM looks like)."""
    flow_id = await _start(hass)
    await _configure(hass, flow_id, _user_input(gateway))
    result = await _configure(hass, flow_id, gateway.custom | {CONF_CA_CERT: "not a certificate"})
    assert result["step_id"] == "custom"
    assert result["errors"] == {CONF_CA_CERT: "not_pem"}
    mock_setup_entry.assert_not_called()


async def test_bad_host_is_a_field_error(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """A host with a path in it cannot be a host."""
    flow_id = await _start(hass)
    await _configure(hass, flow_id, _user_input(gateway))
    result = await _configure(hass, flow_id, gateway.custom | {CONF_HOST: "mqtt://broker/x"})
    assert result["errors"] == {CONF_HOST: "host_name"}


@pytest.mark.parametrize(
    ("overrides", "errors"),
    [
        ({CONF_DEVICE_SECRET: "not base64!"}, {CONF_DEVICE_SECRET: "not_base64"}),
        ({CONF_PRODUCT_ID: "WAY-TOO-LONG-ID"}, {CONF_PRODUCT_ID: "product_id_format"}),
        # Accepted by the engine's rules (letters and digits, at most 10), not of Tencent's shape.
        ({CONF_PRODUCT_ID: "lightpid"}, {CONF_PRODUCT_ID: "product_id_format"}),
        ({CONF_PRODUCT_ID: "gwprod0001"}, {CONF_PRODUCT_ID: "product_id_format"}),
        ({CONF_DEVICE_NAME: "bad name"}, {CONF_DEVICE_NAME: "device_name_characters"}),
        ({CONF_DEVICE_SECRET: None}, {"base": "one_secret"}),
        ({CONF_PRODUCT_SECRET: PRODUCT_SECRET}, {"base": "one_secret"}),
        (
            {CONF_DEVICE_SECRET: None, CONF_PRODUCT_SECRET: "short"},
            {CONF_PRODUCT_SECRET: "too_short"},
        ),
    ],
)
async def test_bad_fields_are_field_errors(
    hass: HomeAssistant, gateway: Gateway, overrides: dict[str, Any], errors: dict[str, str]
) -> None:
    """Malformed ids and secrets are refused on the user form, naming the field, before any connection."""
    flow_id = await _start(hass)
    result = await _configure(hass, flow_id, _user_input(gateway, **overrides))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == errors


async def test_already_configured(hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock) -> None:
    """A second entry for the same gateway aborts before connecting."""
    await add_entry(hass, gateway.entry_data)
    flow_id = await _start(hass)
    result = await _configure(hass, flow_id, _user_input(gateway))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_dynamic_registration_on_a_custom_host(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """A product secret: the device registers at the deployment's HTTPS URL, then logs in with its new secret."""
    flow_id = await _start(hass)
    result = await _configure(
        hass,
        flow_id,
        _user_input(gateway, device_name="gw_new", device_secret=None, product_secret=PRODUCT_SECRET),
    )
    assert CONF_REGISTRATION_URL in result["data_schema"].schema
    result = await _configure(
        hass, flow_id, gateway.custom | {CONF_REGISTRATION_URL: gateway.emulator.https_url}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    data = result["data"]
    assert CONF_PRODUCT_SECRET not in data
    assert CONF_REGISTRATION_URL not in data
    status = await gateway.emulator.console.list_devices()
    assert any(d.product_id == gateway.product_id and d.device_name == "gw_new" for d in status)
    assert data[CONF_DEVICE_SECRET] != gateway.secret


async def test_dynamic_registration_refused(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """A wrong product secret: the cloud refuses, the user form says why."""
    flow_id = await _start(hass)
    await _configure(hass, flow_id, _user_input(gateway, device_secret=None, product_secret="X" * 24))
    result = await _configure(
        hass, flow_id, gateway.custom | {CONF_REGISTRATION_URL: gateway.emulator.https_url}
    )
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "registration_failed"}
    assert result["description_placeholders"]["reason"]


@pytest.mark.parametrize(("skew_s", "key"), [(-3600, "clock_behind"), (1800, "clock_ahead")])
async def test_dynamic_registration_with_the_host_clock_off_says_to_set_the_clock(
    hass: HomeAssistant,
    gateway: Gateway,
    mock_setup_entry: AsyncMock,
    monkeypatch: pytest.MonkeyPatch,
    skew_s: int,
    key: str,
) -> None:
    """The registration's signed timestamp is refused when the host's clock is off: the form says so, and by
    how much (from the server's `Date`), instead of blaming the product secret. Then, with the clock set,
    the same values go through."""
    real_time = time.time
    monkeypatch.setattr(registration, "time", SimpleNamespace(time=lambda: real_time() + skew_s))
    flow_id = await _start(hass)
    await _configure(
        hass,
        flow_id,
        _user_input(gateway, device_name="gw_clock", device_secret=None, product_secret=PRODUCT_SECRET),
    )
    result = await _configure(
        hass, flow_id, gateway.custom | {CONF_REGISTRATION_URL: gateway.emulator.https_url}
    )
    assert result["errors"] == {"base": key}
    assert result["description_placeholders"]["minutes"] == str(abs(skew_s) // 60)
    monkeypatch.setattr(registration, "time", time)
    result = await _configure(
        hass,
        flow_id,
        _user_input(gateway, device_name="gw_clock", device_secret=None, product_secret=PRODUCT_SECRET),
    )
    result = await _configure(
        hass, flow_id, gateway.custom | {CONF_REGISTRATION_URL: gateway.emulator.https_url}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_dynamic_registration_unreachable(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """No registration service at the URL (the default https://host): the custom form asks for one."""
    flow_id = await _start(hass)
    await _configure(hass, flow_id, _user_input(gateway, device_secret=None, product_secret=PRODUCT_SECRET))
    result = await _configure(
        hass, flow_id, gateway.custom | {CONF_REGISTRATION_URL: f"https://127.0.0.1:{_free_port()}"}
    )
    assert result["step_id"] == "custom"
    assert result["errors"] == {CONF_REGISTRATION_URL: "registration_unreachable_refused"}
    result = await _configure(hass, flow_id, gateway.custom | {CONF_REGISTRATION_URL: "http://plain/"})
    assert result["errors"] == {CONF_REGISTRATION_URL: "https_base_url"}


async def test_region_without_registration(hass: HomeAssistant, gateway: Gateway) -> None:
    """Europe has no documented registration host: the product secret cannot be used there."""
    flow_id = await _start(hass)
    result = await _configure(
        hass,
        flow_id,
        _user_input(gateway, region="europe", device_secret=None, product_secret=PRODUCT_SECRET),
    )
    assert result["step_id"] == "user"
    assert result["errors"] == {CONF_REGION: "no_registration_in_region"}


async def test_tencent_region_uses_the_region_host(hass: HomeAssistant, mock_setup_entry: AsyncMock) -> None:
    """A Tencent region needs no custom step; the login goes to the product's regional host.

    Tencent's hosts are out of reach here, so the login itself is replaced (what it is given is checked).
    """
    login = AsyncMock(return_value=None)
    with patch("custom_components.tencent_iot_gateway.config_flow.check_login", login):
        flow_id = await _start(hass)
        result = await _configure(
            hass,
            flow_id,
            {
                CONF_REGION: "us-east",
                CONF_PRODUCT_ID: "ABCDEFGHIJ",
                CONF_DEVICE_NAME: "gw01",
                CONF_DEVICE_SECRET: "MTIzNDU2Nzg5MGFiY2RlZg==",
            },
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == {
        CONF_REGION: "us-east",
        CONF_PRODUCT_ID: "ABCDEFGHIJ",
        CONF_DEVICE_NAME: "gw01",
        CONF_DEVICE_SECRET: "MTIzNDU2Nzg5MGFiY2RlZg==",
    }
    endpoint = login.call_args.args[0]
    assert endpoint.host == "ABCDEFGHIJ.us-east.iotcloud.tencentdevices.com"
    assert (endpoint.port, endpoint.tls, endpoint.ca_pem) == (8883, True, None)


async def test_reauth_tests_the_new_secret_before_saving(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """Reauth: a wrong secret stays on the form; the right one is saved and the entry reloaded."""
    entry = await add_entry(hass, gateway.entry_data | {CONF_DEVICE_SECRET: WRONG_SECRET})
    result = await _reauth(hass, entry)
    assert result["step_id"] == "reauth_confirm"
    result = await _configure(hass, result["flow_id"], {CONF_DEVICE_SECRET: WRONG_SECRET})
    assert result["errors"] == {"base": "invalid_auth"}
    assert entry.data[CONF_DEVICE_SECRET] == WRONG_SECRET
    result = await _configure(hass, result["flow_id"], {CONF_DEVICE_SECRET: gateway.secret})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_DEVICE_SECRET] == gateway.secret
    await hass.async_block_till_done()
    assert len(mock_setup_entry.mock_calls) == 2  # set up when added, then reloaded with the new secret


async def test_reauth_with_the_product_secret(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """Reauth can register again (Tencent region's host unreachable here: a custom deployment is used)."""
    entry = await add_entry(hass, gateway.entry_data | {CONF_DEVICE_SECRET: WRONG_SECRET})
    result = await _reauth(hass, entry)
    result = await _configure(hass, result["flow_id"], {})
    assert result["errors"] == {"base": "one_secret"}
    result = await _configure(hass, result["flow_id"], {CONF_DEVICE_SECRET: "%%%"})
    assert result["errors"] == {CONF_DEVICE_SECRET: "not_base64"}


async def test_reconfigure_the_custom_broker(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """Reconfigure: a port where nothing listens is refused; the right one is saved."""
    entry = await add_entry(hass, gateway.entry_data | {CONF_PORT: _free_port(), CONF_TLS: False})
    result = await _reconfigure(hass, entry)
    assert result["step_id"] == "reconfigure"
    result = await _configure(hass, result["flow_id"], {CONF_REGION: "custom"})
    assert result["step_id"] == "reconfigure_custom"
    result = await _configure(hass, result["flow_id"], gateway.custom | {CONF_PORT: _free_port()})
    assert result["errors"] == {"base": "cannot_connect_refused"}
    result = await _configure(hass, result["flow_id"], gateway.custom | {CONF_CA_CERT: "-----BEGIN nonsense"})
    assert result["errors"] == {CONF_CA_CERT: "not_pem"}
    result = await _configure(hass, result["flow_id"], gateway.custom)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_PORT] == gateway.emulator.mqtts_port
    assert entry.data[CONF_TLS] is True
    assert entry.data[CONF_DEVICE_SECRET] == gateway.secret


async def test_reconfigure_to_a_tencent_region(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """Moving to a region drops the custom keys; an unreachable region host keeps the entry as it was."""
    entry = await add_entry(hass, gateway.entry_data)
    result = await _reconfigure(hass, entry)
    unreachable = CannotConnectError(ConnectCause.UNREACHABLE, "iotcloud.example", 8883, "No route to host")
    login = AsyncMock(side_effect=[unreachable, None])
    with patch("custom_components.tencent_iot_gateway.config_flow.check_login", login):
        result = await _configure(hass, result["flow_id"], {CONF_REGION: "ap-guangzhou"})
        assert result["errors"] == {"base": "cannot_connect_unreachable"}
        assert entry.data[CONF_REGION] == "custom"
        result = await _configure(hass, result["flow_id"], {CONF_REGION: "ap-guangzhou"})
    assert result["reason"] == "reconfigure_successful"
    assert entry.data == {
        CONF_REGION: "ap-guangzhou",
        CONF_PRODUCT_ID: gateway.product_id,
        CONF_DEVICE_NAME: gateway.device_name,
        CONF_DEVICE_SECRET: gateway.secret,
    }


async def test_options(hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock) -> None:
    """The options form stores the policy and the limits as numbers; with rollouts off, on one page that
    shows no rollout setting (the rollback space is there: it is not a rollout's)."""
    entry = await add_entry(hass, gateway.entry_data)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["step_id"] == "init"
    fields = [field["name"] for field in frontend_fields(result)]
    assert CONF_ROLLBACK_BUDGET_MIB in fields
    assert CONF_ROLLOUT in fields
    assert not {CONF_CANARY_COUNT, CONF_CANARY_PERCENT, CONF_CANARY_SIZE, CONF_SOAK_MIN} & set(fields)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_INSTALL_POLICY: "auto",
            CONF_MAX_DOWNLOADS: 3.0,
            CONF_MAX_FLASHES: 4.0,
            CONF_MAX_FIRMWARE_SIZE_MIB: 64.0,
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert dict(entry.options) == {
        CONF_INSTALL_POLICY: "auto",
        CONF_MAX_DOWNLOADS: 3,
        CONF_MAX_FLASHES: 4,
        CONF_MAX_FIRMWARE_SIZE_MIB: 64,
    }


async def _options_to_rollout(hass: HomeAssistant, entry: ConfigEntry) -> Any:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            CONF_INSTALL_POLICY: "manual",
            CONF_MAX_DOWNLOADS: 2,
            CONF_MAX_FLASHES: 3,
            CONF_MAX_FIRMWARE_SIZE_MIB: 64,
            CONF_ROLLOUT: True,
        },
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "rollout"
    return result


async def test_rollout_settings_are_a_page_of_their_own_with_one_canary_size(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """Rollouts on: their page sizes the canary group one way (a number and its unit); exactly one of the two
    stored keys says how, so the engine's settings read it as before."""
    entry = await add_entry(hass, gateway.entry_data)
    result = await _options_to_rollout(hass, entry)
    fields = [field["name"] for field in frontend_fields(result)]
    assert fields == [CONF_CANARY_SIZE, CONF_CANARY_UNIT, CONF_SOAK_MIN, CONF_MAX_FAILURES]
    rollout_input = {
        CONF_CANARY_SIZE: 150,
        CONF_CANARY_UNIT: "percent",
        CONF_SOAK_MIN: 5,
        CONF_MAX_FAILURES: 2,
    }
    result = await hass.config_entries.options.async_configure(result["flow_id"], rollout_input)
    assert result["errors"] == {CONF_CANARY_SIZE: "canary_share_too_large"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], rollout_input | {CONF_CANARY_SIZE: 25}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert dict(entry.options) == {
        CONF_INSTALL_POLICY: "manual",
        CONF_MAX_DOWNLOADS: 2,
        CONF_MAX_FLASHES: 3,
        CONF_MAX_FIRMWARE_SIZE_MIB: 64,
        CONF_ROLLOUT: True,
        CONF_CANARY_PERCENT: 25,
        CONF_SOAK_MIN: 5,
        CONF_MAX_FAILURES: 2,
    }
    settings = rollout_settings(entry.options)
    assert settings is not None
    assert (settings.canary_size(8), settings.batch_size) == (2, 3)

    # Back to a number of devices: the share is gone, not left to override the count.
    result = await _options_to_rollout(hass, entry)
    assert frontend_defaults(result)[CONF_CANARY_UNIT] == "percent"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], rollout_input | {CONF_CANARY_SIZE: 4, CONF_CANARY_UNIT: "devices"}
    )
    assert entry.options[CONF_CANARY_COUNT] == 4
    assert CONF_CANARY_PERCENT not in entry.options


@pytest.mark.parametrize(
    ("stored", "size", "unit"),
    [
        ({CONF_CANARY_COUNT: 3, CONF_CANARY_PERCENT: 0}, 3, "devices"),
        ({CONF_CANARY_COUNT: 3, CONF_CANARY_PERCENT: 20}, 20, "percent"),
        ({}, 1, "devices"),
    ],
)
async def test_rollout_options_stored_with_both_canary_keys_open_as_one_size(
    hass: HomeAssistant,
    gateway: Gateway,
    mock_setup_entry: AsyncMock,
    stored: dict[str, Any],
    size: int,
    unit: str,
) -> None:
    """Options saved by the form that had "Canary devices" and "Canary share" show the size the engine used."""
    entry = await add_entry(hass, gateway.entry_data, options={CONF_ROLLOUT: True, **stored})
    result = await _options_to_rollout(hass, entry)
    defaults = frontend_defaults(result)
    assert (defaults[CONF_CANARY_SIZE], defaults[CONF_CANARY_UNIT]) == (size, unit)


async def test_reauth_and_reconfigure_of_a_loaded_entry_reload_it_once(
    hass: HomeAssistant, gateway: Gateway, socket_enabled: None
) -> None:
    """A loaded entry's update listener is its one reload path: reauth and reconfigure do not reload again.

    (HA 2026.10 reports `async_update_reload_and_abort` on an entry with an update listener; the suite-wide
    guard in conftest.py fails the test on that report.)
    """
    entry = await add_entry(hass, gateway.entry_data)
    assert entry.state is ConfigEntryState.LOADED
    setups: list[str] = []
    original = hass.config_entries.async_setup

    async def _counting_setup(entry_id: str, **kwargs: Any) -> bool:
        setups.append(entry_id)
        return await original(entry_id, **kwargs)

    with patch.object(hass.config_entries, "async_setup", _counting_setup):
        result = await _reconfigure(hass, entry)
        result = await _configure(hass, result["flow_id"], {CONF_REGION: "custom"})
        result = await _configure(hass, result["flow_id"], gateway.custom | {CONF_TLS: True})
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED
        result = await _reauth(hass, entry)
        result = await _configure(hass, result["flow_id"], {CONF_DEVICE_SECRET: gateway.secret})
        assert result["reason"] == "reauth_successful"
        await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    # The CA text changed (stored normalised), so reconfigure reloaded; reauth with the same secret reloaded too.
    assert setups == [entry.entry_id, entry.entry_id]


async def test_every_value_survives_a_wrong_secret(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """Back on step 1 after a refused secret, then on the custom step again: nothing entered is lost."""
    flow_id = await _start(hass)
    entered = _user_input(gateway, device_secret=WRONG_SECRET)
    await _configure(hass, flow_id, entered)
    result = await _configure(hass, flow_id, gateway.custom)
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "invalid_auth"}
    assert suggested(result) == entered
    result = await _configure(hass, flow_id, _user_input(gateway))
    assert result["step_id"] == "custom"
    assert suggested(result) == gateway.custom
    result = await _configure(hass, flow_id, suggested(result))
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_a_flow_left_open_does_not_block_adding_the_gateway(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    """A dialog closed with Escape on the custom step leaves its flow; a new one still adds the gateway."""
    stale = await _start(hass)
    result = await _configure(hass, stale, _user_input(gateway))
    assert result["step_id"] == "custom"
    fresh = await _start(hass)
    result = await _configure(hass, fresh, _user_input(gateway))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "custom"
    result = await _configure(hass, fresh, gateway.custom)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    result = await _configure(hass, stale, gateway.custom)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    # And once it exists, step 1 already says so.
    result = await _configure(hass, await _start(hass), _user_input(gateway))
    assert result["reason"] == "already_configured"


async def test_reauth_keeps_the_entered_secret_on_an_error(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    entry = await add_entry(hass, gateway.entry_data | {CONF_DEVICE_SECRET: WRONG_SECRET})
    result = await _reauth(hass, entry)
    result = await _configure(hass, result["flow_id"], {CONF_DEVICE_SECRET: WRONG_SECRET})
    assert result["errors"] == {"base": "invalid_auth"}
    assert suggested(result) == {CONF_DEVICE_SECRET: WRONG_SECRET}


async def test_reconfigure_keeps_the_entered_broker_on_an_error(
    hass: HomeAssistant, gateway: Gateway, mock_setup_entry: AsyncMock
) -> None:
    entry = await add_entry(hass, gateway.entry_data)
    result = await _reconfigure(hass, entry)
    result = await _configure(hass, result["flow_id"], {CONF_REGION: "custom"})
    entered = gateway.custom | {CONF_PORT: _free_port(), CONF_TLS: False}
    result = await _configure(hass, result["flow_id"], entered)
    assert result["errors"] == {"base": "cannot_connect_refused"}
    assert (result["description_placeholders"] or {})["port"] == str(entered[CONF_PORT])
    assert suggested(result) == entered
