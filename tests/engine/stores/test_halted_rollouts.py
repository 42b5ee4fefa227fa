"""Halted rollouts saved and loaded (engine/stores/halted_rollouts.py): the round trip, and what cannot be read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from custom_components.tencent_iot_gateway.engine.errors import Failure, FailureReason
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.rollout_policy import DeviceFailure, RolloutHalted
from custom_components.tencent_iot_gateway.engine.stores.halted_rollouts import HaltedRollouts
from custom_components.tencent_iot_gateway.engine.stores.storage import JsonFileStore

A, B, C = (DeviceId("P", name) for name in ("a", "b", "c"))
REFUSED = Failure.of(FailureReason.DEVICE_CONNECTION_REFUSED, host="192.168.1.50", port=80)
HALT = RolloutHalted("2.0", (DeviceFailure(A, REFUSED, -5),), (B, C), 3, image_key=("0" * 32, 4096))
# Saved by version 1, which kept each failure as an English sentence: read back as the generic failure quoting it.
HALT_V1 = RolloutHalted(
    "2.0",
    (DeviceFailure(A, Failure.of(FailureReason.UPGRADE_FAILED, remote="bricked on boot"), -5),),
    (B, C),
    3,
    image_key=("0" * 32, 4096),
)


async def test_the_saved_halts_come_back_as_they_were(tmp_path: Path) -> None:
    halts = HaltedRollouts(JsonFileStore(tmp_path / "rollouts.json"))
    halts.save([HALT])
    await halts.async_close()
    assert await HaltedRollouts(JsonFileStore(tmp_path / "rollouts.json")).async_load() == [HALT]


async def test_the_newest_list_wins(tmp_path: Path) -> None:
    halts = HaltedRollouts(JsonFileStore(tmp_path / "rollouts.json"))
    halts.save([HALT])
    halts.save([])  # resumed at once
    await halts.async_close()
    assert await HaltedRollouts(JsonFileStore(tmp_path / "rollouts.json")).async_load() == []


async def test_an_unreadable_halt_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged entry costs that halt only, never the start; a document of another format is ignored; one of
    version 1 (failures as sentences) is still read."""
    path = tmp_path / "rollouts.json"
    good = {"version": "2.0", "md5": "0" * 32, "size": 4096, "failed": [["P/a", "bricked on boot"]]}
    good |= {"halted": ["P/b", "P/c"], "total": 3}
    path.write_text(json.dumps({"version": 1, "halted": [good, {"version": "3.0"}, "junk"]}))
    assert await HaltedRollouts(JsonFileStore(path)).async_load() == [HALT_V1]
    assert caplog.text.count("Ignoring a saved halted rollout that cannot be read") == 2
    path.write_text(json.dumps({"version": 99, "halted": [good]}))
    assert await HaltedRollouts(JsonFileStore(path)).async_load() == []


async def test_a_failing_disk_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "rollouts.json").mkdir()  # the file's place is taken: every write fails
    halts = HaltedRollouts(JsonFileStore(tmp_path / "rollouts.json"))
    halts.save([HALT])
    await halts.async_close()
    assert "Could not save the halted rollouts" in caplog.text
