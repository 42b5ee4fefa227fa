"""A running job's phase in words: the line the update dialog shows above its progress bar.

The engine says where a job is as values (`JobPhase`, `JobHold`); this module words them in the server's
language (backend-made texts follow HA's configured language, as the release summary does in
`failures.py`), from `exceptions.phase_<phase>` and `exceptions.hold_<kind>` of the translations. Only a
pre-flight gate's reason arrives as a text: `preflight_templates.py` wrote it in the same language.
"""

from __future__ import annotations

from typing import Final

from homeassistant.core import HomeAssistant, callback

from custom_components.tencent_iot_gateway.engine import HoldKind, JobHold, JobPhase, JobSnapshot

from . import failures

SECONDS_PER_MINUTE: Final = 60


@callback
def hold_text(hass: HomeAssistant, hold: JobHold) -> str:
    """Why a gate holds the job, as the end of "Waiting: …"."""
    if hold.kind is HoldKind.PREFLIGHT:
        return hold.reason
    minutes = -(-hold.seconds // SECONDS_PER_MINUTE)  # rounded up: "at most"
    return failures.text(
        hass,
        f"hold_{hold.kind.value}",
        {"done": str(hold.done), "total": str(hold.total), "minutes": str(max(1, minutes))},
    )


@callback
def phase_text(hass: HomeAssistant, name: str, snapshot: JobSnapshot) -> str | None:
    """The running job's phase (a held job: why it waits); None when no job runs."""
    if not snapshot.state.running:
        return None
    if snapshot.hold is not None:
        return failures.text(hass, "phase_held", {"reason": hold_text(hass, snapshot.hold)})
    phase = snapshot.phase or JobPhase.QUEUED
    return failures.text(
        hass,
        f"phase_{phase.value}",
        {
            "device": name,
            "percent": str(download_percent(snapshot)),
            "installed": snapshot.installed_version or "?",
        },
    )


def download_percent(snapshot: JobSnapshot) -> int:
    """How much of the image is downloaded (not the bar's value, whose first half is the download)."""
    if snapshot.total <= 0:
        return 0
    return min(100, snapshot.downloaded * 100 // snapshot.total)


@callback
def release_summary(hass: HomeAssistant, name: str, snapshot: JobSnapshot) -> str | None:
    """While a job runs: its phase first, then what is on offer; otherwise as `failures.release_summary`."""
    line = phase_text(hass, name, snapshot)
    target = snapshot.target
    if line is None or target is None:
        return failures.release_summary(hass, name, snapshot)
    offer = failures.text(
        hass, "release_summary", {"size": failures.human_size(target.size), "host": target.host}
    )
    # Markdown: two paragraphs. The phase comes first so that a long reason is what gets cut, not the phase.
    summary = f"{line}\n\n{offer}"
    if len(summary) > failures.RELEASE_SUMMARY_MAX:
        room = failures.RELEASE_SUMMARY_MAX - len(offer) - 3
        summary = f"{line[:room]}…\n\n{offer}"
    return summary
