"""What the OTA jobs are made of and wired to: their states and snapshots, their tunables, and the groups of
collaborators `OtaManager` is built from.

Kept apart from `jobs.py` so that each part of the job machinery (device states, shared downloads, outcome
reports, the job runner) can use them without importing the facade that composes those parts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from custom_components.tencent_iot_gateway.engine.errors import Failure
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import DEFAULT_UPLINK_RATE, Publish
from custom_components.tencent_iot_gateway.engine.ota.download import DownloadProgress
from custom_components.tencent_iot_gateway.engine.ota.firmware import DEFAULT_MAX_FIRMWARE_SIZE, FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.flashers.base import Flasher
from custom_components.tencent_iot_gateway.engine.ota.health_check import HealthCheck
from custom_components.tencent_iot_gateway.engine.ota.job_phases import JobHold, JobPhase
from custom_components.tencent_iot_gateway.engine.ota.preflight import Preflight
from custom_components.tencent_iot_gateway.engine.ota.progress_reports import (
    KEEPALIVE_INTERVAL_S,
    REPORT_INTERVAL_S,
)
from custom_components.tencent_iot_gateway.engine.ota.rollback_images import RollbackImages
from custom_components.tencent_iot_gateway.engine.ota.rollout_policy import RolloutPolicy
from custom_components.tencent_iot_gateway.engine.stores.job_store import SAVE_DELAY_S
from custom_components.tencent_iot_gateway.engine.stores.storage import StateStore

FRESH_URL_TIMEOUT_S = 30.0
# One scale for the UI: the download fills the first half of the bar, flashing the second.
DOWNLOAD_SHARE = 50


class JobState(StrEnum):
    """Where a sub-device's firmware update stands."""

    IDLE = "idle"
    AVAILABLE = "available"
    QUEUED = "queued"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    FLASHING = "flashing"
    DONE = "done"
    FAILED = "failed"

    @property
    def running(self) -> bool:
        """Whether a job is under way in this state."""
        return self in _RUNNING


_RUNNING = frozenset({JobState.QUEUED, JobState.DOWNLOADING, JobState.VERIFYING, JobState.FLASHING})


def resting_state(target: FirmwareSpec | None) -> JobState:
    """The state of a device no job runs for: something on offer, or nothing."""
    return JobState.AVAILABLE if target is not None else JobState.IDLE


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """Everything the layer above shows of one sub-device's update, at one moment."""

    device: DeviceId
    state: JobState
    installed_version: str | None  # None: unknown (adopted from the cloud; nobody said what it runs)
    target: FirmwareSpec | None = None
    percent: int | None = None
    downloaded: int = 0
    total: int = 0
    speed_bps: float = 0.0
    eta_s: float | None = None
    result_code: int | None = None
    message: str = ""
    """The last failure in plain English (the cloud's `result_msg`), empty when none."""
    failure: Failure | None = None
    """The last failure, for the UI to word (meaningful while `state` is failed)."""
    phase: JobPhase | None = None
    """The step a running job is at (None when no job runs)."""
    hold: JobHold | None = None
    """Which gate holds a job beyond its turn, and why (None when none does); the job shows as queued."""

    @property
    def hold_reason(self) -> str:
        """Why a job waits beyond its turn, in English (logs, the event's `reason`); empty when it does not."""
        return self.hold.reason if self.hold is not None else ""

    @property
    def latest_version(self) -> str | None:
        """The version on offer, or the installed one when nothing is pending."""
        return self.target.version if self.target is not None else self.installed_version


@dataclass(frozen=True, slots=True)
class OtaSettings:
    """Tunables of the scheduler."""

    max_downloads: int = 2
    max_flashes: int = 2
    max_firmware_size: int = DEFAULT_MAX_FIRMWARE_SIZE
    fresh_url_timeout_s: float = FRESH_URL_TIMEOUT_S
    save_delay_s: float = SAVE_DELAY_S  # ordinary changes are saved together at most this often
    # Progress cadence (engine/ota/progress_reports.py); the rate must be the session's uplink budget (None: no
    # budget), which `GatewayEngine` sets from its own `uplink_rate`.
    report_interval_s: float = REPORT_INTERVAL_S
    keepalive_interval_s: float = KEEPALIVE_INTERVAL_S
    uplink_rate: float | None = DEFAULT_UPLINK_RATE


class ImageFetcher(Protocol):
    """What the jobs need of a downloader: fetch and verify one image (`download.Downloader` is the one)."""

    async def fetch(self, spec: FirmwareSpec, on_progress: Callable[[DownloadProgress], None]) -> Path:
        """Return the path of the verified image."""

    async def resume_point(self, spec: FirmwareSpec) -> int:
        """Bytes of the image a `fetch` now would not download again (0: it starts from byte 0)."""


class ImageCache(Protocol):
    """Counts the jobs that need an image and deletes it once none does (engine/ota/firmware_cache.py)."""

    def acquire(self, item: FirmwareSpec) -> None:
        """One more job needs `item`'s image."""

    async def release(self, item: FirmwareSpec, *, discard_partial: bool = False) -> None:
        """One job less; the last one out deletes the image (and the partial file when asked)."""

    async def async_close(self) -> None:
        """The jobs stopped: delete what is kept for later jobs."""


def no_preflight(_device: DeviceId) -> Preflight | None:
    """The gate of a device without pre-flight conditions: none."""
    return None


def no_health_check(_device: DeviceId) -> HealthCheck | None:
    """The check of a device without a health check after its flash: none."""
    return None


@dataclass(frozen=True, slots=True)
class OtaOutputs:
    """Where the jobs tell what happens: the cloud (`publish`) and the layer above (`on_change`)."""

    publish: Publish
    on_change: Callable[[JobSnapshot], None]


@dataclass(frozen=True, slots=True)
class DeviceHooks:
    """How the jobs reach the sub-devices, and what decides when a device installs.

    `flasher_for`: a device's flasher (None: it cannot be installed). `auto_install`: whether a push starts the
    device's job at once. `preflight_for`: a device's pre-flight gate (engine/ota/preflight.py), asked before
    its job downloads and again before it flashes; a None gate never holds a job. `health_for`: a device's
    check after its flash (engine/ota/health_check.py). `rollout`: stages jobs installing the same image
    (engine/ota/rollout_policy.py); None: no staging.
    """

    flasher_for: Callable[[DeviceId], Flasher | None]
    auto_install: Callable[[DeviceId], bool]
    preflight_for: Callable[[DeviceId], Preflight | None] = no_preflight
    health_for: Callable[[DeviceId], HealthCheck | None] = no_health_check
    rollout: RolloutPolicy | None = None


@dataclass(frozen=True, slots=True)
class OtaStorage:
    """What the jobs fetch images with and keep them and their own state in.

    `store`: where what must survive a restart is saved (`JobStore`). `rollback_images`: the last good image
    of devices whose health check rolls back (None: none is kept).
    """

    store: StateStore
    downloader: ImageFetcher
    cache: ImageCache
    rollback_images: RollbackImages | None = None
