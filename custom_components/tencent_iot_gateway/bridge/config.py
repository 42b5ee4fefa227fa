"""A bridge subentry as the runtime takes it, parsed in one place; and the device name an entity gets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import hashlib
import logging
import re
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import ConfigEntry

from custom_components.tencent_iot_gateway.const import CONF_PRODUCT_ID, CONF_UNBIND_ON_REMOVE
from custom_components.tencent_iot_gateway.engine import FieldProblem, InvalidFieldError

from .categories import CATEGORIES, Category, default_identifiers
from .const import (
    CONF_CATEGORY,
    CONF_CREATION,
    CONF_ENTITIES,
    CONF_PROPERTIES,
    CONF_READ_ONLY,
    MAX_DEVICE_NAME,
    SUBENTRY_BRIDGE,
    Creation,
)
from .mapping import DomainMapping, Role

_LOGGER = logging.getLogger(__name__)

# What Tencent allows in an identifier of a data template: a letter or underscore first, at most 32.
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")
_HASH_LENGTH = 8


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """One bridge subentry: a product of one category and the entities bridged into it."""

    subentry_id: str
    product_id: str
    category: Category
    creation: Creation
    entities: tuple[str, ...]
    read_only: bool
    unbind_on_remove: bool
    identifiers: Mapping[Role, str]

    @property
    def mapping(self) -> DomainMapping:
        """The category's mapping."""
        return CATEGORIES[self.category].mapping

    def role_of(self, identifier: str) -> Role | None:
        """The role a property identifier stands for here."""
        for role, name in self.identifiers.items():
            if name == identifier:
                return role
        return None

    @classmethod
    def from_subentry(cls, subentry_id: str, data: Mapping[str, Any]) -> BridgeConfig:
        """Parse a subentry's data (raises `InvalidFieldError`)."""
        try:
            category = Category(str(data.get(CONF_CATEGORY)))
            creation = Creation(str(data.get(CONF_CREATION, Creation.REGISTER)))
        except ValueError:
            raise InvalidFieldError(CONF_CATEGORY, FieldProblem.INVALID) from None
        entities = data.get(CONF_ENTITIES) or []
        if not isinstance(entities, list) or not all(isinstance(e, str) for e in entities):
            raise InvalidFieldError(CONF_ENTITIES, FieldProblem.INVALID)
        return cls(
            subentry_id=subentry_id,
            product_id=str(data.get(CONF_PRODUCT_ID, "")),
            category=category,
            creation=creation,
            entities=tuple(entities),
            read_only=bool(data.get(CONF_READ_ONLY, False)),
            unbind_on_remove=bool(data.get(CONF_UNBIND_ON_REMOVE, True)),
            identifiers=MappingProxyType(identifiers_from(category, data.get(CONF_PROPERTIES))),
        )


def identifiers_from(category: Category, raw: object) -> dict[Role, str]:
    """The identifiers stored for a category's roles, the standard ones for those not set."""
    identifiers = default_identifiers(category)
    if isinstance(raw, Mapping):
        for role in identifiers:
            value = raw.get(role.value)
            if isinstance(value, str) and value.strip():
                identifiers[role] = value.strip()
    return identifiers


def check_identifiers(identifiers: Mapping[Role, str]) -> None:
    """Each identifier of Tencent's shape, and no two roles on one property (`InvalidFieldError`)."""
    for role, identifier in identifiers.items():
        if _IDENTIFIER.fullmatch(identifier) is None:
            raise InvalidFieldError(role.value, FieldProblem.PROPERTY_IDENTIFIER, name=identifier)
    seen: set[str] = set()
    for identifier in identifiers.values():
        if identifier in seen:
            raise InvalidFieldError(CONF_PROPERTIES, FieldProblem.DUPLICATE_PROPERTY, name=identifier)
        seen.add(identifier)


def bridge_configs(entry: ConfigEntry) -> dict[str, BridgeConfig]:
    """Every valid bridge subentry of an entry, by subentry id (an invalid one is logged and skipped)."""
    configs: dict[str, BridgeConfig] = {}
    for subentry_id, subentry in entry.subentries.items():
        if subentry.subentry_type != SUBENTRY_BRIDGE:
            continue
        try:
            configs[subentry_id] = BridgeConfig.from_subentry(subentry_id, subentry.data)
        except InvalidFieldError as err:
            _LOGGER.error("Ignoring the bridge %s: %s", subentry.title, err)
    return configs


def device_name_for(entity_id: str) -> str:
    """The device an entity becomes: its id with `_` for the dot (a Tencent name allows at most 48 letters,
    digits, `_` and `-`); a longer one keeps its start and a hash of the whole, so it stays unique."""
    name = _NOT_IN_NAME.sub("_", entity_id)
    if len(name) <= MAX_DEVICE_NAME:
        return name
    digest = hashlib.sha256(entity_id.encode()).hexdigest()[:_HASH_LENGTH]
    return f"{name[: MAX_DEVICE_NAME - _HASH_LENGTH - 1]}_{digest}"
