"""Per sub-device: its firmware as an update entity (install, progress, release notes); the gateway's own too."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from homeassistant.components.update import UpdateDeviceClass, UpdateEntity, UpdateEntityFeature
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity import Entity
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN, GATEWAY_UPDATE_KEY, UPDATE_KEY, InstallPolicy
from .engine import (
    DOWNLOAD_SHARE,
    DeviceId,
    JobSnapshot,
    JobState,
    JobSuspendedError,
    OtaError,
    TencentIotError,
)
from .entity import SubDeviceEntity, TencentIotEntity, async_setup_sub_device_entities
from .ota import failures, phase_texts
from .runtime import GatewayRuntime, TencentIotConfigEntry

# 0 = no limit from HA. "Update all" calls `async_install` on every entity at once; the engine's scheduler
# then queues the jobs (visibly "queued"), shares one download per image and bounds downloads and flashes by
# the options. A limit here would serialise the installs behind one another before the engine ever saw them.
PARALLEL_UPDATES = 0

_LOGGER = logging.getLogger(__name__)

# How long an install call waiting on a job follows it across a reload of the entry (the reload itself, then
# the resumed job's start once the gateway has reconnected).
RESUME_WAIT_S = 300.0
_MAX_FOLLOWS = 5


async def async_setup_entry(
    hass: HomeAssistant, entry: TencentIotConfigEntry, async_add_entities: AddConfigEntryEntitiesCallback
) -> None:
    """One firmware update entity per sub-device."""

    def build(runtime: GatewayRuntime, device: DeviceId) -> list[Entity]:
        return [SubDeviceFirmwareUpdate(runtime, device)]

    async_setup_sub_device_entities(entry, async_add_entities, build)
    if entry.runtime_data.gateway_updates:
        async_add_entities([GatewayFirmwareUpdate(entry.runtime_data)])


class SubDeviceFirmwareUpdate(SubDeviceEntity, UpdateEntity):
    """The firmware the cloud offers a sub-device, installed through its flasher."""

    _attr_device_class = UpdateDeviceClass.FIRMWARE

    def __init__(self, runtime: GatewayRuntime, device: DeviceId) -> None:
        """The update entity of one sub-device."""
        super().__init__(runtime, device, UPDATE_KEY)

    @property
    def supported_features(self) -> UpdateEntityFeature:
        """Install only with a flasher configured; release notes only while no job runs.

        HA's update dialog shows either the release notes (fetched once, when it opens) or, for an entity
        without them, the release summary (live, with every state write). While a job runs the summary says
        its phase, so the notes step aside for it; they are back once the job has ended.
        """
        features = UpdateEntityFeature.PROGRESS
        if not self.snapshot.state.running:
            features |= UpdateEntityFeature.RELEASE_NOTES
        if self.runtime.has_flasher(self.sub_device):
            features |= UpdateEntityFeature.INSTALL
        return features

    @property
    def installed_version(self) -> str | None:
        """The version the sub-device runs; None (unknown) until the user or a flasher says."""
        return self.snapshot.installed_version

    @property
    def latest_version(self) -> str | None:
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
    def update_percentage(self) -> float | None:
        """Download then flash on one scale; None while queued (an indeterminate bar)."""
        return progress_percentage(self.snapshot)

    @property
    def release_summary(self) -> str | None:
        """The running job's phase above what is on offer; else the offered version's last failure (until the
        next attempt), or its size."""
        return phase_texts.release_summary(self.hass, self._name, self.snapshot)

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
        A reload of the entry in the middle does not end the call: the job resumes in the reloaded entry and
        this call follows it there.
        """
        wanted = self.snapshot.latest_version or ""
        # Nobody watches an install that no user started (an automation): its failure becomes a repair issue.
        unattended = self._context is None or self._context.user_id is None
        try:
            await self.runtime.async_install(self.sub_device, unattended=unattended)
        except JobSuspendedError:
            await self._async_follow_into_reload(wanted)
        except asyncio.CancelledError as err:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this call itself is being cancelled (HA stopping, the caller gave up)
            raise self._cancelled_error(wanted) from err
        except TencentIotError as err:
            raise self._failed_error(wanted, err) from err

    async def _async_follow_into_reload(self, wanted: str) -> None:
        """The entry is reloading: wait for its next runtime, then for the resumed job there."""
        entry, runtime = self.runtime.entry, self.runtime
        _LOGGER.info("The update of %s continues after the reload of %s", self.sub_device, entry.title)
        for _attempt in range(_MAX_FOLLOWS):
            try:
                following = await self._async_next_runtime(runtime)
                if following is None:
                    break
                runtime = following
                snapshot = await runtime.async_follow(self.sub_device, RESUME_WAIT_S)
            except TimeoutError:
                break
            except JobSuspendedError:
                continue  # reloaded again while the job ran
            except asyncio.CancelledError as err:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                raise self._cancelled_error(wanted) from err
            except TencentIotError as err:
                raise self._failed_error(wanted, err) from err
            self._check_followed(snapshot, wanted)
            return
        raise HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="install_not_resumed",
            translation_placeholders={"device": self._name, "version": wanted},
        )

    @staticmethod
    async def _async_next_runtime(previous: GatewayRuntime) -> GatewayRuntime | None:
        """The entry's runtime after the reload under way, or None when it was only unloaded (or HA stops).

        HA holds the entry's setup lock from the unload to the end of the new setup of a reload, so taking it
        returns once the reload is over; a plain unload releases it with the entry not loaded.
        """
        entry = previous.entry
        async with asyncio.timeout(RESUME_WAIT_S), entry.setup_lock:
            pass
        if entry.state is ConfigEntryState.LOADED and entry.runtime_data is not previous:
            return entry.runtime_data
        return None

    def _check_followed(self, snapshot: JobSnapshot, wanted: str) -> None:
        if snapshot.installed_version == wanted:
            return
        if snapshot.state is JobState.FAILED:
            raise self._failed_error(wanted, None)
        raise self._cancelled_error(wanted)

    def _cancelled_error(self, wanted: str) -> HomeAssistantError:
        """The job ended without a result: `cancel_update`, or a newer push replaced it."""
        offered = self.snapshot.target
        if offered is not None and offered.version != wanted:
            return HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="install_replaced",
                translation_placeholders={
                    "device": self._name,
                    "version": wanted,
                    "offered": offered.version,
                },
            )
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="install_cancelled",
            translation_placeholders={"device": self._name, "version": wanted},
        )

    def _failed_error(self, wanted: str, error: TencentIotError | None) -> HomeAssistantError:
        """The failure in the user's language; a call that joined a job gets it from the job's snapshot."""
        failed = self.snapshot
        if failed.state is JobState.FAILED:
            key = failures.failure_key(failed)
            placeholders = failures.failure_placeholders(self._name, failed, wanted)
        else:
            ota_error = error if isinstance(error, OtaError) else OtaError(str(error or ""))
            key = ota_error.translation_key
            placeholders = failures.error_placeholders(self._name, wanted, ota_error, failed.target)
        return HomeAssistantError(
            translation_domain=DOMAIN, translation_key=f"failure_{key}", translation_placeholders=placeholders
        )


class GatewayFirmwareUpdate(SubDeviceFirmwareUpdate):
    """The firmware the cloud offers the gateway itself, installed by an automation (`flash_request`).

    The same job, progress and reports as a sub-device's, on the gateway's own device and OTA topics.
    """

    def __init__(self, runtime: GatewayRuntime) -> None:
        """The update entity of the gateway device."""
        TencentIotEntity.__init__(self, runtime, None, GATEWAY_UPDATE_KEY)
        # The gateway's job is tracked by the runtime like a sub-device's, under the gateway's own id.
        self.sub_device = runtime.gateway

    @property
    def available(self) -> bool:
        """The gateway's own topics work while it is connected (it needs no `online`)."""
        return self.runtime.connected

    @property
    def title(self) -> str:
        """The gateway's product."""
        return self.runtime.gateway.product_id

    @property
    def auto_update(self) -> bool:
        """Never: the gateway's firmware installs when someone asks for it."""
        return False


def progress_percentage(snapshot: JobSnapshot) -> float | None:
    """The bar's value: while downloading, from the bytes themselves (to a hundredth), so that it moves every
    time the downloader reports, even when a slow link takes a minute per whole percent."""
    if not snapshot.state.running or snapshot.state is JobState.QUEUED:
        return None
    if snapshot.state is JobState.DOWNLOADING and snapshot.total > 0:
        return round(DOWNLOAD_SHARE * min(snapshot.downloaded, snapshot.total) / snapshot.total, 2)
    return snapshot.percent
