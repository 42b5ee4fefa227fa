"""Waiting for the emulated cloud to have taken a job's outcome in.

A test that ends right after an install can race the cloud still answering the gateway's last report while
the fixture disconnects it; waiting for the cloud's record of the outcome closes that window (and checks it).
"""

from __future__ import annotations

from tests.emulator_fixtures import eventually

from .gateway_rig import Gateway
from .helpers import LIGHT_PRODUCT


async def cloud_task_ended(gateway: Gateway, name: str, task_state: str, version: str | None = None) -> None:
    """Wait until the cloud records the light's task as `task_state` ("done"/"fail") and, if given, its version."""

    async def ended() -> bool:
        status = await gateway.emulator.console.get_device(LIGHT_PRODUCT, name)
        if version is not None and status.version != version:
            return False
        return status.task is not None and status.task.state == task_state

    await eventually(ended)
