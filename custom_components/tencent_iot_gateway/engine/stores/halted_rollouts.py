"""The halted rollouts of one gateway, kept across a restart or a reload of the entry.

A halt is a decision waiting for the user (look into the failures, then resume): forgetting it on a reload,
for instance after changing an option, would leave its repair issue with nothing behind it. `RolloutPolicy`
hands every change of its halted rollouts to `save` (the newest list wins), and `restore`s them at start.
"""

from __future__ import annotations

import logging
from typing import Any

from custom_components.tencent_iot_gateway.engine.background import BackgroundTasks
from custom_components.tencent_iot_gateway.engine.errors import Failure, FailureReason, OtaResultCode
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.rollout_policy import DeviceFailure, RolloutHalted
from custom_components.tencent_iot_gateway.engine.stores.storage import StateStore

_LOGGER = logging.getLogger(__name__)

_VERSION = 2  # 2: each failure as its reason, values and code (1 kept an English sentence)


class HaltedRollouts:
    """Load and save the halted rollouts in one `StateStore` document."""

    def __init__(self, store: StateStore) -> None:
        """Keep them in `store`."""
        self._store = store
        # Writes start in the order of the saves, and a store keeps the newest document it was given.
        self._writes = BackgroundTasks("Could not save the halted rollouts", level=logging.ERROR)

    async def async_load(self) -> list[RolloutHalted]:
        """The halts saved last; an entry that cannot be read is dropped with a warning, not a failed start."""
        document = await self._store.async_load() or {}
        halts: list[RolloutHalted] = []
        version = document.get("version")
        for raw in document.get("halted", []) if version in (1, _VERSION) else []:
            try:
                halts.append(_from_dict(raw))
            except (KeyError, TypeError, ValueError) as err:
                _LOGGER.warning("Ignoring a saved halted rollout that cannot be read (%s): %r", err, raw)
        return halts

    def save(self, halts: list[RolloutHalted]) -> None:
        """Save these halts (all of them: the list replaces the saved one), without waiting for the disk."""
        document = {"version": _VERSION, "halted": [_to_dict(halt) for halt in halts]}
        self._writes.spawn(self._write(document))

    async def _write(self, document: dict[str, Any]) -> None:
        try:
            await self._store.async_save(document)
        except OSError as err:
            # The halt itself stands (its jobs were reported, its repair raised); only a restart forgets it.
            _LOGGER.error("Could not save the halted rollouts: %s", err)

    async def async_close(self) -> None:
        """Let the writes under way end."""
        await self._writes.wait()
        await self._writes.close()


def _to_dict(halt: RolloutHalted) -> dict[str, Any]:
    md5, size = halt.image_key
    return {
        "version": halt.version,
        "md5": md5,
        "size": size,
        "failed": [
            {
                "device": f.device.key,
                "reason": f.failure.reason.value,
                "values": f.failure.placeholders,
                "code": f.code,
            }
            for f in halt.failed
        ],
        "halted": [device.key for device in halt.halted],
        "total": halt.total,
    }


def _from_dict(raw: Any) -> RolloutHalted:
    if not isinstance(raw, dict):
        raise TypeError("not an object")
    failed = tuple(_failed_from(item) for item in raw["failed"])
    halted = tuple(DeviceId.parse(str(key)) for key in raw["halted"])
    return RolloutHalted(
        str(raw["version"]), failed, halted, int(raw["total"]), image_key=(str(raw["md5"]), int(raw["size"]))
    )


def _failed_from(raw: Any) -> DeviceFailure:
    if isinstance(raw, list):  # version 1: [device, English reason]: kept as the generic failure quoting it
        key, reason = raw
        failure = Failure.of(FailureReason.UPGRADE_FAILED, remote=str(reason))
        return DeviceFailure(DeviceId.parse(str(key)), failure, int(OtaResultCode.UPGRADE_FAILED))
    values = raw.get("values") or {}
    failure = Failure.of(FailureReason(str(raw["reason"])), **{str(k): str(v) for k, v in values.items()})
    return DeviceFailure(DeviceId.parse(str(raw["device"])), failure, int(raw["code"]))
