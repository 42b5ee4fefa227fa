"""What a running job is doing, or waiting for, finer than its state: what the update dialog tells the user.

A job's `JobState` is what the cloud and the automations follow (queued, downloading, verifying, flashing);
its `JobPhase` says more within one state (a downloaded image waiting for a flash slot is still `verifying`, a
flashed device being checked is still `flashing`), and a `JobHold` says which gate holds it and why. Both are
values, not sentences: the layer above words them in the user's language. Only a pre-flight gate's reason is
a text, because the layer above wrote it itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class JobPhase(StrEnum):
    """The step a running job is at."""

    QUEUED = "queued"
    """Waiting for its turn: room in its cloud task's report budget, or a free download slot."""
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    FLASH_SLOT = "flash_slot"
    """Downloaded and verified, waiting for a free flash slot (`max_flashes` devices flash at once)."""
    FLASHING = "flashing"
    HEALTH_CHECK = "health_check"
    """Flashed, waiting for the device to prove healthy."""
    ROLLING_BACK = "rolling_back"
    """Unhealthy after its flash: its last good image is being flashed back."""
    ROLLED_BACK = "rolled_back"
    """The last good image is back on (the installed version says which); the job ends failed next."""


class HoldKind(StrEnum):
    """Which gate holds a job."""

    PREFLIGHT = "preflight"
    """The device's pre-flight gate (a condition, a maintenance window): `reason` is the gate's own text."""
    CANARY = "canary"
    """The canary group of its rollout goes first: `done` of `total` canaries have ended."""
    CANARY_SOAK = "canary_soak"
    """The canary group has ended and soaks: at most `seconds` more."""
    ROLLOUT_BATCH = "rollout_batch"
    """The batch before this device's has not ended yet."""


@dataclass(frozen=True, slots=True)
class JobHold:
    """Why a job waits beyond its turn. `reason` is the one English line for logs and the cloud's eyes (the
    pre-flight gate's text as given); the numbers let the layer above word it."""

    kind: HoldKind
    reason: str
    done: int = 0
    total: int = 0
    seconds: int = 0

    @classmethod
    def preflight(cls, reason: str) -> JobHold:
        """The pre-flight gate holds the job, for the reason it gave."""
        return cls(HoldKind.PREFLIGHT, reason)

    @classmethod
    def canary(cls, done: int, total: int) -> JobHold:
        """Waiting for the canary group."""
        return cls(HoldKind.CANARY, f"waiting for the canary group ({done} of {total} done)", done, total)

    @classmethod
    def canary_soak(cls, seconds: int) -> JobHold:
        """Waiting for the canary group's soak time to pass."""
        return cls(
            HoldKind.CANARY_SOAK, f"waiting for the canary group to soak ({seconds} s left)", seconds=seconds
        )

    @classmethod
    def rollout_batch(cls) -> JobHold:
        """Waiting for the batch before this device's."""
        return cls(HoldKind.ROLLOUT_BATCH, "waiting for the batch before it")
