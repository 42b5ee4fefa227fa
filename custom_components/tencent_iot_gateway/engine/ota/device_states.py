"""The OTA state of each tracked sub-device: its snapshot for the layer above, and its record on disk.

Every change of a snapshot is told to the layer above (`on_change`). What must survive a restart (installed
version, pending push, whether an install was under way, a flash begun, a terminal report not yet sent) is
saved through a `JobStore`; a device found with a flash begun was interrupted by the last shutdown and is
restored as failed, since whether the flash finished is unknown and it is never repeated on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
import contextlib
from dataclasses import dataclass, field, replace
import logging
from typing import Any, Final

from custom_components.tencent_iot_gateway.engine.errors import (
    Failure,
    FailureReason,
    InvalidFirmwareError,
    OtaError,
    OtaResultCode,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec, validate_version
from custom_components.tencent_iot_gateway.engine.ota.job_model import (
    JobSnapshot,
    JobState,
    OtaSettings,
    resting_state,
)
from custom_components.tencent_iot_gateway.engine.stores.job_store import (
    DeviceRecord,
    JobStore,
    Outcome,
    OutcomeState,
)
from custom_components.tencent_iot_gateway.engine.stores.storage import StateStore

_LOGGER = logging.getLogger(__name__)

INTERRUPTED: Final = Failure.of(FailureReason.FLASH_INTERRUPTED)


@dataclass(frozen=True, slots=True)
class JobEnd:
    """What a job's task returns: the snapshot it ended on, and the error it failed with (None if it did not).

    The error travels as a value so that whoever awaited the job gets the job's own error back.
    """

    snapshot: JobSnapshot
    error: OtaError | None = None


@dataclass
class DeviceEntry:
    """Mutable state of one device; `DeviceStates` owns the entries, the job machinery moves them on."""

    device: DeviceId
    snapshot: JobSnapshot
    job: asyncio.Task[JobEnd] | None = None
    install_requested: bool = False
    flashing: str | None = None  # the version being flashed, saved before the flasher starts
    outcome: Outcome | None = None  # a terminal report the broker has not acknowledged yet
    interrupted: bool = False  # `outcome` is a flash the last shutdown interrupted; the flasher may know more
    job_started: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self) -> DeviceRecord:
        """What is saved of this device."""
        target = self.snapshot.target
        return DeviceRecord(
            installed=self.snapshot.installed_version,
            pending=target.to_dict() if target is not None else None,
            install_requested=self.install_requested,
            flashing=self.flashing,
            outcome=self.outcome,
        )


class DeviceStates:
    """The tracked sub-devices of one gateway: their entries, their snapshots and their saved records."""

    def __init__(
        self, store: StateStore, on_change: Callable[[JobSnapshot], None], settings: OtaSettings
    ) -> None:
        """Save through `store` (batched every `settings.save_delay_s`), tell every change to `on_change`."""
        self._on_change = on_change
        self._max_firmware_size = settings.max_firmware_size
        self._store = JobStore(store, save_delay_s=settings.save_delay_s)
        self._entries: dict[DeviceId, DeviceEntry] = {}

    async def async_load(self) -> None:
        """Read what the last run saved."""
        await self._store.async_load()

    @property
    def writes(self) -> int:
        """How many times the saved state was written."""
        return self._store.writes

    @property
    def devices(self) -> list[DeviceId]:
        """The tracked sub-devices."""
        return list(self._entries)

    def entries(self) -> list[DeviceEntry]:
        """Every tracked device's entry (a copy: the caller may add or remove devices meanwhile)."""
        return list(self._entries.values())

    def known(self, devices: Iterable[DeviceId]) -> list[DeviceEntry]:
        """The entries of those of `devices` that are tracked."""
        return [self._entries[device] for device in devices if device in self._entries]

    def get(self, device: DeviceId) -> DeviceEntry | None:
        """The device's entry, None if it is not tracked."""
        return self._entries.get(device)

    def entry(self, device: DeviceId) -> DeviceEntry:
        """The device's entry; a device not tracked is refused as not belonging to this gateway."""
        entry = self._entries.get(device)
        if entry is None:
            raise InvalidFirmwareError(Failure.of(FailureReason.NOT_A_SUB_DEVICE))
        return entry

    def add(
        self, device: DeviceId, installed_version: str | None, *, given_wins: bool = False
    ) -> DeviceEntry:
        """Track a sub-device; a saved installed version and pending push from the last run win.

        `installed_version` None: unknown until the user or a flasher says (never reported to the cloud).
        `given_wins`: the caller knows better than the last run (the user set a new version since).
        """
        saved = self._store.get(device.key) or DeviceRecord(installed=None)
        given = validate_version(installed_version) if installed_version is not None else None
        installed = (given or saved.installed) if given_wins else (saved.installed or given)
        target: FirmwareSpec | None = None
        if saved.pending is not None:
            with contextlib.suppress(InvalidFirmwareError):
                target = FirmwareSpec.parse(saved.pending, max_size=self._max_firmware_size)
        if target is not None and target.version == installed:
            target = None
        entry = DeviceEntry(device, JobSnapshot(device, resting_state(target), installed, target))
        entry.install_requested = saved.install_requested and target is not None
        entry.outcome = saved.outcome
        if saved.flashing is not None:
            _restore_interrupted(entry, saved.flashing)
        self._entries[device] = entry
        self.persist(entry)
        return entry

    def pop(self, device: DeviceId) -> DeviceEntry | None:
        """Stop tracking a device; its record stays until `forget` (its job may still save its end)."""
        return self._entries.pop(device, None)

    def forget(self, device: DeviceId) -> None:
        """Delete the saved record of a device no longer tracked."""
        self._store.remove(device.key)

    def update(self, entry: DeviceEntry, **changes: Any) -> None:
        """Change the device's snapshot and tell the layer above."""
        snapshot = replace(entry.snapshot, **changes)
        if not snapshot.state.running and (snapshot.phase is not None or snapshot.hold is not None):
            # A job that ended (or was replaced) is at no step and held by no gate, whoever ended it.
            snapshot = replace(snapshot, phase=None, hold=None)
        entry.snapshot = snapshot
        self._on_change(snapshot)

    def set_installed(self, entry: DeviceEntry, version: str) -> None:
        """Record a version flashed by other means (not saved yet: see `persist`)."""
        target = entry.snapshot.target
        if target is not None and target.version == version:
            target = None
        outcome = entry.outcome
        if outcome is not None and outcome.state is OutcomeState.FAIL and outcome.version == version:
            # The interrupted (or failed) flash did put this version on: the cloud hears `done` instead.
            entry.outcome = replace(outcome, state=OutcomeState.DONE, code=0, message="")
        state = entry.snapshot.state if entry.snapshot.state.running else resting_state(target)
        self.update(entry, state=state, installed_version=version, target=target)

    def persist(self, entry: DeviceEntry) -> None:
        """Save the device's record with the next batch."""
        self._store.put(entry.device.key, entry.record())

    def persist_soon(self, entry: DeviceEntry) -> None:
        """Save the device's record with the next urgent write, without waiting for it."""
        self._store.put_urgent(entry.device.key, entry.record())

    async def persist_now(self, entry: DeviceEntry) -> None:
        """Save the device's record and return once it is on disk."""
        await self._store.async_put_now(entry.device.key, entry.record())

    async def async_flush(self) -> None:
        """Return once every change so far is on disk."""
        await self._store.async_flush()

    async def async_close(self) -> None:
        """Write what is pending; nothing is saved after this."""
        await self._store.async_close()


def _restore_interrupted(entry: DeviceEntry, flashing: str) -> None:
    """The last run ended while the flasher ran: whether it finished is unknown, so it is not repeated."""
    _LOGGER.warning(
        "The flash of %s to %s was interrupted by a shutdown; reporting it as failed", entry.device, flashing
    )
    target = entry.snapshot.target
    entry.install_requested = False
    entry.interrupted = True
    entry.outcome = Outcome(
        OutcomeState.FAIL,
        flashing,
        int(OtaResultCode.UPGRADE_FAILED),
        INTERRUPTED.english,
        target.echo if target is not None and target.version == flashing else (),
    )
    entry.snapshot = replace(
        entry.snapshot,
        state=JobState.FAILED,
        result_code=int(OtaResultCode.UPGRADE_FAILED),
        message=INTERRUPTED.english,
        failure=INTERRUPTED,
    )
