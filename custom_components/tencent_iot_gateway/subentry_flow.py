"""Sub-devices as config subentries of their gateway: add and edit (removal is HA's own subentry delete).

Stored data: `product_id`, `device_name`, optional `name`, `model` and `manufacturer` (what the user calls it;
the title is the name, else the device name), optional `device_secret` (then the gateway binds it when the cloud
says it is not bound), `installed_version`, `unbind_on_remove`, and `flasher` (the flasher's settings with
their `kind`, or absent for none), and the optional pre-flight conditions (`preflight_condition`, a template;
`maintenance_start`/`maintenance_end`; `preflight_timeout_min`). The flasher settings are entered on one form per kind (flasher_forms.py)
and validated by the engine's parser for that kind, which names the bad field.
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TemplateSelector,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
    TimeSelector,
)
import probatio as vol

from .const import (
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_FLASHER,
    CONF_FLASHER_KIND,
    CONF_HEALTH_TEMPLATE,
    CONF_HEALTH_TIMEOUT_MIN,
    CONF_HEALTH_VERSION_CHECK,
    CONF_INSTALLED_VERSION,
    CONF_MAINTENANCE_END,
    CONF_MAINTENANCE_START,
    CONF_MANUFACTURER,
    CONF_MODEL,
    CONF_NAME,
    CONF_PREFLIGHT_CONDITION,
    CONF_PREFLIGHT_TIMEOUT_MIN,
    CONF_PRODUCT_ID,
    CONF_ROLLBACK,
    CONF_UNBIND_ON_REMOVE,
    DEFAULT_INSTALLED_VERSION,
    FLASHER_NONE,
    MAX_PREFLIGHT_TIMEOUT_MIN,
)
from .engine import PLACEHOLDERS, DeviceId, InvalidFieldError, check_version
from .entry_config import check_device_secret
from .form_errors import RangeNumberSelector, field_error
from .ota.flasher_forms import (
    FORMS,
    FlasherFieldError,
    async_settings_from_form,
    step_id as flasher_step_id,
    suggested_values,
)
from .ota.flasher_settings import available_flasher_kinds
from .ota.health_templates import HealthConfig
from .ota.preflight_templates import PreflightConfig

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
        vol.Optional(CONF_NAME): TextSelector(),
        vol.Optional(CONF_MODEL): TextSelector(),
        vol.Optional(CONF_MANUFACTURER): TextSelector(),
        vol.Optional(CONF_DEVICE_SECRET): _PASSWORD,
        version: TextSelector(),
        vol.Required(CONF_FLASHER_KIND, default=FLASHER_NONE): _kind_selector(),
        vol.Required(CONF_UNBIND_ON_REMOVE, default=False): BooleanSelector(),
        vol.Optional(CONF_PREFLIGHT_CONDITION): TemplateSelector(),
        vol.Optional(CONF_MAINTENANCE_START): TimeSelector(),
        vol.Optional(CONF_MAINTENANCE_END): TimeSelector(),
        vol.Optional(CONF_PREFLIGHT_TIMEOUT_MIN): RangeNumberSelector(
            NumberSelectorConfig(
                min=1,
                max=MAX_PREFLIGHT_TIMEOUT_MIN,
                step=1,
                unit_of_measurement="min",
                mode=NumberSelectorMode.BOX,
            )
        ),
        vol.Optional(CONF_HEALTH_TEMPLATE): TemplateSelector(),
        vol.Optional(CONF_HEALTH_VERSION_CHECK, default=False): BooleanSelector(),
        vol.Optional(CONF_HEALTH_TIMEOUT_MIN): RangeNumberSelector(
            NumberSelectorConfig(
                min=1,
                max=MAX_PREFLIGHT_TIMEOUT_MIN,
                step=1,
                unit_of_measurement="min",
                mode=NumberSelectorMode.BOX,
            )
        ),
        vol.Optional(CONF_ROLLBACK, default=False): BooleanSelector(),
    }


def _device_schema() -> vol.Schema:
    return vol.Schema(
        {vol.Required(CONF_PRODUCT_ID): TextSelector(), vol.Required(CONF_DEVICE_NAME): TextSelector()}
        | _common_fields()
    )


def _check_common(user_input: dict[str, Any]) -> dict[str, Any]:
    """Validated secret, version, unbind flag and pre-flight conditions; raises `InvalidFieldError` naming the
    field."""
    data: dict[str, Any] = {}
    secret = str(user_input.get(CONF_DEVICE_SECRET) or "").strip()
    if secret:
        data[CONF_DEVICE_SECRET] = check_device_secret(secret)
    version = str(user_input.get(CONF_INSTALLED_VERSION) or "").strip()
    if version:
        data[CONF_INSTALLED_VERSION] = check_version(version, CONF_INSTALLED_VERSION)
    data[CONF_UNBIND_ON_REMOVE] = bool(user_input.get(CONF_UNBIND_ON_REMOVE, False))
    for key in (CONF_NAME, CONF_MODEL, CONF_MANUFACTURER):
        if text := str(user_input.get(key) or "").strip():
            data[key] = text
    return data | _check_preflight(user_input) | _check_health(user_input)


def _check_health(user_input: dict[str, Any]) -> dict[str, Any]:
    """Only what was set is stored, like the pre-flight conditions."""
    data: dict[str, Any] = {}
    if text := str(user_input.get(CONF_HEALTH_TEMPLATE) or "").strip():
        data[CONF_HEALTH_TEMPLATE] = text
    for key in (CONF_HEALTH_VERSION_CHECK, CONF_ROLLBACK):
        if user_input.get(key):
            data[key] = True
    if user_input.get(CONF_HEALTH_TIMEOUT_MIN):
        data[CONF_HEALTH_TIMEOUT_MIN] = int(user_input[CONF_HEALTH_TIMEOUT_MIN])
    HealthConfig.from_data(data)
    return data


def _check_preflight(user_input: dict[str, Any]) -> dict[str, Any]:
    """Only what was set is stored, so a sub-device without conditions keeps the data it always had."""
    data: dict[str, Any] = {}
    for key in (CONF_PREFLIGHT_CONDITION, CONF_MAINTENANCE_START, CONF_MAINTENANCE_END):
        if text := str(user_input.get(key) or "").strip():
            data[key] = text
    if user_input.get(CONF_PREFLIGHT_TIMEOUT_MIN):
        data[CONF_PREFLIGHT_TIMEOUT_MIN] = int(user_input[CONF_PREFLIGHT_TIMEOUT_MIN])
    PreflightConfig.from_data(data)  # the template selector already refused a template that does not parse
    return data


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
                field_error(err).add_to(errors, placeholders)
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
                    return await self._async_flasher_step(None)
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
                field_error(err).add_to(errors, placeholders)
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
                return await self._async_flasher_step(None)
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

    async def async_step_flasher_command(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Program, arguments and timeout of the command flasher."""
        return await self._async_flasher_step(user_input)

    async def async_step_flasher_http(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Upload URL, method, token, version URL and timeouts of the http flasher."""
        return await self._async_flasher_step(user_input)

    async def async_step_flasher_file(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Directory of the file flasher."""
        return await self._async_flasher_step(user_input)

    async def async_step_flasher_automation(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """How long the automation flasher waits for `complete_flash`."""
        return await self._async_flasher_step(user_input)

    def _stored_flasher(self) -> dict[str, Any] | None:
        if self.source == "user":
            return None
        flasher = self._get_reconfigure_subentry().data.get(CONF_FLASHER)
        return dict(flasher) if isinstance(flasher, dict) else None

    async def _async_flasher_step(self, user_input: dict[str, Any] | None) -> SubentryFlowResult:
        """The chosen kind's form; an error names its field and keeps everything entered."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {
            "device": self._data.get(CONF_NAME) or self._data[CONF_DEVICE_NAME],
            # Braces cannot be written in a translation (they are its own placeholders): passed as a value.
            "placeholders": ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS)),
        }
        stored = self._stored_flasher()
        if user_input is not None:
            try:
                self._data[CONF_FLASHER] = await async_settings_from_form(
                    self.hass, self._kind, user_input, stored
                )
            except FlasherFieldError as err:
                err.error.add_to(errors, placeholders)
            else:
                return self._async_done()
        suggested = dict(user_input) if user_input is not None else suggested_values(stored, self._kind)
        return self.async_show_form(
            step_id=flasher_step_id(self._kind),
            data_schema=self.add_suggested_values_to_schema(FORMS[self._kind].schema(), suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _async_done(self) -> SubentryFlowResult:
        if self._kind == FLASHER_NONE:
            self._data.pop(CONF_FLASHER, None)
        device = DeviceId(self._data[CONF_PRODUCT_ID], self._data[CONF_DEVICE_NAME])
        # The title is what the user calls it; the unique id stays `PID/DN`.
        title = self._data.get(CONF_NAME) or device.device_name
        if self.source == "user":
            return self.async_create_entry(title=title, data=self._data, unique_id=device.key)
        return self.async_update_and_abort(
            self._get_entry(), self._get_reconfigure_subentry(), data=self._data, title=title
        )
