"""Per sub-device: its firmware as an update entity (install, progress, release notes)."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.components.update import UpdateDeviceClass, UpdateEntity, UpdateEntityFeature
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

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

    async def async_release_notes(self) -> str | None:
        """Version, size, MD5 and where it comes from (the host only: the signed query is a credential)."""
        target = self.snapshot.target
        if target is None:
            return None
        return (
            f"**{target.version}**\n\n"
            f"- Size: {target.size:,} bytes\n"
            f"- MD5: `{target.md5}`\n"
            f"- From: {target.host}\n"
        )

    async def async_install(self, version: str | None, backup: bool, **kwargs: Any) -> None:
        """Start the job (or join the one under way) and return when it has ended.

        Installs the pending firmware: `version` is always None, as the entity offers no SPECIFIC_VERSION,
        and HA's install action refuses an entity with nothing pending (the engine would refuse it too).
        """
        wanted = self.snapshot.latest_version
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
                        "device": self.sub_device.key,
                        "version": wanted,
                        "offered": offered.version,
                    },
                ) from err
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="install_cancelled",
                translation_placeholders={"device": self.sub_device.key, "version": wanted},
            ) from err
        except OtaError as err:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="install_failed",
                translation_placeholders={
                    "device": self.sub_device.key,
                    "version": wanted,
                    "code": str(int(err.code)),
                    "reason": str(err),
                },
            ) from err
