"""Staged rollouts: when several sub-devices install the same image, a canary group goes first.

The first devices of a rollout (a count or a percentage: the canary group) flash at once; the others wait at
their flash gate until every canary is done, then for a soak time, then go in batches of at most `batch_size`
(each batch ends before the next starts). Once `max_failures` devices of the rollout have failed, the rollout
halts: every device still waiting ends with `RolloutHaltedError` (reported to the cloud like any failure),
the firmware stays offered, and `RolloutHalted` tells the layer above, which raises a repair issue. `resume`
lets the halted devices go on, in batches, when the user decides.

A rollout is the set of jobs installing one image (MD5 and size) at the same time; it ends when all of them
have ended (a halted one lives until it is resumed). A rollout under way lives in memory (a restart resumes its
interrupted installs as a new rollout); a halted one is kept across restarts and reloads through
`on_halts_changed` and `restore` (engine/stores/halted_rollouts.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
import math
import time

from custom_components.tencent_iot_gateway.engine.errors import Failure, FailureReason, RolloutHaltedError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.job_phases import JobHold

DEFAULT_CANARY_COUNT = 1
DEFAULT_SOAK_S = 300.0
DEFAULT_MAX_FAILURES = 1


@dataclass(frozen=True, slots=True)
class RolloutSettings:
    """How a rollout is staged. `canary_percent` > 0 sizes the canary group as a share of the devices
    known when the first one is ready to flash (at least one), instead of `canary_count`."""

    canary_count: int = DEFAULT_CANARY_COUNT
    canary_percent: int = 0
    soak_s: float = DEFAULT_SOAK_S
    max_failures: int = DEFAULT_MAX_FAILURES
    batch_size: int = 2

    def __post_init__(self) -> None:
        """Refuse settings that could never release a device."""
        if self.canary_count < 1 or not 0 <= self.canary_percent <= 100:
            raise ValueError("need canary_count >= 1 and 0 <= canary_percent <= 100")
        if self.soak_s < 0 or self.max_failures < 1 or self.batch_size < 1:
            raise ValueError("need soak_s >= 0, max_failures >= 1 and batch_size >= 1")

    def canary_size(self, devices: int) -> int:
        """How many of `devices` form the canary group."""
        if self.canary_percent:
            return max(1, math.ceil(devices * self.canary_percent / 100))
        return self.canary_count


@dataclass(frozen=True, slots=True)
class DeviceFailure:
    """Why one device of a rollout failed: the failure as values (the UI words it) and Tencent's code."""

    device: DeviceId
    failure: Failure
    code: int


@dataclass(frozen=True, slots=True)
class RolloutHalted:
    """A rollout stopped: who failed (and why), who was held back, out of how many."""

    version: str
    failed: tuple[DeviceFailure, ...]
    halted: tuple[DeviceId, ...]
    total: int
    image_key: tuple[str, int] = ("", 0)  # the image's (MD5, size): which jobs a resumed rollout takes

    @property
    def failure(self) -> Failure:
        """The failure of the held-back devices (their `result_msg` to the cloud, their text in the UI)."""
        return Failure.of(FailureReason.ROLLOUT_HALTED, failed=len(self.failed), total=self.total)


@dataclass
class _Rollout:
    version: str
    members: list[DeviceId] = field(default_factory=list)
    ended: set[DeviceId] = field(default_factory=set)  # done, failed or held back by the halt
    released: set[DeviceId] = field(default_factory=set)
    canary: set[DeviceId] | None = None
    soak_until: float | None = None
    batch: set[DeviceId] = field(default_factory=set)
    failures: list[DeviceFailure] = field(default_factory=list)
    halted: RolloutHalted | None = None
    resumed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.wake.set()
        self.wake = asyncio.Event()


class RolloutPolicy:
    """The rollouts of one gateway's jobs; the OtaManager calls it at job start, flash gate and end."""

    def __init__(
        self,
        settings: RolloutSettings,
        *,
        on_halted: Callable[[RolloutHalted], None],
        applies: Callable[[DeviceId], bool] = lambda _device: True,
        clock: Callable[[], float] = time.monotonic,
        on_halts_changed: Callable[[list[RolloutHalted]], None] | None = None,
    ) -> None:
        """`applies`: whether a device's jobs take part (the gateway's own firmware does not).

        `on_halts_changed`: hears the whole list of halted rollouts each time it changes (to save it).
        """
        self._settings = settings
        self._on_halted = on_halted
        self._on_halts_changed = on_halts_changed
        self._applies = applies
        self._clock = clock
        self._rollouts: dict[tuple[str, int], _Rollout] = {}
        self._member_of: dict[DeviceId, tuple[str, int]] = {}

    @property
    def halted(self) -> list[RolloutHalted]:
        """The rollouts halted now (until resumed)."""
        return [r.halted for r in self._rollouts.values() if r.halted is not None]

    def restore(self, halts: list[RolloutHalted]) -> None:
        """Take back halted rollouts saved before a restart; each is told to `on_halted` again."""
        for halt in halts:
            if halt.image_key in self._rollouts:
                continue
            rollout = _Rollout(halt.version, failures=list(halt.failed), halted=halt)
            rollout.ended.update(failed.device for failed in halt.failed)
            for device in [*(failed.device for failed in halt.failed), *halt.halted]:
                if device in self._member_of:
                    continue  # already in a rollout of this run
                rollout.members.append(device)
                self._member_of[device] = halt.image_key
            rollout.ended.update(halt.halted)
            self._rollouts[halt.image_key] = rollout
            self._on_halted(halt)

    def join(self, device: DeviceId, target: FirmwareSpec) -> None:
        """A job for `target` started on `device`."""
        if not self._applies(device):
            return
        if self._member_of.get(device) not in (None, target.image_key):
            self.leave(device)  # a push of another image replaced its job
        rollout = self._rollouts.get(target.image_key)
        if rollout is None:
            rollout = self._rollouts[target.image_key] = _Rollout(target.version)
        self._member_of[device] = target.image_key
        if device not in rollout.members:
            rollout.members.append(device)
        rollout.ended.discard(device)
        rollout.released.discard(device)

    def leave(self, device: DeviceId) -> None:
        """The device's job was cancelled or replaced: neither a success nor a failure of the rollout."""
        key = self._member_of.pop(device, None)
        rollout = self._rollouts.get(key) if key is not None else None
        if key is None or rollout is None:
            return
        if device in rollout.members:
            rollout.members.remove(device)
        rollout.ended.discard(device)
        rollout.released.discard(device)
        rollout.batch.discard(device)
        if rollout.canary is not None:
            rollout.canary.discard(device)
        rollout.notify()
        self._forget_if_over(key, rollout)

    def ended(self, device: DeviceId, failure: DeviceFailure | None, *, halted: bool = False) -> None:
        """The device's job ended: done (`failure` None), failed, or held back by a halt (`halted`)."""
        key = self._member_of.get(device)
        rollout = self._rollouts.get(key) if key is not None else None
        if key is None or rollout is None:
            return
        rollout.ended.add(device)
        if failure is not None and not halted:
            rollout.failures.append(failure)
            if len(rollout.failures) >= self._settings.max_failures and rollout.halted is None:
                self._halt(key, rollout)
        rollout.notify()
        self._forget_if_over(key, rollout)

    async def wait_turn(self, device: DeviceId, on_hold: Callable[[JobHold], None]) -> None:
        """Return when the device may flash; `on_hold` hears why it waits; raises `RolloutHaltedError`."""
        key = self._member_of.get(device)
        rollout = self._rollouts.get(key) if key is not None else None
        if rollout is None:
            return
        last: JobHold | None = None
        while True:
            if rollout.halted is not None:
                raise RolloutHaltedError(rollout.halted.failure)
            hold, wait_s = self._verdict(rollout, device)
            if hold is None:
                rollout.released.add(device)
                return
            if hold != last:
                on_hold(hold)
                last = hold
            wake = rollout.wake
            try:
                async with asyncio.timeout(wait_s):
                    await wake.wait()
            except TimeoutError:
                pass

    def resume(self) -> list[DeviceId]:
        """Let every halted rollout go on (in batches, without a new canary); returns the devices held back
        by the halt, whose jobs the caller starts again."""
        restart: list[DeviceId] = []
        resumed = False
        for key, rollout in list(self._rollouts.items()):
            if rollout.halted is None:
                continue
            resumed = True
            held_back = [d for d in rollout.halted.halted if d in rollout.members]
            restart.extend(held_back)
            for device in held_back:
                rollout.ended.discard(device)  # they run again in this rollout
            rollout.halted = None
            rollout.failures.clear()
            rollout.resumed = True
            rollout.batch.clear()
            rollout.notify()
            self._forget_if_over(key, rollout)
        if resumed:
            self._halts_changed()
        return restart

    def _verdict(self, rollout: _Rollout, device: DeviceId) -> tuple[JobHold | None, float | None]:
        """(None, _): go; (why it waits, at most how long before asking again)."""
        if not rollout.resumed:
            if rollout.canary is None:
                size = self._settings.canary_size(len(rollout.members))
                rollout.canary = set(rollout.members[:size])
            if device in rollout.canary:
                return None, None
            pending = [d for d in rollout.canary if d not in rollout.ended]
            if pending:
                done = len(rollout.canary) - len(pending)
                return JobHold.canary(done, len(rollout.canary)), None
            now = self._clock()
            if rollout.soak_until is None:
                rollout.soak_until = now + self._settings.soak_s
            if now < rollout.soak_until:
                left = rollout.soak_until - now
                return JobHold.canary_soak(math.ceil(left)), left
        return self._batch_verdict(rollout, device), None

    def _batch_verdict(self, rollout: _Rollout, device: DeviceId) -> JobHold | None:
        if rollout.batch and any(d not in rollout.ended for d in rollout.batch):
            return None if device in rollout.batch else JobHold.rollout_batch()
        waiting = [d for d in rollout.members if d not in rollout.released and d not in rollout.ended]
        rollout.batch = set(waiting[: self._settings.batch_size])
        return None if device in rollout.batch else JobHold.rollout_batch()

    def _halt(self, key: tuple[str, int], rollout: _Rollout) -> None:
        held_back = tuple(d for d in rollout.members if d not in rollout.released and d not in rollout.ended)
        rollout.halted = RolloutHalted(
            rollout.version, tuple(rollout.failures), held_back, len(rollout.members), image_key=key
        )
        self._on_halted(rollout.halted)
        self._halts_changed()

    def _halts_changed(self) -> None:
        if self._on_halts_changed is not None:
            self._on_halts_changed(self.halted)

    def _forget_if_over(self, key: tuple[str, int], rollout: _Rollout) -> None:
        if rollout.halted is None and all(d in rollout.ended for d in rollout.members):
            del self._rollouts[key]
            for device in rollout.members:
                if self._member_of.get(device) == key:
                    del self._member_of[device]
