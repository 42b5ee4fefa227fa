"""Following a template instead of rendering it again on a timer: the pre-flight gates and health checks wait
for a change of what their template depends on (HA's template tracking), not for the next poll."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers.event import (
    TrackTemplate,
    TrackTemplateResult,
    TrackTemplateResultInfo,
    async_track_template_result,
)
from homeassistant.helpers.template import Template

# Longest wait without a change before a template is rendered again anyway: a change that happened between
# the last render and the start of tracking is then seen at the latest this much later.
FALLBACK_S: Final = 60.0


def template_changes(
    hass: HomeAssistant, template: str, *, also: Callable[[], float | None] | None = None
) -> Callable[[float], Awaitable[None]]:
    """A `changed(timeout_s)` for the engine's waits: returns when the template's result changes, after
    `also()` seconds when it gives some (e.g. until a maintenance window opens), or after `timeout_s`."""

    async def changed(timeout_s: float) -> None:
        result_changed = asyncio.Event()

        @callback
        def on_result(
            _event: Event[EventStateChangedData] | None, _updates: list[TrackTemplateResult]
        ) -> None:
            result_changed.set()

        info: TrackTemplateResultInfo = async_track_template_result(
            hass, [TrackTemplate(Template(template, hass), None)], on_result
        )
        wait = min(timeout_s, FALLBACK_S)
        extra = also() if also is not None else None
        if extra is not None:
            wait = min(wait, extra)
        try:
            async with asyncio.timeout(max(0.0, wait)):
                await result_changed.wait()
        except TimeoutError:
            pass
        finally:
            info.async_remove()

    return changed
