"""Per sub-device: its firmware as an update entity (install, progress, release notes)."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.components.update import UpdateDeviceClass, UpdateEntity, UpdateEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import failures
from .const import DOMAIN, InstallPolicy
from .engine.errors import OtaError
from .engine.identity import DeviceId
from .engine.ota_jobs import JobState
from .entity import SubDeviceEntity, async_setup_sub_device_entities
from .runtime import GatewayRuntime, TencentIotConfigEntry

# 0 = no limit from HA. "Update all" calls `async_install` on every entity at once; the engine's scheduler
# then queues the jobs (visibly "queued"), shares one download per image and bounds downloads and flashes by
# the options. A limit here would serialise the installs behind one another before the engine ever saw them.
PARALLEL_UPDATES = 0


async def async_setup_entry(
    hass: HomeAssistant, entry: TencentIotConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """One firmware update entity per sub-device."""

    # Release notes and summaries are worded from the translations: have them in the cache.
    await failures.async_load_texts(hass)

    def build(runtime: GatewayRuntime, device: DeviceId) -> list[Entity]:
        return [SubDeviceFirmwareUpdate(runtime, device)]

    async_setup_sub_device_entities(entry, async_add_entities, build)


class SubDeviceFirmwareUpdate(SubDeviceEntity, UpdateEntity):
    """The firmware the cloud offers a sub-device, installed through its flasher."""

    _attr_device_class = UpdateDeviceClass.FIRMWARE

    def __init__(self, runtime: GatewayRuntime, device: DeviceId) -> None:
        """The update entity of one sub-device."""
        super().__init__(runtime, device, "firmware")

    @property
    def supported_features(self) -> UpdateEntityFeature:
        """Install only with a flasher configured."""
        features = UpdateEntityFeature.PROGRESS | UpdateEntityFeature.RELEASE_NOTES
        if self.runtime.has_flasher(self.sub_device):
            features |= UpdateEntityFeature.INSTALL
        return features

    @property
    def installed_version(self) -> str:
        """The version the sub-device runs."""
        return self.snapshot.installed_version

    @property
    def latest_version(self) -> str:
        """The version the cloud pushed, or the installed one when nothing is pending."""
        return self.snapshot.latest_version

    @property
    def title(self) -> str:
        """What the firmware is for: the model the user named, else the product (no untranslated words)."""
        config = self.runtime.configs.get(self.sub_device)
        return config.device_model[0] if config is not None else self.sub_device.product_id

    @property
    def auto_update(self) -> bool:
        """True under the `auto` install policy (the engine installs pushes itself)."""
        return self.runtime.install_policy is InstallPolicy.AUTO and self.runtime.has_flasher(self.sub_device)

    @property
    def in_progress(self) -> bool:
        """Whether a job is queued or running."""
        return self.snapshot.state.running

    @property
    def update_percentage(self) -> int | None:
        """Download then flash on one scale; None while queued (an indeterminate bar)."""
        snapshot = self.snapshot
        if not snapshot.state.running or snapshot.state is JobState.QUEUED:
            return None
        return snapshot.percent

    @property
    def release_summary(self) -> str | None:
        """The running job's phase, the offered version's last failure (until the next attempt), or its size."""
        return failures.release_summary(self.hass, self._name, self.snapshot)

    async def async_release_notes(self) -> str | None:
        """Version, human size and where it comes from (the host only: the signed query is a credential).

        Tencent's push carries no description or release URL (spec §3), so there is none to show.
        """
        snapshot = self.snapshot
        target = snapshot.target
        if target is None:
            return None
        notes = failures.release_notes(self.hass, self._name, target)
        if snapshot.state is JobState.FAILED:
            # The dialog shows release notes instead of the summary: the last failure leads them.
            summary = failures.release_summary(self.hass, self._name, snapshot)
            notes = f"> {summary}\n\n{notes}"
        return notes

    @property
    def _name(self) -> str:
        return self.runtime.display_name(self.sub_device)

    async def async_install(self, version: str | None, backup: bool, **kwargs: Any) -> None:
        """Start the job (or join the one under way) and return when it has ended.

        Installs the pending firmware: `version` is always None, as the entity offers no SPECIFIC_VERSION,
        and HA's install action refuses an entity with nothing pending (the engine would refuse it too).
        """
        wanted = self.snapshot.latest_version
        target = self.snapshot.target
        # Nobody watches an install that no user started (an automation): its failure becomes a repair issue.
        unattended = self._context is None or self._context.user_id is None
        if unattended:
            self.runtime.unattended_installs.add(self.sub_device)
        try:
            await self.runtime.engine.ota.install(self.sub_device)
        except asyncio.CancelledError as err:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this call itself is being cancelled (HA stopping, the caller gave up)
            # The job ended without a result: `cancel_update`, or a newer push replaced it.
            offered = self.snapshot.target
            if offered is not None and offered.version != wanted:
                raise HomeAssistantError(
                    translation_domain=DOMAIN,
                    translation_key="install_replaced",
                    translation_placeholders={
                        "device": self._name,
                        "version": wanted,
                        "offered": offered.version,
                    },
                ) from err
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="install_cancelled",
                translation_placeholders={"device": self._name, "version": wanted},
            ) from err
        except OtaError as err:
            # A call that joined a job gets the error rebuilt from the job's snapshot, which names the failure.
            failed = self.snapshot
            key = failures.failure_key(failed) if failed.state is JobState.FAILED else err.translation_key
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key=f"failure_{key}",
                translation_placeholders=failures.error_placeholders(self._name, wanted, err, target),
            ) from err
        finally:
            self.runtime.unattended_installs.discard(self.sub_device)
