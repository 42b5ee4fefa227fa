"""Diagnostics of a gateway entry: its configuration with the secrets redacted, and where the engine stands.

Redacted: device and product secrets, the CA certificate and flasher tokens (wherever they sit, subentries
included), and a command flasher's arguments (they may carry a password). Firmware and flasher URLs are
shown without their query and userinfo: a pre-signed URL's query and `user:password@` are credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant

from .const import CONF_CA_CERT, CONF_DEVICE_SECRET, CONF_FLASHER, CONF_PRODUCT_SECRET
from .engine import DeviceId, FirmwareSpec, JobSnapshot, url_without_query
from .runtime import GatewayRuntime, TencentIotConfigEntry

# `token`: the http flasher's bearer token, stored in the sub-device's flasher settings.
# `args`: the command flasher's arguments.
TO_REDACT: Final = frozenset({CONF_DEVICE_SECRET, CONF_PRODUCT_SECRET, CONF_CA_CERT, "token", "args"})
# The http flasher's URL templates.
_FLASHER_URLS: Final = ("url", "version_url")


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: TencentIotConfigEntry
) -> dict[str, Any]:
    """The entry (redacted) and, when it is loaded, the engine's state."""
    diagnostics: dict[str, Any] = {
        "entry": {
            "title": entry.title,
            "state": entry.state.value,
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": async_redact_data(dict(entry.options), TO_REDACT),
            "subentries": [
                {
                    "subentry_id": subentry_id,
                    "type": subentry.subentry_type,
                    "title": subentry.title,
                    "data": _redact_sub_device(subentry.data),
                }
                for subentry_id, subentry in entry.subentries.items()
            ],
        },
        "engine": None,
    }
    if entry.state is ConfigEntryState.LOADED:
        diagnostics["engine"] = await _engine_state(entry.runtime_data)
    return diagnostics


def _redact_sub_device(data: Mapping[str, Any]) -> dict[str, Any]:
    redacted: dict[str, Any] = async_redact_data(dict(data), TO_REDACT)
    flasher = redacted.get(CONF_FLASHER)
    if isinstance(flasher, dict):
        redacted[CONF_FLASHER] = {
            key: url_without_query(value) if key in _FLASHER_URLS and isinstance(value, str) else value
            for key, value in flasher.items()
        }
    return redacted


async def _engine_state(runtime: GatewayRuntime) -> dict[str, Any]:
    devices = sorted(set(runtime.configs) | set(runtime.ota_devices), key=lambda d: d.key)
    return {
        "gateway": runtime.gateway.key,
        "connected": runtime.connected,
        "install_policy": runtime.install_policy.value,
        # Ignored, not reported: a report without a valid version could land on another task's record.
        "pushes_without_a_valid_version": runtime.pushes_without_version,
        "sub_devices": [await _sub_device_state(runtime, device) for device in devices],
        # Bridged entities: their device, last report and control, errors; their secrets are never in it.
        "bridged_entities": runtime.bridge.diagnostics(),
    }


async def _sub_device_state(runtime: GatewayRuntime, device: DeviceId) -> dict[str, Any]:
    snapshot = runtime.snapshot(device)
    config = runtime.configs.get(device)
    return {
        "device": device.key,
        "configured": config is not None,
        "has_secret": config is not None and config.secret is not None,
        "has_flasher": runtime.has_flasher(device),
        "online": runtime.is_online(device),
        "online_result": runtime.online_result(device),
        "installed_version": snapshot.installed_version,
        "latest_version": snapshot.latest_version,
        "job": _job(snapshot),
        "pending_firmware": await _pending(runtime, snapshot.target),
    }


def _job(snapshot: JobSnapshot) -> dict[str, Any]:
    return {
        "state": snapshot.state.value,
        "percent": snapshot.percent,
        "downloaded": snapshot.downloaded,
        "total": snapshot.total,
        "result_code": snapshot.result_code,
        "message": snapshot.message,
    }


async def _pending(runtime: GatewayRuntime, target: FirmwareSpec | None) -> Mapping[str, Any] | None:
    if target is None:
        return None
    resume = await runtime.downloader.resume_state(target)
    return {
        "version": target.version,
        "size": target.size,
        "md5": target.md5,
        "url": target.public_url,
        "resumable_bytes": resume.downloaded if resume is not None else 0,
    }
