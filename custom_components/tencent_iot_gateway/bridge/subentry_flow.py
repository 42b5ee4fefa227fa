"""The "Bridge entities to Tencent" subentry flow: a product, its category, how its devices are created, and
the entities (only those the category fits).

Steps: `user` (product ID, category, dynamic registration or devices given, read-only, unbind on removal) →
`entities` (the entities, the product secret for registration, the property identifiers in a collapsed
section) → `credentials` once per entity when the devices are given. Reconfigure changes the entities, the
identifiers and the switches; entities added then are paired the same way.

Every entity is paired with its device before the subentry is saved: registered here with the product secret
(which is used, never stored) or given by the user; the pairings are kept in the entry's bridge store
(`pairings.py`), so the subentry's data holds no secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.config_entries import ConfigSubentryFlow, SubentryFlowResult
from homeassistant.data_entry_flow import section
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio as vol

from custom_components.tencent_iot_gateway.const import (
    CONF_CA_CERT,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_PRODUCT_ID,
    CONF_PRODUCT_SECRET,
    CONF_REGION,
    CONF_REGISTRATION_URL,
    CONF_UNBIND_ON_REMOVE,
    SUBENTRY_SUB_DEVICE,
)
from custom_components.tencent_iot_gateway.engine import (
    ClockSkewError,
    DeviceId,
    InvalidFieldError,
    Region,
    RegistrationError,
    RegistrationUnreachableError,
    register_device,
)
from custom_components.tencent_iot_gateway.entry_config import (
    check_ca_pem,
    check_device_secret,
    is_tencent_product_id,
    registration_url_for,
)
from custom_components.tencent_iot_gateway.form_errors import field_error

from .categories import CATEGORIES, Category
from .config import check_identifiers, device_name_for, identifiers_from
from .const import (
    CONF_CATEGORY,
    CONF_CREATION,
    CONF_ENTITIES,
    CONF_PROPERTIES,
    CONF_READ_ONLY,
    SUBENTRY_BRIDGE,
    Creation,
)
from .pairings import Pairing, pairings_of

UPDATED: Final = "bridge_updated"
_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


class FormError(Exception):
    """An error to show on the form: its field (or base), key and placeholders."""

    def __init__(self, field: str, key: str, placeholders: dict[str, str] | None = None) -> None:
        """Shown on `field` as `key`."""
        super().__init__(key)
        self.field = field
        self.key = key
        self.placeholders = placeholders or {}


def _select(options: list[str], key: str) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(options=options, translation_key=key, mode=SelectSelectorMode.DROPDOWN)
    )


def _switches_schema() -> dict[vol.Marker, Any]:
    return {
        vol.Required(CONF_READ_ONLY, default=False): BooleanSelector(),
        vol.Required(CONF_UNBIND_ON_REMOVE, default=True): BooleanSelector(),
    }


def _user_schema() -> vol.Schema:
    return vol.Schema(
        {
            vol.Required(CONF_PRODUCT_ID): TextSelector(),
            vol.Required(CONF_CATEGORY): _select([c.value for c in Category], "bridge_category"),
            vol.Required(CONF_CREATION, default=Creation.REGISTER.value): _select(
                [c.value for c in Creation], "bridge_creation"
            ),
        }
        | _switches_schema()
    )


def _entities_schema(
    category: Category, creation: Creation, *, custom: bool, reconfigure: bool
) -> vol.Schema:
    fields: dict[vol.Marker, Any] = {
        vol.Required(CONF_ENTITIES): EntitySelector(
            EntitySelectorConfig(multiple=True, filter=CATEGORIES[category].entity_filter)
        )
    }
    if reconfigure:
        fields |= _switches_schema()
    if creation is Creation.REGISTER:
        fields[vol.Optional(CONF_PRODUCT_SECRET)] = _PASSWORD
        if custom:
            fields[vol.Optional(CONF_REGISTRATION_URL)] = TextSelector()
    roles = CATEGORIES[category].mapping.roles
    fields[vol.Required(CONF_PROPERTIES)] = section(
        vol.Schema({vol.Optional(role.value): TextSelector() for role in roles}), {"collapsed": True}
    )
    return vol.Schema(fields)


def _credentials_schema() -> vol.Schema:
    return vol.Schema(
        {vol.Required(CONF_DEVICE_NAME): TextSelector(), vol.Required(CONF_DEVICE_SECRET): _PASSWORD}
    )


def _clock_error(err: ClockSkewError) -> FormError:
    """The host's clock named as the cause of a refused registration (the gateway's own flow says the same)."""
    if err.skew_s is None:
        return FormError("base", "clock_skew_unknown", {"reason": err.message})
    minutes = str(max(1, round(abs(err.skew_s) / 60)))
    return FormError("base", "clock_ahead" if err.skew_s > 0 else "clock_behind", {"minutes": minutes})


class BridgeSubentryFlow(ConfigSubentryFlow):
    """Adds or edits the bridge of one Tencent product."""

    def __init__(self) -> None:
        """Nothing entered yet."""
        self._data: dict[str, Any] = {}
        self._to_pair: list[str] = []
        self._given: dict[str, Pairing] = {}

    @property
    def _category(self) -> Category:
        return Category(self._data[CONF_CATEGORY])

    @property
    def _creation(self) -> Creation:
        return Creation(self._data.get(CONF_CREATION, Creation.REGISTER))

    @property
    def _custom(self) -> bool:
        return Region(self._get_entry().data[CONF_REGION]) is Region.CUSTOM

    # -- adding --------------------------------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """The product: its ID of Tencent's shape, not the gateway's, not bridged yet."""
        errors: dict[str, str] = {}
        if user_input is not None:
            product_id = str(user_input[CONF_PRODUCT_ID]).strip()
            entry = self._get_entry()
            if not is_tencent_product_id(product_id):
                errors[CONF_PRODUCT_ID] = "product_id_format"
            elif product_id == entry.data[CONF_PRODUCT_ID]:
                errors[CONF_PRODUCT_ID] = "bridge_gateway_product"
            elif any(s.unique_id == _unique_id(product_id) for s in entry.subentries.values()):
                errors[CONF_PRODUCT_ID] = "bridge_exists"
            else:
                self._data = dict(user_input) | {CONF_PRODUCT_ID: product_id}
                return await self.async_step_entities()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(_user_schema(), user_input or {}),
            errors=errors,
        )

    async def async_step_entities(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Which entities, the product secret (registration), the identifiers."""
        return await self._entities_step("entities", user_input)

    async def async_step_credentials(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """The device name and secret of the next entity (devices created in the console)."""
        entity_id = self._to_pair[0]
        errors: dict[str, str] = {}
        placeholders = {"entity": self._entity_name(entity_id), "product": self._data[CONF_PRODUCT_ID]}
        if user_input is not None:
            try:
                device = DeviceId(self._data[CONF_PRODUCT_ID], str(user_input[CONF_DEVICE_NAME]).strip())
                secret = check_device_secret(str(user_input[CONF_DEVICE_SECRET]).strip())
                self._check_device_free(device, entity_id)
            except InvalidFieldError as err:
                field_error(err).add_to(errors, placeholders)
            except FormError as err:
                errors[err.field] = err.key
                placeholders |= err.placeholders
            else:
                self._given[entity_id] = Pairing(device, secret)
                self._to_pair.pop(0)
                if self._to_pair:
                    return await self.async_step_credentials()
                return await self._async_save()
        suggested = dict(user_input or {CONF_DEVICE_NAME: device_name_for(entity_id)})
        suggested.pop(CONF_DEVICE_SECRET, None)
        placeholders.setdefault("reason", "")
        return self.async_show_form(
            step_id="credentials",
            data_schema=self.add_suggested_values_to_schema(_credentials_schema(), suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    # -- editing -------------------------------------------------------------------------------------------

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """The entities, the switches and the identifiers of an existing bridge."""
        if not self._data:
            self._data = dict(self._get_reconfigure_subentry().data)
        return await self._entities_step("reconfigure", user_input)

    # -- shared --------------------------------------------------------------------------------------------

    async def _entities_step(self, step_id: str, user_input: dict[str, Any] | None) -> SubentryFlowResult:
        errors: dict[str, str] = {}
        placeholders = {
            "product": self._data[CONF_PRODUCT_ID],
            "reason": "",
        }
        if user_input is not None:
            try:
                await self._take_entities(user_input)
            except FormError as err:
                errors[err.field] = err.key
                placeholders |= err.placeholders
            else:
                if self._to_pair:
                    return await self.async_step_credentials()
                return await self._async_save()
        identifiers = identifiers_from(self._category, self._data.get(CONF_PROPERTIES))
        suggested = {
            k: v for k, v in self._data.items() if k in (CONF_ENTITIES, CONF_READ_ONLY, CONF_UNBIND_ON_REMOVE)
        } | {CONF_PROPERTIES: {role.value: name for role, name in identifiers.items()}}
        if user_input is not None:
            suggested |= {k: v for k, v in user_input.items() if k != CONF_PRODUCT_SECRET}
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                _entities_schema(
                    self._category, self._creation, custom=self._custom, reconfigure=step_id == "reconfigure"
                ),
                suggested,
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def _take_entities(self, user_input: Mapping[str, Any]) -> None:
        """Check the input; register the new entities' devices (registration) or list them for `credentials`."""
        entities = [str(e) for e in user_input.get(CONF_ENTITIES) or []]
        if not entities:
            raise FormError(CONF_ENTITIES, "bridge_no_entities")
        identifiers = identifiers_from(self._category, user_input.get(CONF_PROPERTIES))
        try:
            check_identifiers(identifiers)
        except InvalidFieldError as err:
            raise FormError(CONF_PROPERTIES, err.problem.value, dict(err.placeholders)) from None
        self._check_entities(entities)
        self._data |= {
            CONF_ENTITIES: entities,
            CONF_PROPERTIES: {role.value: name for role, name in identifiers.items()},
        }
        for key in (CONF_READ_ONLY, CONF_UNBIND_ON_REMOVE):
            if key in user_input:
                self._data[key] = bool(user_input[key])
        pairings = await pairings_of(self.hass, self._get_entry().entry_id)
        product_id = self._data[CONF_PRODUCT_ID]
        unpaired = [e for e in entities if pairings.get(e, product_id) is None]
        if self._creation is Creation.GIVEN:
            self._to_pair = unpaired
            return
        if unpaired:
            await pairings.async_set(await self._register(unpaired, user_input))

    def _check_entities(self, entities: list[str]) -> None:
        """Each entity exists, fits the category, and is not bridged by another of the entry's bridges."""
        spec = CATEGORIES[self._category]
        for entity_id in entities:
            if entity_id.split(".", 1)[0] not in spec.domains:
                raise FormError(CONF_ENTITIES, "bridge_wrong_domain", {"entity": entity_id})
        own = None if self.source == "user" else self._reconfigure_subentry_id
        for subentry_id, subentry in self._get_entry().subentries.items():
            if subentry.subentry_type != SUBENTRY_BRIDGE or subentry_id == own:
                continue
            taken = set(subentry.data.get(CONF_ENTITIES) or ()) & set(entities)
            if taken:
                raise FormError(
                    CONF_ENTITIES,
                    "bridge_entity_taken",
                    {"entity": min(taken), "bridge": subentry.title},
                )

    async def _register(self, entity_ids: list[str], user_input: Mapping[str, Any]) -> dict[str, Pairing]:
        """Dynamic registration of each entity's device with the product secret (used here, not kept)."""
        product_secret = str(user_input.get(CONF_PRODUCT_SECRET) or "").strip()
        if not product_secret:
            raise FormError(CONF_PRODUCT_SECRET, "bridge_product_secret_needed")
        entry = self._get_entry()
        try:
            url = registration_url_for(
                dict(entry.data) | {CONF_REGISTRATION_URL: user_input.get(CONF_REGISTRATION_URL)}
            )
            ca_pem = check_ca_pem(entry.data.get(CONF_CA_CERT)) if self._custom else None
            registered: dict[str, Pairing] = {}
            for entity_id in entity_ids:
                device = DeviceId(self._data[CONF_PRODUCT_ID], device_name_for(entity_id))
                self._check_device_free(device, entity_id)
                secret = await register_device(
                    async_get_clientsession(self.hass), url, device, product_secret, ca_pem=ca_pem
                )
                registered[entity_id] = Pairing(device, secret)
        except InvalidFieldError as err:
            field = CONF_REGISTRATION_URL if err.field == CONF_REGISTRATION_URL and self._custom else "base"
            raise FormError(field, err.problem.value, dict(err.placeholders)) from None
        except RegistrationUnreachableError as err:
            raise FormError("base", f"registration_unreachable_{err.cause}", {"host": err.host}) from None
        except ClockSkewError as err:
            raise _clock_error(err) from None
        except RegistrationError as err:
            raise FormError("base", "bridge_registration_failed", {"reason": err.message}) from None
        return registered

    def _check_device_free(self, device: DeviceId, entity_id: str) -> None:
        """Not the gateway, not one of its sub-devices."""
        entry = self._get_entry()
        if device.key == f"{entry.data[CONF_PRODUCT_ID]}/{entry.data[CONF_DEVICE_NAME]}" or any(
            s.subentry_type == SUBENTRY_SUB_DEVICE and s.unique_id == device.key
            for s in entry.subentries.values()
        ):
            raise FormError(
                CONF_DEVICE_NAME if self._creation is Creation.GIVEN else "base",
                "bridge_device_taken",
                {"device": device.key},
            )

    def _entity_name(self, entity_id: str) -> str:
        state = self.hass.states.get(entity_id)
        return f"{state.name} ({entity_id})" if state is not None else entity_id

    async def _async_save(self) -> SubentryFlowResult:
        if self._given:
            pairings = await pairings_of(self.hass, self._get_entry().entry_id)
            await pairings.async_set(self._given)
        data = {
            CONF_PRODUCT_ID: self._data[CONF_PRODUCT_ID],
            CONF_CATEGORY: self._data[CONF_CATEGORY],
            CONF_CREATION: self._creation.value,
            CONF_ENTITIES: self._data[CONF_ENTITIES],
            CONF_READ_ONLY: bool(self._data.get(CONF_READ_ONLY, False)),
            CONF_UNBIND_ON_REMOVE: bool(self._data.get(CONF_UNBIND_ON_REMOVE, True)),
            CONF_PROPERTIES: self._data[CONF_PROPERTIES],
        }
        title = f"{self._data[CONF_PRODUCT_ID]} ({self._category.value})"
        if self.source == "user":
            return self.async_create_entry(
                title=title, data=data, unique_id=_unique_id(data[CONF_PRODUCT_ID])
            )
        return self.async_update_and_abort(
            self._get_entry(), self._get_reconfigure_subentry(), data=data, title=title, reason=UPDATED
        )


def _unique_id(product_id: str) -> str:
    """One bridge per product (a product has one category)."""
    return f"{SUBENTRY_BRIDGE}/{product_id}"
