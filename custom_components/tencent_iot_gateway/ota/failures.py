"""What a user reads about an update: its release notes and summary, and each failure, in their language.

Every failure the engine reports names its reason (`FailureReason`) and carries its values (host, port, path,
HTTP status, exit code, seconds...); the words, a plain reason with advice, live in the translations
(`exceptions.failure_<reason>` for the install call and the release summary, `issues.install_failed_<reason>`
for the repair issue of an unattended install), with one fixed set of placeholders, so any key can be worded
with any of them. Only `remote` (what a device, a program, an automation or the OS said) is not ours: the
texts quote it as received. Texts the backend composes (release notes and summary) use the server's language, the one HA
uses for every backend-made text; the install error and the repair issue are worded by the frontend in each
user's own language.

A failed install that nobody watched (install policy `auto`, or `update.install` called without a user, as an
automation does) raises a repair issue naming the device, the version, Tencent's code and the reason; the
next successful install of that sub-device clears it.
"""

from __future__ import annotations

from typing import Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.translation import async_get_cached_translations

from custom_components.tencent_iot_gateway.const import DOMAIN, MIB
from custom_components.tencent_iot_gateway.engine import (
    DeviceId,
    Failure,
    FailureReason,
    FailureValue,
    FirmwareSpec,
    JobSnapshot,
    JobState,
    OtaError,
    OtaResultCode,
)

KIB: Final = 1024
RELEASE_SUMMARY_MAX: Final = 255  # HA refuses a longer release_summary
_CATEGORY: Final = "exceptions"


FAILURE_KEYS: Final = tuple(sorted(reason.value for reason in FailureReason))
"""Every failure the engine can name (each has an exception text and a repair-issue text)."""
NOT_GIVEN: Final = "?"
"""A placeholder the failure has no value for (no text of that failure uses it)."""
NO_TEXT: Final = "—"
"""What a quoted remote text reads when the other side said nothing."""


def human_size(size: int) -> str:
    """MiB with one decimal (KiB below one MiB): what a user compares with a download."""
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    return f"{max(1, round(size / KIB))} KiB"


def _failure_of(snapshot: JobSnapshot) -> Failure:
    """The snapshot's failure; one the engine did not name (a record of an older version) is generic and
    quotes its message."""
    if snapshot.failure is not None:
        return snapshot.failure
    return Failure.of(FailureReason.UPGRADE_FAILED, remote=snapshot.message or None)


def failure_key(snapshot: JobSnapshot) -> str:
    """The failure's key in the translations."""
    return _failure_of(snapshot).reason.value


def _placeholders(
    name: str, version: str, code: int, target: FirmwareSpec | None, failure: Failure
) -> dict[str, str]:
    placeholders = dict.fromkeys((value.value for value in FailureValue), NOT_GIVEN)
    placeholders.update(failure.placeholders)
    needed = failure.get(FailureValue.NEEDED)
    if needed is not None and needed.isdigit():
        placeholders[FailureValue.NEEDED.value] = human_size(int(needed))
    if not placeholders[FailureValue.REMOTE.value].strip():
        placeholders[FailureValue.REMOTE.value] = NO_TEXT
    return placeholders | {
        "device": name,
        "version": version,
        "code": str(code),
        "size": human_size(target.size) if target is not None else NOT_GIVEN,
    }


def failure_placeholders(name: str, snapshot: JobSnapshot, version: str | None = None) -> dict[str, str]:
    """The one placeholder set of every failure text: the job's (device, version, code, size) and the
    failure's own values (`FailureValue`), each present."""
    target = snapshot.target
    return _placeholders(
        name,
        version or (target.version if target is not None else snapshot.latest_version) or NOT_GIVEN,
        snapshot.result_code if snapshot.result_code is not None else OtaResultCode.UPGRADE_FAILED,
        target,
        _failure_of(snapshot),
    )


def error_placeholders(
    name: str, version: str, error: OtaError, target: FirmwareSpec | None
) -> dict[str, str]:
    """The same set for an error caught from an install call."""
    return _placeholders(name, version, int(error.code), target, error.failure)


@callback
def device_failure_text(hass: HomeAssistant, name: str, version: str, failure: Failure, code: int) -> str:
    """One device's failure as its install call words it, in the server's language (a halted rollout's list
    of failures is text the backend composes)."""
    return text(hass, f"failure_{failure.reason.value}", _placeholders(name, version, code, None, failure))


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
    """The last failure of the offered version, or what is on offer (a running job's phase leads the summary
    through `phase_texts.release_summary`)."""
    target = snapshot.target
    if target is None:
        # Adopted from the cloud with no version known: the dialog says how to set it.
        return text(hass, "version_unknown", {"device": name}) if snapshot.installed_version is None else None
    if snapshot.state is JobState.FAILED:
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
