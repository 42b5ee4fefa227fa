"""The console's page at `/`: the devices (online, version, gateway, task) and the upgrade tasks, device by device.

One small HTML page with its style and a few lines of script inline (no external assets: it works offline). The
server renders it; every value is escaped, as device names, versions and result messages come from users and
devices. The script re-fetches the page every two seconds and swaps its `<main>` for the new one, so the state
and percent move without reloading (and without the script building HTML: parsed HTML runs no script); without
script the page is a snapshot. A nonce in its Content-Security-Policy lets only that script and style run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
import time
from typing import Final

REFRESH_MS: Final = 2000
# The state classes colour a state; the state's word is always shown too.
_STATE_CLASS: Final = {
    "pending": "waiting",
    "sent": "busy",
    "downloading": "busy",
    "burning": "busy",
    "done": "good",
    "fail": "bad",
    "timeout": "bad",
}


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A registered device as the page shows it."""

    key: str
    online: bool
    version: str | None
    gateway: str | None
    task_id: int | None
    task_state: str | None
    percent: int | None


@dataclass(frozen=True, slots=True)
class TaskDeviceRow:
    """One device's state in one task."""

    key: str
    state: str
    percent: int | None
    result_code: int | None
    result_msg: str
    history: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TaskView:
    """An upgrade task and its devices."""

    task_id: int
    product_id: str
    version: str
    mode: str
    from_versions: tuple[str, ...]
    devices: tuple[TaskDeviceRow, ...]


@dataclass(frozen=True, slots=True)
class ConsoleSnapshot:
    """What the page shows: the devices, sorted by key, and the tasks, newest first."""

    devices: tuple[DeviceRow, ...]
    tasks: tuple[TaskView, ...]


def content_security_policy(nonce: str) -> str:
    """Only the page's own style and script (by nonce), and fetches of itself."""
    return (
        f"default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def render_page(snapshot: ConsoleSnapshot, nonce: str) -> str:
    """The whole page (`nonce` marks its inline style and script)."""
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            "<title>Tencent IoT emulator: console</title>",
            f'<style nonce="{escape(nonce)}">{_STYLE}</style>',
            "</head>",
            "<body>",
            "<header>",
            "<h1>Tencent IoT emulator: console</h1>",
            _INTRO,
            '<p id="offline" class="bad" hidden>The emulator does not answer: is it still running?</p>',
            "</header>",
            _main(snapshot),
            f'<script nonce="{escape(nonce)}">{_SCRIPT}</script>',
            "</body>",
            "</html>",
            "",
        ]
    )


def _main(snapshot: ConsoleSnapshot) -> str:
    parts = [
        '<main id="console">',
        f'<p class="meta">Updated {time.strftime("%H:%M:%S")}, every {REFRESH_MS // 1000} s.</p>',
        f"<section><h2>Devices ({len(snapshot.devices)})</h2>",
    ]
    if snapshot.devices:
        parts.append(
            _table(
                ("Device", "Online", "Version", "Gateway", "Latest task"),
                map(_device_cells, snapshot.devices),
            )
        )
    else:
        parts.append("<p>No device is registered yet.</p>")
    parts.append(f"</section><section><h2>Upgrade tasks ({len(snapshot.tasks)})</h2>")
    if not snapshot.tasks:
        parts.append("<p>No upgrade task yet.</p>")
    parts.extend(map(_task, snapshot.tasks))
    parts.append("</section></main>")
    return "\n".join(parts)


def _device_cells(device: DeviceRow) -> tuple[str, ...]:
    online = '<span class="good">● online</span>' if device.online else '<span class="muted">○ offline</span>'
    if device.task_id is None or device.task_state is None:
        task = '<span class="muted">none</span>'
    else:
        task = f"#{device.task_id} {_state(device.task_state)} {_percent(device.percent)}"
    return (
        f"<code>{escape(device.key)}</code>",
        online,
        _code_or_none(device.version),
        _code_or_none(device.gateway),
        task,
    )


def _task(task: TaskView) -> str:
    since = ", ".join(map(escape, task.from_versions)) or "any version"
    heading = (
        f"<h3>Task #{task.task_id}: <code>{escape(task.product_id)}</code> to <code>{escape(task.version)}</code></h3>"
        f'<p class="meta">Mode {escape(task.mode)}, from {since}.</p>'
    )
    if not task.devices:
        return heading + "<p>No device took part.</p>"
    rows = (
        (
            f"<code>{escape(entry.key)}</code>",
            _state(entry.state, entry.history),
            _progress(entry.percent),
            _result(entry),
        )
        for entry in task.devices
    )
    return heading + _table(("Device", "State", "Progress", "Result"), rows)


def _table(headings: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table of cells that are already HTML (each escaped where it was made)."""
    head = "".join(f"<th>{escape(heading)}</th>" for heading in headings)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _state(state: str, history: Sequence[str] = ()) -> str:
    title = f' title="{escape("Reported: " + ", ".join(history))}"' if history else ""
    return f'<span class="state {_STATE_CLASS.get(state, "")}"{title}>{escape(state)}</span>'


def _percent(percent: int | None) -> str:
    return "" if percent is None else f"{int(percent)} %"


def _progress(percent: int | None) -> str:
    if percent is None:
        return '<span class="muted">none reported</span>'
    value = min(max(int(percent), 0), 100)
    return f'<progress max="100" value="{value}">{value} %</progress> {value} %'


def _result(entry: TaskDeviceRow) -> str:
    if entry.result_code is None or (entry.result_code == 0 and not entry.result_msg):
        return ""
    message = f": {escape(entry.result_msg)}" if entry.result_msg else ""
    return f"code {int(entry.result_code)}{message}"


def _code_or_none(value: str | None) -> str:
    return '<span class="muted">none</span>' if value is None else f"<code>{escape(value)}</code>"


_INTRO: Final = (
    "<p>The cloud's view of the devices and of the upgrade tasks. The JSON API is under <code>/api</code> "
    "(e.g. <code>/api/devices</code>, <code>/api/tasks/1</code>).</p>"
)

_STYLE: Final = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 64rem; padding: 0 1rem;
  color: #1d2430; background: #fbfbfc; }
h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
h2 { font-size: 1.15rem; margin: 1.5rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1.25rem 0 .25rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e3e6ea; vertical-align: middle; }
th { font-weight: 600; background: #f1f3f5; }
code { font: .9em ui-monospace, monospace; overflow-wrap: anywhere; }
progress { width: 8rem; vertical-align: middle; }
.meta, .muted { color: #5c6470; }
.meta { margin: .1rem 0 .4rem; }
.good { color: #17713a; }
.bad { color: #b42318; }
.busy { color: #1d4ed8; }
.waiting { color: #8a5a00; }
.state { font-weight: 600; }
@media (prefers-color-scheme: dark) {
  body { color: #e6e8eb; background: #16181c; }
  table { background: #1d2026; }
  th { background: #262a31; }
  th, td { border-color: #343943; }
  .meta, .muted { color: #a0a7b1; }
  .good { color: #5fd08a; } .bad { color: #ff8a80; } .busy { color: #8ab4ff; } .waiting { color: #f0c060; }
}
"""

_SCRIPT: Final = f"""
async function refresh() {{
  try {{
    const response = await fetch(location.pathname, {{cache: "no-store"}});
    if (!response.ok) throw new Error(String(response.status));
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    document.getElementById("console").replaceWith(page.getElementById("console"));
    document.getElementById("offline").hidden = true;
  }} catch (err) {{
    document.getElementById("offline").hidden = false;
  }}
  setTimeout(refresh, {REFRESH_MS});
}}
setTimeout(refresh, {REFRESH_MS});
"""
