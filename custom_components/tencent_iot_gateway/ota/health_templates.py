"""Health checks of a sub-device after a flash, as Home Assistant evaluates them for the engine.

A template that must become true (e.g. the device's entity available again) and/or the flasher's version
check, within a timeout; with `rollback`, the last image the device ran well is flashed back when they fail
(engine/ota/health_check.py, engine/ota/rollback_images.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import TemplateError
from homeassistant.helpers.template import Template, result_as_boolean

from custom_components.tencent_iot_gateway.const import (
    CONF_HEALTH_TEMPLATE,
    CONF_HEALTH_TIMEOUT_MIN,
    CONF_HEALTH_VERSION_CHECK,
    CONF_ROLLBACK,
    MAX_PREFLIGHT_TIMEOUT_MIN,
)
from custom_components.tencent_iot_gateway.engine import (
    DEFAULT_HEALTH_TIMEOUT_S,
    DeviceId,
    FieldProblem,
    FirmwareSpec,
    HealthCheck,
    InvalidFieldError,
)

from . import failures
from .template_watch import template_changes

# How often a device is asked again after its flash when its version is read (a template alone is followed
# instead, see `template_watch`); a module constant so tests can shorten it.
POLL_INTERVAL_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """What a sub-device's subentry asks for after a flash."""

    template: str | None = None
    version_check: bool = False
    timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S
    rollback: bool = False

    @property
    def active(self) -> bool:
        """Whether there is anything to check."""
        return self.template is not None or self.version_check

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> HealthConfig:
        """Parse a subentry's data (raises `InvalidFieldError` naming the field)."""
        template = str(data.get(CONF_HEALTH_TEMPLATE) or "").strip() or None
        minutes = data.get(CONF_HEALTH_TIMEOUT_MIN)
        if minutes and not 1 <= float(minutes) <= MAX_PREFLIGHT_TIMEOUT_MIN:
            raise InvalidFieldError(
                CONF_HEALTH_TIMEOUT_MIN, FieldProblem.OUT_OF_RANGE, min=1, max=MAX_PREFLIGHT_TIMEOUT_MIN
            )
        timeout_s = float(minutes) * 60 if minutes else DEFAULT_HEALTH_TIMEOUT_S
        version_check = bool(data.get(CONF_HEALTH_VERSION_CHECK, False))
        rollback = bool(data.get(CONF_ROLLBACK, False))
        if rollback and not (template or version_check):
            raise InvalidFieldError(CONF_ROLLBACK, FieldProblem.ROLLBACK_NEEDS_CHECK)
        return cls(template, version_check, timeout_s, rollback)


NO_HEALTH_CHECK: Final = HealthConfig()


def build_health_check(hass: HomeAssistant, name: str, config: HealthConfig) -> HealthCheck | None:
    """The engine's check for one sub-device, or None when it has none."""
    if not config.active:
        return None
    condition = None
    changed = None
    if config.template is not None:
        changed = template_changes(hass, config.template)
        template = config.template

        async def rendered_true(_device: DeviceId, _firmware: FirmwareSpec) -> str | None:
            try:
                result = Template(template, hass).async_render(parse_result=False)
            except TemplateError as err:
                return failures.text(hass, "hold_condition_error", {"device": name, "error": str(err)})
            return (
                None if result_as_boolean(result) else failures.text(hass, "health_false", {"device": name})
            )

        condition = rendered_true
    return HealthCheck(
        condition,
        read_version=config.version_check,
        timeout_s=config.timeout_s,
        poll_interval_s=POLL_INTERVAL_S,
        rollback=config.rollback,
        changed=changed,
    )
