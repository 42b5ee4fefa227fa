"""What a user reads about an update: its release notes and summary, and each failure, in their language.

Every `OtaError` subclass names its failure (`translation_key`); the words live in the translations
(`exceptions.failure_<key>` for the install call and the release summary, `issues.install_failed_<key>` for
the repair issue of an unattended install), with one fixed set of placeholders, so any key can be worded with
any of them. Texts the backend composes (release notes and summary) use the server's language, the one HA
uses for every backend-made text; the install error and the repair issue are worded by the frontend in each
user's own language.

A failed install that nobody watched (install policy `auto`, or `update.install` called without a user, as an
automation does) raises a repair issue naming the device, the version, Tencent's code and the reason; the
next successful install of that sub-device clears it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.translation import async_get_cached_translations

from custom_components.tencent_iot_gateway.const import DOMAIN, MIB
from custom_components.tencent_iot_gateway.engine import (
    DeviceId,
    FirmwareSpec,
    JobSnapshot,
    JobState,
    OtaError,
    OtaResultCode,
)

KIB: Final = 1024
RELEASE_SUMMARY_MAX: Final = 255  # HA refuses a longer release_summary
_CATEGORY: Final = "exceptions"


def _ota_error_classes(base: type[OtaError] = OtaError) -> Iterator[type[OtaError]]:
    yield base
    for subclass in base.__subclasses__():
        yield from _ota_error_classes(subclass)


FAILURE_KEYS: Final = tuple(sorted({cls.translation_key for cls in _ota_error_classes()}))
"""Every failure the engine can name (each has an exception text and a repair-issue text)."""


def human_size(size: int) -> str:
    """MiB with one decimal (KiB below one MiB): what a user compares with a download."""
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    return f"{max(1, round(size / KIB))} KiB"


def failure_key(snapshot: JobSnapshot) -> str:
    """The failure's key; a failure the engine did not name (restored from an older store) is generic."""
    key = snapshot.failure_key or OtaError.translation_key
    return key if key in FAILURE_KEYS else OtaError.translation_key


def failure_placeholders(name: str, snapshot: JobSnapshot, version: str | None = None) -> dict[str, str]:
    """The one placeholder set of every failure text."""
    target = snapshot.target
    return {
        "device": name,
        "version": version or (target.version if target is not None else snapshot.latest_version) or "?",
        "code": str(
            snapshot.result_code if snapshot.result_code is not None else OtaResultCode.UPGRADE_FAILED
        ),
        "size": human_size(target.size) if target is not None else "?",
        "detail": snapshot.message or "-",
        "http_status": str(snapshot.http_status) if snapshot.http_status is not None else "?",
    }


def error_placeholders(
    name: str, version: str, error: OtaError, target: FirmwareSpec | None
) -> dict[str, str]:
    """The same set for an error caught from an install call."""
    return {
        "device": name,
        "version": version,
        "code": str(int(error.code)),
        "size": human_size(target.size) if target is not None else "?",
        "detail": str(error) or "-",
        "http_status": str(error.http_status) if error.http_status is not None else "?",
    }


@callback
def text(hass: HomeAssistant, key: str, placeholders: dict[str, str]) -> str:
    """`exceptions.<key>` worded in the server's language (English if that has no such text)."""
    full_key = f"component.{DOMAIN}.{_CATEGORY}.{key}.message"
    for language in (hass.config.language, "en"):
        template = async_get_cached_translations(hass, language, _CATEGORY, DOMAIN).get(full_key)
        if template:
            return template.format(**placeholders)
    return key


@callback
def release_notes(hass: HomeAssistant, name: str, target: FirmwareSpec) -> str:
    """Markdown: the version, its size and where it comes from (the host only: the query is a credential)."""
    return text(
        hass,
        "release_notes",
        {"device": name, "version": target.version, "size": human_size(target.size), "host": target.host},
    )


@callback
def release_summary(hass: HomeAssistant, name: str, snapshot: JobSnapshot) -> str | None:
    """The phase of a running job, the last failure of the offered version, or what is on offer."""
    target = snapshot.target
    if target is None:
        # Adopted from the cloud with no version known: the dialog says how to set it.
        return text(hass, "version_unknown", {"device": name}) if snapshot.installed_version is None else None
    if snapshot.state.running and snapshot.hold_reason:
        summary = text(hass, "phase_held", {"reason": snapshot.hold_reason})
    elif snapshot.state.running:
        percent = snapshot.percent if snapshot.percent is not None else 0
        summary = text(hass, f"phase_{snapshot.state.value}", {"percent": str(percent)})
    elif snapshot.state is JobState.FAILED:
        summary = text(hass, f"failure_{failure_key(snapshot)}", failure_placeholders(name, snapshot))
    else:
        summary = text(hass, "release_summary", {"size": human_size(target.size), "host": target.host})
    if len(summary) > RELEASE_SUMMARY_MAX:
        summary = summary[: RELEASE_SUMMARY_MAX - 1] + "…"
    return summary


def issue_id(entry_id: str, device: DeviceId) -> str:
    """One repair issue per sub-device of an entry: a newer failure replaces the older one."""
    return f"install_failed_{entry_id}_{device.key}"


@callback
def async_track_unattended_failure(
    hass: HomeAssistant,
    entry_id: str,
    name: str,
    previous: JobSnapshot,
    snapshot: JobSnapshot,
    *,
    unattended: bool,
) -> None:
    """Raise the repair issue of an unattended failed install; clear it when the sub-device is updated."""
    if snapshot.state is JobState.DONE:
        ir.async_delete_issue(hass, DOMAIN, issue_id(entry_id, snapshot.device))
        return
    if snapshot.state is not JobState.FAILED or previous.state is JobState.FAILED or not unattended:
        return
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(entry_id, snapshot.device),
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=f"install_failed_{failure_key(snapshot)}",
        translation_placeholders=failure_placeholders(name, snapshot, previous.latest_version),
    )
