"""Fix flows of the integration's repair issues: a halted rollout goes on from its repair, once confirmed."""

from __future__ import annotations

from typing import Any

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant

from .const import DOMAIN
from .repair_issues import ATTR_ENTRY_ID, ROLLOUT_HALTED_ISSUE


class ResumeRolloutFlow(ConfirmRepairFlow):
    """Confirm, then let the entry's halted rollouts go on (as the `resume_rollout` action does)."""

    def __init__(self, entry_id: str) -> None:
        """The entry whose rollouts halted."""
        super().__init__()
        self._entry_id = entry_id

    async def async_step_confirm(self, user_input: dict[str, str] | None = None) -> Any:
        """The issue's text as the question; confirmed, the stopped devices install again, in batches."""
        if user_input is None:
            return await super().async_step_confirm(None)
        entry = self.hass.config_entries.async_get_entry(self._entry_id)
        if entry is None or entry.domain != DOMAIN or entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="not_loaded")
        await entry.runtime_data.async_resume_rollouts()
        return self.async_create_entry(data={})


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, str | int | float | None] | None
) -> RepairsFlow:
    """The flow of a fixable issue of this integration."""
    if issue_id.startswith(ROLLOUT_HALTED_ISSUE) and data is not None and ATTR_ENTRY_ID in data:
        return ResumeRolloutFlow(str(data[ATTR_ENTRY_ID]))
    return ConfirmRepairFlow()
