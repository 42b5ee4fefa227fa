"""Pre-flight conditions of a sub-device, as Home Assistant evaluates them for the engine's gates.

A template that must render true (checked before the job downloads and again before it flashes) and a
maintenance window (time of day) that only installs nobody started by hand must wait for. The engine asks,
holds the job while the answer is a reason, and fails it after the timeout (engine/ota/preflight.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from typing import Any, Final

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import TemplateError
from homeassistant.helpers.template import Template, result_as_boolean
from homeassistant.util import dt as dt_util

from custom_components.tencent_iot_gateway.const import (
    CONF_MAINTENANCE_END,
    CONF_MAINTENANCE_START,
    CONF_PREFLIGHT_CONDITION,
    CONF_PREFLIGHT_TIMEOUT_MIN,
    MAX_PREFLIGHT_TIMEOUT_MIN,
)
from custom_components.tencent_iot_gateway.engine import (
    DEFAULT_PREFLIGHT_TIMEOUT_S,
    DeviceId,
    FieldProblem,
    GatePoint,
    InvalidFieldError,
    Preflight,
)

from . import failures
from .template_watch import template_changes

# How often a held job with only a maintenance window asks again (a template is followed instead, see
# `template_watch`); a module constant so tests can shorten it.
POLL_INTERVAL_S: Final = 15.0


@dataclass(frozen=True, slots=True)
class PreflightConfig:
    """What a sub-device's subentry asks for before its firmware is installed."""

    condition: str | None = None
    window: tuple[time, time] | None = None
    timeout_s: float = DEFAULT_PREFLIGHT_TIMEOUT_S

    @property
    def active(self) -> bool:
        """Whether there is anything to check."""
        return self.condition is not None or self.window is not None

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PreflightConfig:
        """Parse a subentry's data (raises `InvalidFieldError` naming the field)."""
        condition = str(data.get(CONF_PREFLIGHT_CONDITION) or "").strip() or None
        start, end = data.get(CONF_MAINTENANCE_START), data.get(CONF_MAINTENANCE_END)
        window: tuple[time, time] | None = None
        if start or end:
            if not (start and end):
                field = CONF_MAINTENANCE_END if start else CONF_MAINTENANCE_START
                raise InvalidFieldError(field, FieldProblem.WINDOW_INCOMPLETE)
            window = (_time(start, CONF_MAINTENANCE_START), _time(end, CONF_MAINTENANCE_END))
            if window[0] == window[1]:
                raise InvalidFieldError(CONF_MAINTENANCE_END, FieldProblem.WINDOW_EMPTY)
        minutes = data.get(CONF_PREFLIGHT_TIMEOUT_MIN)
        if minutes and not 1 <= float(minutes) <= MAX_PREFLIGHT_TIMEOUT_MIN:
            raise InvalidFieldError(
                CONF_PREFLIGHT_TIMEOUT_MIN, FieldProblem.OUT_OF_RANGE, min=1, max=MAX_PREFLIGHT_TIMEOUT_MIN
            )
        timeout_s = float(minutes) * 60 if minutes else DEFAULT_PREFLIGHT_TIMEOUT_S
        return cls(condition, window, timeout_s)


NO_PREFLIGHT: Final = PreflightConfig()


def _time(value: object, field: str) -> time:
    try:
        return time.fromisoformat(str(value))
    except ValueError:
        raise InvalidFieldError(field, FieldProblem.TIME_OF_DAY) from None


def in_window(now: time, window: tuple[time, time]) -> bool:
    """Whether `now` is inside the window; a window that ends before it starts spans midnight."""
    start, end = window
    if start < end:
        return start <= now < end
    return now >= start or now < end


def build_preflight(
    hass: HomeAssistant, name: str, config: PreflightConfig, unattended: Callable[[DeviceId], bool]
) -> Preflight | None:
    """The engine's gate for one sub-device, or None when it has no conditions."""
    if not config.active:
        return None

    async def check(device: DeviceId, point: GatePoint) -> str | None:
        if config.window is not None and unattended(device):
            now = dt_util.now().time()
            if not in_window(now, config.window):
                start, end = config.window
                return failures.text(
                    hass,
                    "hold_window",
                    {"device": name, "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")},
                )
        if config.condition is not None:
            try:
                rendered = Template(config.condition, hass).async_render(parse_result=False)
            except TemplateError as err:
                return failures.text(hass, "hold_condition_error", {"device": name, "error": str(err)})
            if not result_as_boolean(rendered):
                return failures.text(hass, "hold_condition", {"device": name})
        return None

    changed = None
    if config.condition is not None:
        window = config.window
        # The window's start is a change too (for unattended installs, which wait for it).
        changed = template_changes(
            hass, config.condition, also=(lambda: seconds_until_open(window)) if window is not None else None
        )
    return Preflight(check, timeout_s=config.timeout_s, poll_interval_s=POLL_INTERVAL_S, changed=changed)


def seconds_until_open(window: tuple[time, time]) -> float | None:
    """Seconds until the window opens next (None while it is open)."""
    now = dt_util.now()
    if in_window(now.time(), window):
        return None
    start = now.replace(hour=window[0].hour, minute=window[0].minute, second=0, microsecond=0)
    if start <= now:
        start += timedelta(days=1)
    return (start - now).total_seconds()
