"""The bridge's repair issues: a property the product refuses, and a device the cloud would not bind."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from custom_components.tencent_iot_gateway.const import DOMAIN

from .bridged_entity import BridgedEntity

PROPERTY_REFUSED = "bridge_property_refused"
NOT_BOUND = "bridge_not_bound"
# Why the cloud refused the gateway's `bind` (its result code, spec §2), as the issue's translation key.
_BIND_REFUSED: dict[int, str] = {
    803: "bridge_bind_refused_secret",
    805: "bridge_bind_refused_clock",
    802: "bridge_bind_refused_no_device",
    806: "bridge_bind_refused_other_gateway",
}


class BridgeIssues:
    """Raises and clears the issues of one entry's bridged entities."""

    def __init__(self, hass: HomeAssistant, entry_id: str, gateway: str) -> None:
        """Issues of the entry `entry_id`, whose gateway is `gateway` (`PID/DN`)."""
        self._hass = hass
        self._entry_id = entry_id
        self._gateway = gateway
        self._raised: dict[str, set[str]] = {}  # issue ids by entity

    def property_refused(self, entity: BridgedEntity, identifier: str) -> None:
        """The product's data template refuses `identifier` (not in it, or a value that does not fit)."""
        self._create(
            entity,
            f"{PROPERTY_REFUSED}_{self._entry_id}_{entity.device.key}_{identifier}",
            PROPERTY_REFUSED,
            {"property": identifier},
        )

    def not_bound(self, entity: BridgedEntity, *, raised: bool, code: int | None = None) -> None:
        """The cloud did not bind the entity's device to the gateway (or it is bound again); `code`: the
        cloud's answer to the refused `bind`, which says why."""
        issue_id = f"{NOT_BOUND}_{self._entry_id}_{entity.device.key}"
        if raised:
            key = _BIND_REFUSED.get(abs(code), NOT_BOUND) if code is not None else NOT_BOUND
            self._create(entity, issue_id, key, {"gateway": self._gateway, "code": str(code or "-")})
        elif issue_id in self._raised.get(entity.entity_id, set()):
            self._raised[entity.entity_id].discard(issue_id)
            ir.async_delete_issue(self._hass, DOMAIN, issue_id)

    def clear(self, entity: BridgedEntity, *, refused_only: bool = False) -> None:
        """The entity left the bridge, or its identifiers changed (`refused_only`): its issues go."""
        for issue_id in list(self._raised.get(entity.entity_id, ())):
            if refused_only and not issue_id.startswith(PROPERTY_REFUSED):
                continue
            self._raised[entity.entity_id].discard(issue_id)
            ir.async_delete_issue(self._hass, DOMAIN, issue_id)

    def _create(self, entity: BridgedEntity, issue_id: str, key: str, extra: dict[str, str]) -> None:
        state = self._hass.states.get(entity.entity_id)
        self._raised.setdefault(entity.entity_id, set()).add(issue_id)
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=key,
            translation_placeholders={
                "entity": state.name if state is not None else entity.entity_id,
                "entity_id": entity.entity_id,
                "product": entity.device.product_id,
                "device": entity.device.device_name,
            }
            | extra,
        )
