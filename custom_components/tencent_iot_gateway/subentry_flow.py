"""Sub-devices as config subentries of their gateway: add and edit (removal is HA's own subentry delete).

Stored data (flat, whatever sections the forms show it in): `product_id`, `device_name`, optional `name`,
`model` and `manufacturer` (what the user calls it; the title is the name, else the device name), optional
`device_secret` (then the gateway binds it when the cloud says it is not bound), `installed_version` (absent:
unknown, never reported), `unbind_on_remove`, and `flasher` (the flasher's settings with their `kind`, or absent
for none), and the optional pre-flight conditions (`preflight_condition`, a template;
`maintenance_start`/`maintenance_end`; `preflight_timeout_min`) and health check. The flasher settings are
entered on one form per kind (flasher_forms.py) and validated by the engine's parser for that kind, which names
the bad field.

Adding asks which device first (product ID and device name), so that a typo or a device already configured is
refused before anything else is filled in; then the rest, the optional parts in collapsed sections; then the
flasher's form, which names the kind again so that the user can go to another kind's form from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from homeassistant.config_entries import ConfigEntryState, ConfigSubentryFlow, SubentryFlowResult
from homeassistant.data_entry_flow import section
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
    FLASHER_NONE,
    MAX_PREFLIGHT_TIMEOUT_MIN,
)
from .engine import PLACEHOLDERS, DeviceId, InvalidFieldError, check_version
from .entry_config import check_device_secret, is_tencent_product_id
from .form_errors import FormError, RangeNumberSelector, field_error
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
from .runtime import GatewayRuntime

_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
# The subentry flow's own abort reason, so that HA shows the integration's text in the user's language (HA's
# default for an update, `reconfigure_successful`, is its own generic English-only text).
UPDATED: Final = "sub_device_updated"


class Section(StrEnum):
    """The collapsed parts of the sub-device form: everything in them is optional."""

    DETAILS = "details"
    PREFLIGHT = "preflight"
    HEALTH = "health"


SECTION_FIELDS: Final[Mapping[Section, tuple[str, ...]]] = {
    Section.DETAILS: (CONF_MODEL, CONF_MANUFACTURER, CONF_UNBIND_ON_REMOVE),
    Section.PREFLIGHT: (
        CONF_PREFLIGHT_CONDITION,
        CONF_MAINTENANCE_START,
        CONF_MAINTENANCE_END,
        CONF_PREFLIGHT_TIMEOUT_MIN,
    ),
    Section.HEALTH: (CONF_HEALTH_TEMPLATE, CONF_HEALTH_VERSION_CHECK, CONF_HEALTH_TIMEOUT_MIN, CONF_ROLLBACK),
}
_SECTION_OF: Final = {field: part for part, fields in SECTION_FIELDS.items() for field in fields}
# What a section's field holds when the user has not set it (a section with anything else opens on editing).
_UNSET: Final = (None, "", False)


def _kind_selector() -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(
            options=[FLASHER_NONE, *available_flasher_kinds()],
            translation_key=CONF_FLASHER_KIND,
            mode=SelectSelectorMode.DROPDOWN,
        )
    )


def _minutes() -> RangeNumberSelector:
    # Its range is checked by the pre-flight and health parsers, in the user's language (form_errors.py).
    return RangeNumberSelector(
        NumberSelectorConfig(
            min=1,
            max=MAX_PREFLIGHT_TIMEOUT_MIN,
            step=1,
            unit_of_measurement="min",
            mode=NumberSelectorMode.BOX,
        )
    )


def _section_fields(part: Section) -> dict[vol.Marker, Any]:
    match part:
        case Section.DETAILS:
            return {
                vol.Optional(CONF_MODEL): TextSelector(),
                vol.Optional(CONF_MANUFACTURER): TextSelector(),
                vol.Required(CONF_UNBIND_ON_REMOVE, default=False): BooleanSelector(),
            }
        case Section.PREFLIGHT:
            return {
                vol.Optional(CONF_PREFLIGHT_CONDITION): TemplateSelector(),
                vol.Optional(CONF_MAINTENANCE_START): TimeSelector(),
                vol.Optional(CONF_MAINTENANCE_END): TimeSelector(),
                vol.Optional(CONF_PREFLIGHT_TIMEOUT_MIN): _minutes(),
            }
        case Section.HEALTH:
            return {
                vol.Optional(CONF_HEALTH_TEMPLATE): TemplateSelector(),
                vol.Optional(CONF_HEALTH_VERSION_CHECK, default=False): BooleanSelector(),
                vol.Optional(CONF_HEALTH_TIMEOUT_MIN): _minutes(),
                vol.Optional(CONF_ROLLBACK, default=False): BooleanSelector(),
            }


def _settings_schema(expanded: set[Section]) -> vol.Schema:
    """Name, secret, running version and flasher kind; the optional rest in sections, collapsed unless
    `expanded`. The version has no default: one nobody entered stays unknown and is never reported."""
    fields: dict[vol.Marker, Any] = {
        vol.Optional(CONF_NAME): TextSelector(),
        vol.Optional(CONF_DEVICE_SECRET): _PASSWORD,
        vol.Optional(CONF_INSTALLED_VERSION): TextSelector(),
        vol.Required(CONF_FLASHER_KIND, default=FLASHER_NONE): _kind_selector(),
    }
    for part in Section:
        fields[vol.Required(part)] = section(
            vol.Schema(_section_fields(part)), {"collapsed": part not in expanded}
        )
    return vol.Schema(fields)


def _ids_schema() -> vol.Schema:
    return vol.Schema(
        {vol.Required(CONF_PRODUCT_ID): TextSelector(), vol.Required(CONF_DEVICE_NAME): TextSelector()}
    )


def flatten(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The form's input with its sections' fields beside the others, as the subentry stores them."""
    flat: dict[str, Any] = {}
    for key, value in user_input.items():
        if key in Section.__members__.values() and isinstance(value, Mapping):
            flat |= value
        else:
            flat[key] = value
    return flat


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Flat values (stored data, or the flattened input) in the form's shape, sections as their own dicts."""
    nested: dict[str, Any] = {key: value for key, value in flat.items() if key not in _SECTION_OF}
    for part, fields in SECTION_FIELDS.items():
        nested[part] = {key: flat[key] for key in fields if key in flat}
    return nested


def _sections_in_use(flat: Mapping[str, Any]) -> set[Section]:
    """The sections holding something the user set (they open on the edit form)."""
    return {part for part, fields in SECTION_FIELDS.items() if any(flat.get(f) not in _UNSET for f in fields)}


def _field_error(error: FormError, errors: dict[str, str], placeholders: dict[str, str]) -> None:
    """Show a bad field's error. A field inside a section has its error on the section: HA's frontend shows
    a section's error above it (a field's own, inside, is not shown)."""
    errors[_SECTION_OF.get(error.field, error.field)] = error.key
    placeholders.update(error.placeholders)


def _check_common(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Validated secret, version, unbind flag and pre-flight conditions of the flattened input; raises
    `InvalidFieldError` naming the field."""
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


def _check_health(user_input: Mapping[str, Any]) -> dict[str, Any]:
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


def _check_preflight(user_input: Mapping[str, Any]) -> dict[str, Any]:
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
        self._device: DeviceId | None = None
        self._data: dict[str, Any] = {}
        self._kind = FLASHER_NONE
        # The running version the edit form showed: a version submitted unchanged is no statement of the user.
        self._shown_version: str | None = None

    # -- adding --------------------------------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Which device: a product ID of Tencent's shape, a device name, not the gateway, not configured yet."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            product_id = str(user_input[CONF_PRODUCT_ID]).strip()
            if not is_tencent_product_id(product_id):
                errors[CONF_PRODUCT_ID] = "product_id_format"
            else:
                try:
                    device = DeviceId(product_id, str(user_input[CONF_DEVICE_NAME]).strip())
                except InvalidFieldError as err:
                    _field_error(field_error(err), errors, placeholders)
                else:
                    entry = self._get_entry()
                    existing = next((s for s in entry.subentries.values() if s.unique_id == device.key), None)
                    if device.key == f"{entry.data[CONF_PRODUCT_ID]}/{entry.data[CONF_DEVICE_NAME]}":
                        errors["base"] = "sub_device_is_gateway"
                    elif existing is not None:
                        errors[CONF_DEVICE_NAME] = "sub_device_exists"
                        placeholders["device"] = existing.title
                    else:
                        self._device = device
                        return await self.async_step_device()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_ids_schema(), user_input or {}),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_device(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Name, secret, running version and flasher kind of the new sub-device; the optional rest in sections."""
        assert self._device is not None, "the user step names the device first"
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {"device": self._device.device_name}
        flat = flatten(user_input) if user_input is not None else {}
        if user_input is not None:
            try:
                common = _check_common(flat)
            except InvalidFieldError as err:
                _field_error(field_error(err), errors, placeholders)
            else:
                self._data = {
                    CONF_PRODUCT_ID: self._device.product_id,
                    CONF_DEVICE_NAME: self._device.device_name,
                } | common
                return await self._async_to_flasher(str(flat[CONF_FLASHER_KIND]))
        return self.async_show_form(
            step_id="device",
            data_schema=self.add_suggested_values_to_schema(
                _settings_schema({part for part in Section if part in errors}), nest(flat)
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    # -- editing -------------------------------------------------------------------------------------------

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Everything but the ids of an existing sub-device; the version shown is the one it runs now."""
        subentry = self._get_reconfigure_subentry()
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {"device": subentry.title}
        if user_input is None:
            current = {k: v for k, v in subentry.data.items() if k != CONF_DEVICE_SECRET}
            # The subentry keeps the version the user last entered; flashes since then are the runtime's.
            self._shown_version = self._running_version() or current.get(CONF_INSTALLED_VERSION)
            current.pop(CONF_INSTALLED_VERSION, None)
            if self._shown_version is not None:
                current[CONF_INSTALLED_VERSION] = self._shown_version
            flasher = subentry.data.get(CONF_FLASHER)
            current[CONF_FLASHER_KIND] = (
                flasher.get("kind", FLASHER_NONE) if isinstance(flasher, dict) else FLASHER_NONE
            )
            return self._show_reconfigure(current, _sections_in_use(current), errors, placeholders)
        flat = flatten(user_input)
        try:
            common = _check_common(flat)
        except InvalidFieldError as err:
            _field_error(field_error(err), errors, placeholders)
            return self._show_reconfigure(
                flat, _sections_in_use(flat) | {p for p in Section if p in errors}, errors, placeholders
            )
        keep_secret = CONF_DEVICE_SECRET not in common and CONF_DEVICE_SECRET in subentry.data
        self._data = {
            CONF_PRODUCT_ID: subentry.data[CONF_PRODUCT_ID],
            CONF_DEVICE_NAME: subentry.data[CONF_DEVICE_NAME],
        } | common
        if keep_secret:
            self._data[CONF_DEVICE_SECRET] = subentry.data[CONF_DEVICE_SECRET]
        return await self._async_to_flasher(str(flat[CONF_FLASHER_KIND]))

    def _show_reconfigure(
        self,
        values: Mapping[str, Any],
        expanded: set[Section],
        errors: dict[str, str],
        placeholders: dict[str, str],
    ) -> SubentryFlowResult:
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(_settings_schema(expanded), nest(values)),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _running_version(self) -> str | None:
        """The version the loaded gateway knows the sub-device runs (None: not loaded, or unknown)."""
        entry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            return None
        data = self._get_reconfigure_subentry().data
        device = DeviceId(str(data[CONF_PRODUCT_ID]), str(data[CONF_DEVICE_NAME]))
        runtime: GatewayRuntime = entry.runtime_data
        return runtime.snapshot(device).installed_version if device in runtime.configs else None

    # -- the flasher ---------------------------------------------------------------------------------------

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

    async def _async_to_flasher(self, kind: str) -> SubentryFlowResult:
        """Done for no flasher, else the form of `kind`."""
        self._kind = kind
        if kind == FLASHER_NONE:
            return self._async_done()
        return await self._async_flasher_step(None)

    async def _async_flasher_step(self, user_input: dict[str, Any] | None) -> SubentryFlowResult:
        """The chosen kind's form; an error names its field and keeps everything entered. Another kind chosen
        on it goes to that kind's form (or, for none, saves the sub-device without a flasher)."""
        if user_input is not None and user_input.get(CONF_FLASHER_KIND, self._kind) != self._kind:
            return await self._async_to_flasher(str(user_input[CONF_FLASHER_KIND]))
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {
            "device": self._data.get(CONF_NAME) or self._data[CONF_DEVICE_NAME],
            # Braces cannot be written in a translation (they are its own placeholders): passed as a value.
            "placeholders": ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS)),
        }
        stored = self._stored_flasher()
        if user_input is not None:
            settings = {key: value for key, value in user_input.items() if key != CONF_FLASHER_KIND}
            try:
                self._data[CONF_FLASHER] = await async_settings_from_form(
                    self.hass, self._kind, settings, stored
                )
            except FlasherFieldError as err:
                err.error.add_to(errors, placeholders)
            else:
                return self._async_done()
        suggested = dict(user_input) if user_input is not None else suggested_values(stored, self._kind)
        schema = vol.Schema(
            {vol.Required(CONF_FLASHER_KIND, default=self._kind): _kind_selector()}
            | dict(FORMS[self._kind].schema().schema)
        )
        return self.async_show_form(
            step_id=flasher_step_id(self._kind),
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    # -- saving --------------------------------------------------------------------------------------------

    def _async_done(self) -> SubentryFlowResult:
        if self._kind == FLASHER_NONE:
            self._data.pop(CONF_FLASHER, None)
        device = DeviceId(self._data[CONF_PRODUCT_ID], self._data[CONF_DEVICE_NAME])
        # The title is what the user calls it; the unique id stays `PID/DN`.
        title = self._data.get(CONF_NAME) or device.device_name
        entry = self._get_entry()
        if self.source == "user":
            # Checked on the first step; added meanwhile from another window (or adopted from the cloud).
            if any(sub.unique_id == device.key for sub in entry.subentries.values()):
                return self.async_abort(reason="already_configured")
            return self.async_create_entry(title=title, data=self._data, unique_id=device.key)
        version = self._data.get(CONF_INSTALLED_VERSION)
        if version is not None and version != self._shown_version and entry.state is ConfigEntryState.LOADED:
            # The user says what it runs (e.g. it was flashed back by other means): recorded and reported even
            # when it equals the subentry's old value, which no longer says what the device runs.
            runtime: GatewayRuntime = entry.runtime_data
            runtime.async_record_version(device, version)
        return self.async_update_and_abort(
            entry, self._get_reconfigure_subentry(), data=self._data, title=title, reason=UPDATED
        )
