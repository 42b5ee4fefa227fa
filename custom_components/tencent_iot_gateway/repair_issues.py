"""The repair issues of one gateway entry: a sub-device unbound in the cloud, one whose update topic the
broker refused, and a halted rollout (fixable: its fix flow in `repairs.py` lets it go on)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Final

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .engine import DeviceId, RolloutHalted
from .ota.failures import device_failure_text

ROLLOUT_HALTED_ISSUE: Final = "rollout_halted_"
ATTR_ENTRY_ID: Final = "entry_id"


class SubDeviceIssue(StrEnum):
    """A sub-device's own repair issues (the value is part of the issue id)."""

    UNBOUND = "unbound"
    UPDATES_BLOCKED = "updates_blocked"

    @property
    def translation_key(self) -> str:
        """The key of the issue's text in strings.json."""
        return "sub_device_unbound" if self is SubDeviceIssue.UNBOUND else self.value


class RepairIssues:
    """Raises and clears the entry's repair issues (the engine keeps the halted rollouts; this only shows them)."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        gateway: DeviceId,
        display_name: Callable[[DeviceId], str],
    ) -> None:
        """Issues of `entry`, whose gateway is `gateway`; sub-devices are named by `display_name`."""
        self._hass = hass
        self._entry = entry
        self._gateway = gateway
        self._display_name = display_name

    def set(self, kind: SubDeviceIssue, device: DeviceId, *, raised: bool) -> None:
        """Raise or clear one of a sub-device's issues."""
        issue_id = self._issue_id(kind, device)
        if not raised:
            ir.async_delete_issue(self._hass, DOMAIN, issue_id)
            return
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            issue_id,
            is_fixable=False,
            is_persistent=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key=kind.translation_key,
            translation_placeholders={"device": device.key, "gateway": self._gateway.key},
        )

    def clear_device(self, device: DeviceId) -> None:
        """A sub-device removed: none of its issues stays."""
        for kind in SubDeviceIssue:
            self.set(kind, device, raised=False)

    def rollout_halted(self, halted: RolloutHalted) -> None:
        """What happened, with the failing devices and their reasons, and how to go on."""
        issue_id = self._rollout_issue_id(halted)
        failures = "\n".join(
            "- "
            + device_failure_text(
                self._hass, self._display_name(failed.device), halted.version, failed.failure, failed.code
            )
            for failed in halted.failed
        )
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            issue_id,
            is_fixable=True,  # its fix flow resumes the rollout (repairs.py)
            is_persistent=False,
            data={ATTR_ENTRY_ID: self._entry.entry_id},
            severity=ir.IssueSeverity.ERROR,
            translation_key="rollout_halted",
            translation_placeholders={
                "gateway": self._entry.title,
                "version": halted.version,
                "failed": str(len(halted.failed)),
                "total": str(halted.total),
                "halted": str(len(halted.halted)),
                "failures": failures,
            },
        )

    def clear_rollouts(self, halts: Iterable[RolloutHalted]) -> None:
        """Delete these halted rollouts' issues (they went on, or the entry stops: the next start raises the
        saved ones again)."""
        for halted in halts:
            ir.async_delete_issue(self._hass, DOMAIN, self._rollout_issue_id(halted))

    def _rollout_issue_id(self, halted: RolloutHalted) -> str:
        return f"{ROLLOUT_HALTED_ISSUE}{self._entry.entry_id}_{halted.version}"

    def _issue_id(self, kind: SubDeviceIssue, device: DeviceId) -> str:
        return f"{kind.value}_{self._entry.entry_id}_{device.key}"
