"""Virtual sub-devices that take a firmware image over HTTP and "reboot" into it, for demos and HTTP flashers.

Routes (JSON answers; errors are `{"error": message}`):
- `PUT /devices/{pid}/{dn}` `{"version": "1.0"}`: create the device (or reset it) running that version.
- `GET /devices/{pid}/{dn}` -> `{product_id, device_name, version, state, pending_version, fault, last_error}`.
- `PUT /devices/{pid}/{dn}/firmware`, body = the image, headers `X-Firmware-MD5` and `X-Firmware-Version`:
  the body is hashed as it streams (never stored); a wrong MD5 -> 422 and state `rejected`; otherwise 202 with
  state `rebooting`, and `reboot_delay_s` later the device runs the new version (state `running`).
  A flash while one is in progress -> 409; unknown device -> 404; bad headers -> 400.
- `PUT /devices/{pid}/{dn}/fault` `{"fault": "none"|"reject"|"hang"|"no_reboot", "reboot_delay_s"?: n}`:
  `reject` reads the image and answers 422 (state `rejected`); `hang` reads the image and never answers
  (state stays `receiving`; released with a 503 when the emulator shuts down); `no_reboot` answers 202 and then
  stays `rebooting` forever on the old version.

When a bearer token is configured, every device route requires `Authorization: Bearer <token>` (401 otherwise).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from enum import StrEnum
import hashlib
import hmac
import json
import logging
import math
import re
from typing import Any

from aiohttp import web

from .firmware import CHUNK_SIZE, FirmwareError, run_blocking, validate_product_id, validate_version

_LOGGER = logging.getLogger(__name__)

_DEVICE_NAME_RE = re.compile(r"[A-Za-z0-9_\-.:@]{1,48}")
_MD5_RE = re.compile(r"[0-9a-fA-F]{32}")


class DeviceState(StrEnum):
    """What a virtual device is doing."""

    RUNNING = "running"
    RECEIVING = "receiving"
    REBOOTING = "rebooting"
    REJECTED = "rejected"


class DeviceFault(StrEnum):
    """How a virtual device misbehaves when flashed."""

    NONE = "none"
    REJECT = "reject"
    HANG = "hang"
    NO_REBOOT = "no_reboot"


@dataclass(frozen=True, slots=True)
class VirtualDevice:
    """A snapshot of one virtual device."""

    product_id: str
    device_name: str
    version: str
    state: DeviceState = DeviceState.RUNNING
    pending_version: str | None = None
    fault: DeviceFault = DeviceFault.NONE
    reboot_delay_s: float | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The device as `GET /devices/{pid}/{dn}` shows it."""
        return {
            "product_id": self.product_id,
            "device_name": self.device_name,
            "version": self.version,
            "state": self.state.value,
            "pending_version": self.pending_version,
            "fault": self.fault.value,
            "last_error": self.last_error,
        }


class VirtualDevices:
    """Virtual sub-devices keyed by product id and device name (in memory: they forget on restart)."""

    def __init__(self, *, reboot_delay_s: float = 1.0, token: str | None = None) -> None:
        """Devices reboot `reboot_delay_s` s after accepting an image; `token` guards the routes if set."""
        self.reboot_delay_s = reboot_delay_s
        self._token = token
        self._devices: dict[tuple[str, str], VirtualDevice] = {}
        self._reboots: set[asyncio.Task[None]] = set()
        self._released = asyncio.Event()

    def __repr__(self) -> str:
        """Never show the token."""
        return f"VirtualDevices(devices={len(self._devices)}, reboot_delay_s={self.reboot_delay_s})"

    # --- Python API -------------------------------------------------------------------------------------

    def register_routes(self, app: web.Application) -> None:
        """Add the device routes to `app`; its shutdown releases hung flashes and cancels pending reboots."""
        app.router.add_put("/devices/{pid}/{dn}", self._put_device)
        app.router.add_get("/devices/{pid}/{dn}", self._get_device)
        app.router.add_put("/devices/{pid}/{dn}/firmware", self._flash)
        app.router.add_put("/devices/{pid}/{dn}/fault", self._put_fault)
        app.on_shutdown.append(self._on_shutdown)

    def ensure(self, product_id: str, device_name: str, version: str) -> None:
        """Create a virtual device running `version` if it does not exist yet (an existing one is kept)."""
        key = _key(product_id, device_name)
        validate_version(version)
        self._devices.setdefault(key, VirtualDevice(key[0], key[1], version))

    def reset(self, product_id: str, device_name: str, version: str) -> VirtualDevice:
        """Create or reset the device: running `version`, no fault, nothing pending."""
        key = _key(product_id, device_name)
        device = VirtualDevice(key[0], key[1], validate_version(version))
        self._devices[key] = device
        return device

    def get(self, product_id: str, device_name: str) -> VirtualDevice | None:
        """The device's current snapshot, if it exists."""
        return self._devices.get((product_id, device_name))

    def all(self) -> list[VirtualDevice]:
        """Every virtual device, by product then name."""
        return [self._devices[key] for key in sorted(self._devices)]

    def set_fault(
        self, product_id: str, device_name: str, fault: DeviceFault, *, reboot_delay_s: float | None = None
    ) -> VirtualDevice:
        """Make an existing device misbehave on its next flashes (`KeyError` if it does not exist)."""
        key = (product_id, device_name)
        device = replace(self._devices[key], fault=fault, reboot_delay_s=reboot_delay_s)
        self._devices[key] = device
        return device

    async def close(self) -> None:
        """Release hung flashes and cancel pending reboots."""
        self._released.set()
        for task in list(self._reboots):
            task.cancel()
        if self._reboots:
            await asyncio.wait(self._reboots)

    # --- routes -----------------------------------------------------------------------------------------

    def _device_from(self, request: web.Request) -> VirtualDevice:
        """The device the URL names, after the token check; raises the HTTP error otherwise."""
        self._check_token(request)
        device = self._devices.get((request.match_info["pid"], request.match_info["dn"]))
        if device is None:
            raise _http_error(web.HTTPNotFound, "no such virtual device")
        return device

    def _check_token(self, request: web.Request) -> None:
        if self._token is None:
            return
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
            raise _http_error(web.HTTPUnauthorized, "a valid bearer token is required")

    async def _put_device(self, request: web.Request) -> web.Response:
        self._check_token(request)
        body = await _json_object(request)
        try:
            version = validate_version(body.get("version"))
            device = self.reset(request.match_info["pid"], request.match_info["dn"], version)
        except FirmwareError as err:
            raise _http_error(web.HTTPBadRequest, str(err)) from None
        return web.json_response(device.to_json())

    async def _get_device(self, request: web.Request) -> web.Response:
        return web.json_response(self._device_from(request).to_json())

    async def _put_fault(self, request: web.Request) -> web.Response:
        device = self._device_from(request)
        body = await _json_object(request)
        unknown = set(body) - {"fault", "reboot_delay_s"}
        if unknown:
            raise _http_error(web.HTTPBadRequest, f"unknown field(s): {', '.join(sorted(unknown))}")
        try:
            fault = DeviceFault(body.get("fault", "none"))
        except ValueError:
            choices = ", ".join(f.value for f in DeviceFault)
            raise _http_error(web.HTTPBadRequest, f"fault must be one of: {choices}") from None
        delay = body.get("reboot_delay_s")
        if delay is not None and (
            not isinstance(delay, int | float)
            or isinstance(delay, bool)
            or not math.isfinite(delay)
            or delay < 0
        ):
            raise _http_error(web.HTTPBadRequest, "reboot_delay_s must be a number of seconds >= 0")
        updated = self.set_fault(
            device.product_id,
            device.device_name,
            fault,
            reboot_delay_s=None if delay is None else float(delay),
        )
        return web.json_response(updated.to_json())

    async def _flash(self, request: web.Request) -> web.Response:
        device = self._device_from(request)
        expected_md5 = request.headers.get("X-Firmware-MD5", "")
        version = request.headers.get("X-Firmware-Version", "")
        if not _MD5_RE.fullmatch(expected_md5):
            raise _http_error(web.HTTPBadRequest, "X-Firmware-MD5 must be 32 hexadecimal digits")
        try:
            validate_version(version)
        except FirmwareError as err:
            raise _http_error(web.HTTPBadRequest, f"X-Firmware-Version: {err}") from None
        if device.state in {DeviceState.RECEIVING, DeviceState.REBOOTING}:
            raise _http_error(web.HTTPConflict, f"the device is {device.state.value}; try again later")
        key = (device.product_id, device.device_name)
        self._devices[key] = replace(device, state=DeviceState.RECEIVING, pending_version=version)
        try:
            md5, size = await _hash_body(request)
        except BaseException:
            self._devices[key] = replace(self._devices[key], state=DeviceState.RUNNING, pending_version=None)
            raise
        current = self._devices[key]
        if current.fault is DeviceFault.HANG:
            _LOGGER.debug("Virtual device %s/%s hangs after receiving %d bytes", *key, size)
            await self._released.wait()
            raise _http_error(web.HTTPServiceUnavailable, "the emulator is shutting down")
        problem = None
        if current.fault is DeviceFault.REJECT:
            problem = "the device refused the image (reject fault)"
        elif md5 != expected_md5.lower():
            problem = f"md5 mismatch: the image hashes to {md5}, X-Firmware-MD5 says {expected_md5.lower()}"
        if problem is not None:
            self._devices[key] = replace(
                current, state=DeviceState.REJECTED, pending_version=None, last_error=problem
            )
            raise _http_error(web.HTTPUnprocessableEntity, problem)
        rebooting = replace(current, state=DeviceState.REBOOTING, last_error=None)
        self._devices[key] = rebooting
        if current.fault is not DeviceFault.NO_REBOOT:
            delay = current.reboot_delay_s if current.reboot_delay_s is not None else self.reboot_delay_s
            task = asyncio.create_task(self._reboot(key, version, delay))
            self._reboots.add(task)
            task.add_done_callback(self._reboots.discard)
        return web.json_response(rebooting.to_json(), status=202)

    async def _reboot(self, key: tuple[str, str], version: str, delay: float) -> None:
        await asyncio.sleep(delay)
        device = self._devices.get(key)
        # The device may have been reset meanwhile: only finish the flash it was doing.
        if device is not None and device.state is DeviceState.REBOOTING and device.pending_version == version:
            self._devices[key] = replace(
                device, version=version, state=DeviceState.RUNNING, pending_version=None
            )

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.close()


def _key(product_id: str, device_name: str) -> tuple[str, str]:
    validate_product_id(product_id)
    if not _DEVICE_NAME_RE.fullmatch(device_name):
        raise FirmwareError("device_name must be 1 to 48 letters, digits or _ - . : @")
    return product_id, device_name


async def _hash_body(request: web.Request) -> tuple[str, int]:
    """MD5 (lowercase hex) and size of the request body, read in chunks and hashed off the event loop."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    while chunk := await request.content.read(CHUNK_SIZE):
        size += len(chunk)
        await run_blocking(digest.update, chunk)
    return digest.hexdigest(), size


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _http_error(web.HTTPBadRequest, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise _http_error(web.HTTPBadRequest, "the body must be a JSON object")
    return body


def _http_error(kind: type[web.HTTPError], message: str) -> web.HTTPError:
    return kind(text=json.dumps({"error": message}), content_type="application/json")
