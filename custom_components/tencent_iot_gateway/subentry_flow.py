"""Sub-devices as config subentries of their gateway: add and edit (removal is HA's own subentry delete).

Stored data: `product_id`, `device_name`, optional `device_secret` (then the gateway binds it when the cloud
says it is not bound), `installed_version`, `unbind_on_remove`, and `flasher` (the flasher's settings with
their `kind`, or absent for none). The flasher settings are entered as an object (YAML in the UI) and
validated by the engine's parser for that kind, which names the bad field.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.helpers.selector import (
    BooleanSelector,
    ObjectSelector,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio as vol

from .const import (
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_FLASHER,
    CONF_FLASHER_KIND,
    CONF_INSTALLED_VERSION,
    CONF_PRODUCT_ID,
    CONF_UNBIND_ON_REMOVE,
    DEFAULT_INSTALLED_VERSION,
    FLASHER_NONE,
)
from .engine.errors import InvalidFieldError, InvalidFirmwareError
from .engine.firmware import validate_version
from .engine.identity import DeviceId
from .flashers import available_flasher_kinds, parse_flasher_settings
from .validation import check_device_secret

CONF_SETTINGS = "settings"
_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


def _kind_selector() -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(
            options=[FLASHER_NONE, *available_flasher_kinds()],
            translation_key=CONF_FLASHER_KIND,
            mode=SelectSelectorMode.DROPDOWN,
        )
    )


def _common_fields(*, version_known: bool = True) -> dict[vol.Marker, Any]:
    # A sub-device adopted from the cloud has no version yet: left empty, it stays unknown (never reported).
    version: vol.Marker = (
        vol.Required(CONF_INSTALLED_VERSION, default=DEFAULT_INSTALLED_VERSION)
        if version_known
        else vol.Optional(CONF_INSTALLED_VERSION)
    )
    return {
        vol.Optional(CONF_DEVICE_SECRET): _PASSWORD,
        version: TextSelector(),
        vol.Required(CONF_FLASHER_KIND, default=FLASHER_NONE): _kind_selector(),
        vol.Required(CONF_UNBIND_ON_REMOVE, default=False): BooleanSelector(),
    }


def _device_schema() -> vol.Schema:
    return vol.Schema(
        {vol.Required(CONF_PRODUCT_ID): TextSelector(), vol.Required(CONF_DEVICE_NAME): TextSelector()}
        | _common_fields()
    )


def _check_common(user_input: dict[str, Any]) -> dict[str, Any]:
    """Validated secret, version and unbind flag; raises `InvalidFieldError` naming the field."""
    data: dict[str, Any] = {}
    secret = str(user_input.get(CONF_DEVICE_SECRET) or "").strip()
    if secret:
        data[CONF_DEVICE_SECRET] = check_device_secret(secret)
    version = str(user_input.get(CONF_INSTALLED_VERSION) or "").strip()
    try:
        if version:
            data[CONF_INSTALLED_VERSION] = validate_version(version)
    except InvalidFirmwareError as err:
        raise InvalidFieldError(CONF_INSTALLED_VERSION, str(err)) from None
    data[CONF_UNBIND_ON_REMOVE] = bool(user_input.get(CONF_UNBIND_ON_REMOVE, False))
    return data


def _parse_settings(settings: object, kind: str) -> dict[str, Any]:
    """The stored form of the settings entered for `kind`; raises `InvalidFieldError`."""
    if not isinstance(settings, dict):
        raise InvalidFieldError(CONF_SETTINGS, "must be an object of settings")
    return parse_flasher_settings({**settings, "kind": kind})


class SubDeviceSubentryFlow(ConfigSubentryFlow):
    """Adds or edits one sub-device of a gateway."""

    def __init__(self) -> None:
        """Nothing entered yet."""
        self._data: dict[str, Any] = {}
        self._kind = FLASHER_NONE

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Ids, optional secret, running version, flasher kind."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            try:
                device = DeviceId(
                    str(user_input[CONF_PRODUCT_ID]).strip(), str(user_input[CONF_DEVICE_NAME]).strip()
                )
                common = _check_common(user_input)
            except InvalidFieldError as err:
                errors[err.field] = f"invalid_{err.field}"
                placeholders["reason"] = err.reason
            else:
                entry = self._get_entry()
                gateway_key = f"{entry.data[CONF_PRODUCT_ID]}/{entry.data[CONF_DEVICE_NAME]}"
                if device.key == gateway_key:
                    errors["base"] = "sub_device_is_gateway"
                elif any(sub.unique_id == device.key for sub in entry.subentries.values()):
                    return self.async_abort(reason="already_configured")
                else:
                    self._data = {CONF_PRODUCT_ID: device.product_id, CONF_DEVICE_NAME: device.device_name}
                    self._data |= common
                    self._kind = user_input[CONF_FLASHER_KIND]
                    if self._kind == FLASHER_NONE:
                        return self._async_done()
                    return await self.async_step_flasher()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_device_schema(), user_input or {}),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Secret, running version and flasher of an existing sub-device."""
        subentry = self._get_reconfigure_subentry()
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {"device": subentry.title}
        if user_input is not None:
            try:
                common = _check_common(user_input)
            except InvalidFieldError as err:
                errors[err.field] = f"invalid_{err.field}"
                placeholders["reason"] = err.reason
            else:
                keep_secret = CONF_DEVICE_SECRET not in common and CONF_DEVICE_SECRET in subentry.data
                self._data = {
                    CONF_PRODUCT_ID: subentry.data[CONF_PRODUCT_ID],
                    CONF_DEVICE_NAME: subentry.data[CONF_DEVICE_NAME],
                } | common
                if keep_secret:
                    self._data[CONF_DEVICE_SECRET] = subentry.data[CONF_DEVICE_SECRET]
                self._kind = user_input[CONF_FLASHER_KIND]
                if self._kind == FLASHER_NONE:
                    return self._async_done()
                return await self.async_step_flasher()
        current = {k: v for k, v in subentry.data.items() if k != CONF_DEVICE_SECRET}
        flasher = subentry.data.get(CONF_FLASHER)
        current[CONF_FLASHER_KIND] = (
            flasher.get("kind", FLASHER_NONE) if isinstance(flasher, dict) else FLASHER_NONE
        )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema(_common_fields(version_known=bool(subentry.data.get(CONF_INSTALLED_VERSION)))),
                user_input or current,
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_flasher(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """The chosen flasher's settings."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {"kind": self._kind, "reason": ""}
        if user_input is not None:
            settings = user_input.get(CONF_SETTINGS) or {}
            try:
                self._data[CONF_FLASHER] = _parse_settings(settings, self._kind)
            except InvalidFieldError as err:
                errors[CONF_SETTINGS] = "invalid_flasher"
                placeholders["reason"] = str(err)
            else:
                return self._async_done()
        suggested: dict[str, Any] = {}
        if self.source != "user":
            flasher = self._get_reconfigure_subentry().data.get(CONF_FLASHER)
            if isinstance(flasher, dict) and flasher.get("kind") == self._kind:
                suggested[CONF_SETTINGS] = {k: v for k, v in flasher.items() if k != "kind"}
        if user_input is not None:
            suggested = dict(user_input)
        return self.async_show_form(
            step_id="flasher",
            data_schema=self.add_suggested_values_to_schema(
                vol.Schema({vol.Required(CONF_SETTINGS): ObjectSelector()}), suggested
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _async_done(self) -> SubentryFlowResult:
        if self._kind == FLASHER_NONE:
            self._data.pop(CONF_FLASHER, None)
        device = DeviceId(self._data[CONF_PRODUCT_ID], self._data[CONF_DEVICE_NAME])
        if self.source == "user":
            return self.async_create_entry(title=device.key, data=self._data, unique_id=device.key)
        return self.async_update_and_abort(
            self._get_entry(), self._get_reconfigure_subentry(), data=self._data
        )
