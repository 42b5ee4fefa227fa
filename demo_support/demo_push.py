"""A firmware push to the demo's three lights, and what to tell the user about it.

`scripts/demo-push` and the browser tests push through here: the image is uploaded to the emulator once, and
the task offers it to the lights that do not run it yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
import hashlib
import re
import time
from typing import Final

from tencent_iot_emulator.console_client import ConsoleClient

from .demo_setup import LIGHTS, SEED_VERSION, DemoError, Device

DEFAULT_IMAGE_SIZE: Final = 4 * 1024 * 1024
# Loopback downloads take milliseconds: the push slows this image's download down in the emulator so the
# progress bar has something to show.
DEFAULT_THROTTLE_BPS: Final = 512 * 1024


FIRST_VERSION: Final = "V100R0001"
_TRAILING_NUMBER = re.compile(r"(\d+)$")


def next_version(running: Iterable[str]) -> str:
    """The version worth pushing next: one past the newest a light runs (`V100R0001` after the seed's 0.1)."""
    numbered = sorted(
        (int(match[1]), version) for version in running if (match := _TRAILING_NUMBER.search(version))
    )
    pushed = [version for _, version in numbered if version.startswith("V")]
    if not pushed:
        return FIRST_VERSION
    newest = pushed[-1]
    digits = _TRAILING_NUMBER.search(newest)
    assert digits is not None
    return f"{newest[: digits.start()]}{int(digits[1]) + 1:0{len(digits[1])}d}"


@dataclass(frozen=True, slots=True)
class Push:
    """A firmware uploaded to the emulator and, unless every light runs it already, the task offering it."""

    product_id: str
    version: str
    task_id: str | None
    """None: no task was created (every light already runs `version`)."""
    running: Mapping[str, str]
    """The version each light runs (by device name) when the task was created."""
    md5: str
    size: int

    @property
    def offered_to(self) -> tuple[str, ...]:
        """The lights the task offers the version to (those not running it)."""
        return tuple(name for name, version in sorted(self.running.items()) if version != self.version)

    @property
    def from_versions(self) -> tuple[str, ...]:
        """The versions the task upgrades from."""
        return tuple(sorted({self.running[name] for name in self.offered_to}))


def firmware_image(product_id: str, version: str, size: int) -> bytes:
    """A made-up image: a readable header, then bytes derived from the product and version."""
    header = f"TENCENT-IOT-DEMO {product_id} {version}\n".encode()
    return header + hashlib.shake_256(header).digest(max(0, size - len(header)))


async def wait_versions_reported(console: ConsoleClient, since: float, timeout_s: float = 30.0) -> None:
    """Wait until the gateway reported every light's version after `since` (the emulator's clock, Unix time).

    After a (re)load the gateway reports versions in the background; a push that crosses them is pushed
    again by the cloud, which a test of one push does not want.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        # The console logs a sub-device's messages under the sub-device, whoever sent them.
        missing = [light.key for light in LIGHTS if not await _reported_since(console, light, since)]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise DemoError(f"the gateway did not report the versions of {', '.join(missing)}")
        await asyncio.sleep(0.2)


async def _reported_since(console: ConsoleClient, device: Device, since: float) -> bool:
    return any(
        record.direction == "in"
        and record.time >= since
        and record.topic == f"$ota/report/{device.key}"
        and isinstance(record.payload, Mapping)
        and record.payload.get("type") == "report_version"
        for record in await console.messages(device.key)
    )


async def push_firmware(
    console: ConsoleClient,
    version: str,
    *,
    size: int = DEFAULT_IMAGE_SIZE,
    throttle_bps: int | None = DEFAULT_THROTTLE_BPS,
) -> Push:
    """Upload an image of `version` for the lights (once) and create a task for all three.

    The task upgrades from whatever the lights run now (mode `all`, `from_versions` = their versions).
    """
    product_id = LIGHTS[0].product_id
    uploaded = {(f.product_id, f.version): f for f in await console.list_firmware()}
    firmware = uploaded.get((product_id, version))
    if firmware is None:
        firmware = await console.upload_firmware(
            product_id, version, firmware_image(product_id, version, size)
        )
    faults = (await console.get_faults()).to_json()
    per_firmware = dict(faults.get("firmware", {}))
    key = f"{product_id}/{version}"
    if throttle_bps is None:
        per_firmware.pop(key, None)
    else:
        per_firmware[key] = {"throttle_bps": throttle_bps}
    await console.set_faults(faults | {"firmware": per_firmware})
    running: dict[str, str] = {}
    for light in LIGHTS:
        status = await console.get_device(light.product_id, light.device_name)
        running[light.device_name] = status.version or SEED_VERSION
    pushed = Push(product_id, version, None, running, firmware.md5, firmware.size)
    if not pushed.offered_to:
        return pushed  # a task from no version would offer nothing: say so instead of creating one
    # Plain http URLs: Home Assistant downloads with its shared session, which trusts the public CAs (as
    # Tencent's real URLs need), not the emulator's own CA.
    task_id = await console.create_task(
        product_id, version, "all", from_versions=list(pushed.from_versions), url_scheme="http"
    )
    return replace(pushed, task_id=task_id)


def push_report(pushed: Push, console_url: str) -> str:
    """What `demo-push` did, light by light, and what to do next."""
    size = f"{pushed.size / (1024 * 1024):.1f} MiB"
    runs = ", ".join(f"{name} runs {version}" for name, version in sorted(pushed.running.items()))
    lines = [f"Uploaded {pushed.product_id} {pushed.version} ({size}, MD5 {pushed.md5}). Now {runs}."]
    if pushed.task_id is None:
        lines.append(
            f"Every light already runs {pushed.version}: no task was created, nothing is offered. "
            f"Try: scripts/demo-push {next_version(pushed.running.values())}"
        )
    else:
        lines += [
            f"Task {pushed.task_id} offers it to {', '.join(pushed.offered_to)}.",
            "In Home Assistant, open a light's firmware update and press Update.",
            f"Follow the task: scripts/run python -m tencent_iot_emulator status --console {console_url}",
        ]
    return "\n".join(lines) + "\n"
