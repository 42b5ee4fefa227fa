"""Config flow: one entry per gateway, connected and logged in before it is created.

Steps: `user` (region, ids, one of the two secrets) → `custom` (host, port, TLS, CA) for a private deployment
→ dynamic registration when a product secret was given → a real MQTT login. The product secret is used once
and never stored: the device secret it yields is what the entry keeps. Re-authentication asks for a new
secret and tests it before saving; reconfigure changes where the broker is (region, host, port, TLS, CA).
Options: the install policy, parallel downloads and flashes, the largest firmware accepted, the rollback space,
the gateway's own firmware (its version, pushes to it), and a staged rollout's settings on a step of their own
when it is on. Sub-devices are config subentries (see subentry_flow.py).
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
from typing import Any

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
)
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio as vol

from .bridge.const import SUBENTRY_BRIDGE
from .bridge.subentry_flow import BridgeSubentryFlow
from .const import (
    CONF_CA_CERT,
    CONF_CANARY_COUNT,
    CONF_CANARY_PERCENT,
    CONF_CANARY_SIZE,
    CONF_CANARY_UNIT,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_GATEWAY_UPDATES,
    CONF_GATEWAY_VERSION,
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
    DEFAULT_CANARY_COUNT,
    DEFAULT_INSTALL_POLICY,
    DEFAULT_MAX_DOWNLOADS,
    DEFAULT_MAX_FAILURES,
    DEFAULT_MAX_FIRMWARE_SIZE_MIB,
    DEFAULT_MAX_FLASHES,
    DEFAULT_ROLLBACK_BUDGET_MIB,
    DEFAULT_SOAK_MIN,
    DOMAIN,
    MAX_FIRMWARE_SIZE_MIB_LIMIT,
    MAX_PARALLEL,
    MAX_ROLLOUT_COUNT,
    MAX_SOAK_MIN,
    SUBENTRY_SUB_DEVICE,
    CanaryUnit,
    InstallPolicy,
)
from .engine import (
    MQTT_TLS_PORT,
    AuthenticationError,
    CannotConnectError,
    ClockSkewError,
    DeviceId,
    FieldProblem,
    InvalidFieldError,
    NotAGatewayError,
    Region,
    RegistrationError,
    RegistrationUnreachableError,
    check_login,
    check_version,
    register_device,
)
from .entry_config import (
    check_ca_pem,
    check_device_secret,
    device_id_from,
    endpoint_from,
    is_tencent_product_id,
    registration_url_for,
)
from .form_errors import RangeNumberSelector, field_error, range_error
from .subentry_flow import SubDeviceSubentryFlow

_LOGGER = logging.getLogger(__name__)

_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
_TEXT = TextSelector()
_MULTILINE = TextSelector(TextSelectorConfig(multiline=True))
_REGION = SelectSelector(
    SelectSelectorConfig(
        options=[region.value for region in Region],
        translation_key=CONF_REGION,
        mode=SelectSelectorMode.DROPDOWN,
    )
)
_CUSTOM_KEYS = (CONF_HOST, CONF_PORT, CONF_TLS, CONF_CA_CERT)
# Errors the custom step's fields can fix ("custom" = a connection problem with the custom broker).
_CUSTOM_FIXABLE = frozenset({CONF_HOST, CONF_PORT, CONF_CA_CERT, CONF_REGISTRATION_URL, "custom"})

USER_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_REGION, default=Region.CHINA.value): _REGION,
        vol.Required(CONF_PRODUCT_ID): _TEXT,
        vol.Required(CONF_DEVICE_NAME): _TEXT,
        vol.Optional(CONF_DEVICE_SECRET): _PASSWORD,
        vol.Optional(CONF_PRODUCT_SECRET): _PASSWORD,
    }
)
SECRET_SCHEMA = vol.Schema(
    {vol.Optional(CONF_DEVICE_SECRET): _PASSWORD, vol.Optional(CONF_PRODUCT_SECRET): _PASSWORD}
)
REGION_SCHEMA = vol.Schema({vol.Required(CONF_REGION): _REGION})


def _custom_schema(*, with_registration: bool) -> vol.Schema:
    fields: dict[vol.Marker, Any] = {
        vol.Required(CONF_HOST): _TEXT,
        vol.Required(CONF_PORT, default=MQTT_TLS_PORT): RangeNumberSelector(
            NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
        ),
        vol.Required(CONF_TLS, default=True): BooleanSelector(),
        vol.Optional(CONF_CA_CERT): _MULTILINE,
    }
    if with_registration:
        fields[vol.Optional(CONF_REGISTRATION_URL)] = _TEXT
    return vol.Schema(fields)


class FlowError(Exception):
    """A form error: `field` ("base" for the whole form), a translation key, and its placeholders."""

    def __init__(self, field: str, key: str, placeholders: dict[str, str] | None = None) -> None:
        super().__init__(key)
        self.field = field
        self.key = key
        self.placeholders = placeholders or {}


def _field_error(err: InvalidFieldError) -> FlowError:
    """The problem's key on that field, with its placeholders (they never hold a secret)."""
    error = field_error(err, _KNOWN_FIELDS)
    return FlowError(error.field, error.key, dict(error.placeholders))


def _clock_error(err: ClockSkewError) -> tuple[str, dict[str, str]]:
    """The translation key and placeholders that tell the user to set the host's clock."""
    if err.skew_s is None:
        return "clock_skew_unknown", {"reason": err.message}
    minutes = str(max(1, round(abs(err.skew_s) / 60)))
    return ("clock_ahead" if err.skew_s > 0 else "clock_behind"), {"minutes": minutes}


_KNOWN_FIELDS = frozenset(
    {
        CONF_REGION,
        CONF_PRODUCT_ID,
        CONF_DEVICE_NAME,
        CONF_DEVICE_SECRET,
        CONF_PRODUCT_SECRET,
        CONF_HOST,
        CONF_PORT,
        CONF_CA_CERT,
        CONF_REGISTRATION_URL,
    }
)


def _normalise_custom(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The custom step's input as stored: trimmed host, int port, bool TLS, validated PEM (or none)."""
    data: dict[str, Any] = {
        CONF_HOST: str(user_input[CONF_HOST]).strip(),
        CONF_PORT: int(user_input[CONF_PORT]),
        CONF_TLS: bool(user_input[CONF_TLS]),
    }
    ca_pem = check_ca_pem(user_input.get(CONF_CA_CERT))
    if ca_pem is not None:
        data[CONF_CA_CERT] = ca_pem
    return data


def _typed_device_id(user_input: Mapping[str, Any]) -> DeviceId:
    """The gateway's id as the user typed it, its product ID of Tencent's shape (raises `FlowError` or
    `InvalidFieldError`)."""
    if not is_tencent_product_id(str(user_input[CONF_PRODUCT_ID]).strip()):
        raise FlowError(CONF_PRODUCT_ID, "product_id_format")
    return device_id_from(user_input)


def _pick_secret(user_input: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Exactly one of (device secret, product secret), validated enough to sign with."""
    device_secret = str(user_input.get(CONF_DEVICE_SECRET) or "").strip() or None
    product_secret = str(user_input.get(CONF_PRODUCT_SECRET) or "").strip() or None
    if (device_secret is None) == (product_secret is None):
        raise FlowError("base", "one_secret")
    if device_secret is not None:
        check_device_secret(device_secret)
    elif product_secret is not None and (len(product_secret) < 16 or not product_secret.isascii()):
        raise InvalidFieldError(
            CONF_PRODUCT_SECRET,
            FieldProblem.NOT_ASCII if not product_secret.isascii() else FieldProblem.TOO_SHORT,
            min=16,
        )
    return device_secret, product_secret


class TencentIotConfigFlow(ConfigFlow, domain=DOMAIN):
    """Adds a gateway."""

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Start with nothing entered."""
        self._data: dict[str, Any] = {}
        self._product_secret: str | None = None
        self._user_input: dict[str, Any] = {}
        self._custom_input: dict[str, Any] = {}

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Install policy and job limits."""
        return GatewayOptionsFlow()

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Sub-devices are subentries of their gateway."""
        return {SUBENTRY_SUB_DEVICE: SubDeviceSubentryFlow, SUBENTRY_BRIDGE: BridgeSubentryFlow}

    # -- adding a gateway ---------------------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Region, ids and a secret."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            self._user_input = dict(user_input)
            try:
                device = _typed_device_id(user_input)
                device_secret, self._product_secret = _pick_secret(user_input)
            except InvalidFieldError as err:
                error = _field_error(err)
                errors[error.field] = error.key
                placeholders = error.placeholders
            except FlowError as err:
                errors[err.field] = err.key
            else:
                # The unique id is claimed only when the entry is created: a flow left open (the dialog closed
                # with Escape) must not block adding the same gateway again ("already being configured").
                if device.key in {e.unique_id for e in self._async_current_entries(include_ignore=False)}:
                    return self.async_abort(reason="already_configured")
                self._data = {
                    CONF_REGION: user_input[CONF_REGION],
                    CONF_PRODUCT_ID: device.product_id,
                    CONF_DEVICE_NAME: device.device_name,
                }
                if device_secret is not None:
                    self._data[CONF_DEVICE_SECRET] = device_secret
                if user_input[CONF_REGION] == Region.CUSTOM:
                    return await self.async_step_custom()
                return await self._async_finish("user")
        return self._show_user_form(errors, placeholders)

    async def async_step_custom(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Where a private deployment's broker is."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            try:
                custom = _normalise_custom(user_input)
                endpoint_from(self._data | custom | {CONF_REGION: Region.CUSTOM.value})
            except InvalidFieldError as err:
                error = _field_error(err)
                errors[error.field] = error.key
                placeholders = error.placeholders
            else:
                self._data |= custom
                self._custom_input = dict(user_input)
                if CONF_REGISTRATION_URL in user_input:
                    self._user_input[CONF_REGISTRATION_URL] = user_input[CONF_REGISTRATION_URL]
                return await self._async_finish("custom")
        return self.async_show_form(
            step_id="custom",
            data_schema=self.add_suggested_values_to_schema(
                _custom_schema(with_registration=self._product_secret is not None),
                user_input if user_input is not None else self._custom_suggestions(),
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _custom_suggestions(self) -> dict[str, Any]:
        """What was entered on the custom step before (back from the user step after an error there)."""
        return {
            key: value
            for key, value in (self._custom_input | self._user_input).items()
            if key in (*_CUSTOM_KEYS, CONF_REGISTRATION_URL)
        }

    def _show_user_form(self, errors: dict[str, str], placeholders: dict[str, str]) -> ConfigFlowResult:
        # Everything entered comes back, the secrets too: they are the user's own input, and a typo is
        # easier to fix than to retype (the field stays a password field).
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(USER_SCHEMA, self._user_input),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def _async_finish(self, step: str) -> ConfigFlowResult:
        """Register if needed, log in, create the entry; on failure show the form that can fix it."""
        try:
            await self._async_obtain_secret_and_login(self._data)
        except FlowError as err:
            on_custom_form = step == "custom" and err.field in _CUSTOM_FIXABLE
            field = "base" if err.field == "custom" else err.field
            if not on_custom_form:
                return self._show_user_form({field: err.key}, err.placeholders)
            suggested = self._custom_suggestions()
            return self.async_show_form(
                step_id="custom",
                data_schema=self.add_suggested_values_to_schema(
                    _custom_schema(with_registration=self._product_secret is not None), suggested
                ),
                errors={field: err.key},
                description_placeholders=err.placeholders,
            )
        await self.async_set_unique_id(device_id_from(self._data).key, raise_on_progress=False)
        self._abort_if_unique_id_configured()
        title = f"{self._data[CONF_DEVICE_NAME]} ({self._data[CONF_PRODUCT_ID]})"
        return self.async_create_entry(title=title, data=self._data)

    async def _async_obtain_secret_and_login(self, data: dict[str, Any]) -> None:
        """Fill `data[device_secret]` (registering when given a product secret) and log in with it.

        Raises `FlowError`: its field is "custom" for a connection problem that the custom step can fix.
        """
        device = device_id_from(data)
        custom = data[CONF_REGION] == Region.CUSTOM
        try:
            endpoint = endpoint_from(data)
            if self._product_secret is not None:
                url = registration_url_for(
                    data | {CONF_REGISTRATION_URL: self._user_input.get(CONF_REGISTRATION_URL)}
                )
                data[CONF_DEVICE_SECRET] = await register_device(
                    async_get_clientsession(self.hass),
                    url,
                    device,
                    self._product_secret,
                    ca_pem=endpoint.ca_pem,
                )
            await check_login(endpoint, device, data[CONF_DEVICE_SECRET])
        except InvalidFieldError as err:
            raise _field_error(err) from None
        except RegistrationUnreachableError as err:
            field = CONF_REGISTRATION_URL if custom else "base"
            raise FlowError(field, f"registration_unreachable_{err.cause}", {"host": err.host}) from None
        except ClockSkewError as err:
            raise FlowError("base", *_clock_error(err)) from None
        except RegistrationError as err:
            raise FlowError("base", "registration_failed", {"reason": err.message}) from None
        except AuthenticationError:
            raise FlowError("base", "invalid_auth") from None
        except NotAGatewayError:
            raise FlowError("base", "not_gateway") from None
        except CannotConnectError as err:
            _LOGGER.debug("Cannot connect to the broker: %s", err)
            raise FlowError(
                "custom" if custom else "base", f"cannot_connect_{err.cause}", err.placeholders
            ) from None

    def _async_save_and_abort(
        self, entry: ConfigEntry, data: dict[str, Any], reason: str
    ) -> ConfigFlowResult:
        """Save `data` and have the entry reloaded exactly once.

        A loaded entry's update listener reloads it when its data changes: that is the one reload path (HA
        reports flows that reload such an entry themselves). The flow reloads only what the listener will not:
        an entry that is not loaded (no listener: e.g. its setup failed on the old secret) or unchanged data.
        """
        changed = self.hass.config_entries.async_update_entry(entry, data=data)
        if not changed or not entry.update_listeners:
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
        return self.async_abort(reason=reason)

    # -- re-authentication --------------------------------------------------------------------------------

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The broker refused the stored secret."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for a new secret and log in with it before saving it."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        placeholders = {"gateway": entry.title}
        if user_input is not None:
            data = dict(entry.data)
            try:
                device_secret, self._product_secret = _pick_secret(user_input)
                if device_secret is not None:
                    data[CONF_DEVICE_SECRET] = device_secret
                await self._async_obtain_secret_and_login(data)
            except InvalidFieldError as err:
                error = _field_error(err)
                errors[error.field] = error.key
                placeholders |= error.placeholders
            except FlowError as err:
                errors["base" if err.field == "custom" else err.field] = err.key
                placeholders |= err.placeholders
            else:
                return self._async_save_and_abort(entry, data, "reauth_successful")
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(SECRET_SCHEMA, user_input or {}),
            errors=errors,
            description_placeholders=placeholders,
        )

    # -- reconfigure --------------------------------------------------------------------------------------

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Change the region (then the custom broker, if custom)."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            self._data = {k: v for k, v in entry.data.items() if k not in _CUSTOM_KEYS}
            self._data[CONF_REGION] = user_input[CONF_REGION]
            if user_input[CONF_REGION] == Region.CUSTOM:
                return await self.async_step_reconfigure_custom()
            try:
                await self._async_obtain_secret_and_login(self._data)
            except FlowError as err:
                errors["base" if err.field == "custom" else err.field] = err.key
                placeholders = err.placeholders
            else:
                return self._async_save_and_abort(entry, self._data, "reconfigure_successful")
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(REGION_SCHEMA, user_input or dict(entry.data)),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_reconfigure_custom(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Host, port, TLS and CA of a private deployment."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            try:
                data = self._data | _normalise_custom(user_input)
                await self._async_obtain_secret_and_login(data)
            except InvalidFieldError as err:
                error = _field_error(err)
                errors[error.field] = error.key
                placeholders = error.placeholders
            except FlowError as err:
                errors["base" if err.field == "custom" else err.field] = err.key
                placeholders = err.placeholders
            else:
                return self._async_save_and_abort(entry, data, "reconfigure_successful")
        return self.async_show_form(
            step_id="reconfigure_custom",
            data_schema=self.add_suggested_values_to_schema(
                _custom_schema(with_registration=False), user_input or dict(entry.data)
            ),
            errors=errors,
            description_placeholders=placeholders,
        )


def _count_selector(minimum: int, maximum: int) -> RangeNumberSelector:
    return RangeNumberSelector(
        NumberSelectorConfig(min=minimum, max=maximum, step=1, mode=NumberSelectorMode.BOX)
    )


def _mib_selector(minimum: int) -> RangeNumberSelector:
    return RangeNumberSelector(
        NumberSelectorConfig(
            min=minimum,
            max=MAX_FIRMWARE_SIZE_MIB_LIMIT,
            step=1,
            unit_of_measurement="MiB",
            mode=NumberSelectorMode.BOX,
        )
    )


def _canary_size(options: Mapping[str, Any]) -> tuple[int, CanaryUnit]:
    """The canary group's size as the form shows it, from the stored count or share (a share wins, as in the
    engine's settings: options stored before the form had one size kept both)."""
    percent = int(options.get(CONF_CANARY_PERCENT, 0))
    if percent > 0:
        return percent, CanaryUnit.PERCENT
    return int(options.get(CONF_CANARY_COUNT, DEFAULT_CANARY_COUNT)), CanaryUnit.DEVICES


class GatewayOptionsFlow(OptionsFlow):
    """Install policy, parallel downloads and flashes, largest firmware, rollback space, the gateway's own
    firmware, and whether rollouts are staged; their settings on a second step, only when they are.

    Not `OptionsFlowWithReload`: the entry's update listener already reloads when the options change (it
    also applies sub-device changes without a reload, which that class forbids).
    """

    def __init__(self) -> None:
        """Nothing entered yet."""
        self._options: dict[str, Any] = {}
        self._shown: vol.Schema | None = (
            None  # the form on screen: its number fields' ranges are checked on submit
        )

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Everything but the staged rollout's settings."""
        errors: dict[str, str] = {}
        description_placeholders: dict[str, str] = {}
        options = self.config_entry.options
        if user_input is not None:
            data: dict[str, Any] = {
                CONF_INSTALL_POLICY: user_input[CONF_INSTALL_POLICY],
                CONF_MAX_DOWNLOADS: int(user_input[CONF_MAX_DOWNLOADS]),
                CONF_MAX_FLASHES: int(user_input[CONF_MAX_FLASHES]),
                CONF_MAX_FIRMWARE_SIZE_MIB: int(user_input[CONF_MAX_FIRMWARE_SIZE_MIB]),
            }
            # Stored only when set, so an entry that never used them keeps its options as they were.
            if user_input.get(CONF_GATEWAY_UPDATES):
                data[CONF_GATEWAY_UPDATES] = True
            budget = int(user_input.get(CONF_ROLLBACK_BUDGET_MIB, DEFAULT_ROLLBACK_BUDGET_MIB))
            if budget != DEFAULT_ROLLBACK_BUDGET_MIB:
                data[CONF_ROLLBACK_BUDGET_MIB] = budget
            version = str(user_input.get(CONF_GATEWAY_VERSION) or "").strip()
            try:
                if version:
                    data[CONF_GATEWAY_VERSION] = check_version(version, CONF_GATEWAY_VERSION)
            except InvalidFieldError as err:
                field_error(err).add_to(errors, description_placeholders)
            if self._shown is not None and (out_of_range := range_error(self._shown, user_input)):
                out_of_range.add_to(errors, description_placeholders)
            if not errors:
                if not user_input.get(CONF_ROLLOUT):
                    return self.async_create_entry(data=data)
                self._options = data | {CONF_ROLLOUT: True}
                return await self.async_step_rollout()
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_INSTALL_POLICY,
                    default=options.get(CONF_INSTALL_POLICY, DEFAULT_INSTALL_POLICY.value),
                ): SelectSelector(
                    SelectSelectorConfig(
                        options=[policy.value for policy in InstallPolicy],
                        translation_key=CONF_INSTALL_POLICY,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                vol.Required(
                    CONF_MAX_DOWNLOADS, default=options.get(CONF_MAX_DOWNLOADS, DEFAULT_MAX_DOWNLOADS)
                ): _count_selector(1, MAX_PARALLEL),
                vol.Required(
                    CONF_MAX_FLASHES, default=options.get(CONF_MAX_FLASHES, DEFAULT_MAX_FLASHES)
                ): _count_selector(1, MAX_PARALLEL),
                vol.Required(
                    CONF_MAX_FIRMWARE_SIZE_MIB,
                    default=options.get(CONF_MAX_FIRMWARE_SIZE_MIB, DEFAULT_MAX_FIRMWARE_SIZE_MIB),
                ): _mib_selector(1),
                # Rollbacks are per sub-device (their health check), not part of a staged rollout.
                vol.Required(
                    CONF_ROLLBACK_BUDGET_MIB,
                    default=options.get(CONF_ROLLBACK_BUDGET_MIB, DEFAULT_ROLLBACK_BUDGET_MIB),
                ): _mib_selector(0),
                vol.Required(
                    CONF_GATEWAY_UPDATES, default=bool(options.get(CONF_GATEWAY_UPDATES, False))
                ): BooleanSelector(),
                vol.Optional(CONF_GATEWAY_VERSION): TextSelector(),
                vol.Required(CONF_ROLLOUT, default=bool(options.get(CONF_ROLLOUT, False))): BooleanSelector(),
            }
        )
        self._shown = schema
        suggested = {CONF_GATEWAY_VERSION: options.get(CONF_GATEWAY_VERSION, "")}
        if user_input is not None:
            suggested = user_input
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
            description_placeholders=description_placeholders,
        )

    async def async_step_rollout(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The staged rollout: the canary group's size (a number of devices or a share), soak time, failures."""
        errors: dict[str, str] = {}
        description_placeholders: dict[str, str] = {}
        if user_input is not None:
            size, unit = int(user_input[CONF_CANARY_SIZE]), CanaryUnit(user_input[CONF_CANARY_UNIT])
            if self._shown is not None and (out_of_range := range_error(self._shown, user_input)):
                out_of_range.add_to(errors, description_placeholders)
            elif unit is CanaryUnit.PERCENT and size > 100:
                errors[CONF_CANARY_SIZE] = "canary_share_too_large"
            else:
                # Exactly one of the two stored keys says how the group is sized.
                size_key = CONF_CANARY_PERCENT if unit is CanaryUnit.PERCENT else CONF_CANARY_COUNT
                return self.async_create_entry(
                    data=self._options
                    | {
                        size_key: size,
                        CONF_SOAK_MIN: int(user_input[CONF_SOAK_MIN]),
                        CONF_MAX_FAILURES: int(user_input[CONF_MAX_FAILURES]),
                    }
                )
        options = self.config_entry.options
        size, unit = _canary_size(options)
        schema = vol.Schema(
            {
                vol.Required(CONF_CANARY_SIZE, default=size): _count_selector(1, MAX_ROLLOUT_COUNT),
                vol.Required(CONF_CANARY_UNIT, default=unit.value): SelectSelector(
                    SelectSelectorConfig(
                        options=[choice.value for choice in CanaryUnit],
                        translation_key=CONF_CANARY_UNIT,
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                vol.Required(
                    CONF_SOAK_MIN, default=options.get(CONF_SOAK_MIN, DEFAULT_SOAK_MIN)
                ): RangeNumberSelector(
                    NumberSelectorConfig(
                        min=0,
                        max=MAX_SOAK_MIN,
                        step=1,
                        unit_of_measurement="min",
                        mode=NumberSelectorMode.BOX,
                    )
                ),
                vol.Required(
                    CONF_MAX_FAILURES, default=options.get(CONF_MAX_FAILURES, DEFAULT_MAX_FAILURES)
                ): _count_selector(1, MAX_ROLLOUT_COUNT),
            }
        )
        self._shown = schema
        return self.async_show_form(
            step_id="rollout",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or {}),
            errors=errors,
            description_placeholders=description_placeholders,
        )
