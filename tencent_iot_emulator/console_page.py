"""The console's page at `/`: the devices (online, version, gateway, task), the data-template devices' reported
properties with a form to send each a control (the stand-in for Tencent's app), and the upgrade tasks.

One small HTML page with its style and a few lines of script inline (no external assets: it works offline). The
server renders it; every value is escaped, as device names, versions, reported values and result messages come
from users and devices. The script re-fetches the page every two seconds and swaps its `<main>` for the new one,
so the state and percent move without reloading (and without the script building HTML: parsed HTML runs no
script); what a user is typing in a control form (and the answer to the last one sent) is carried over into the
new `<main>`. A control form is sent by the script as JSON to the control API (`POST
/api/devices/{pid}/{dn}/control`), never by the browser itself (`form-action 'none'`); without script the page
is a snapshot. A nonce in its Content-Security-Policy lets only that script and style run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
import json
import time
from typing import Final
from urllib.parse import quote

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
class PropertyRow:
    """One property of a device's data template, and what the device last reported of it."""

    property_id: str
    kind: str
    writable: bool
    allowed: str
    """The values the template allows, in words (e.g. `0 or 1`, `0 to 100`, `0 open, 1 close`)."""
    value: str | None
    """The reported value as JSON text (None: never reported)."""
    meaning: str | None
    """An enum value's name."""
    reported_at: float | None


@dataclass(frozen=True, slots=True)
class ControlView:
    """The latest control the console sent to a device, and its answer."""

    params: str
    """The control's params as JSON text."""
    sent_at: float
    delivered: bool
    reply_code: int | None
    reply_status: str | None
    cleared: bool


@dataclass(frozen=True, slots=True)
class ThingView:
    """A device of a product with a data template: its properties and its latest control."""

    key: str
    online: bool
    category: str
    properties: tuple[PropertyRow, ...]
    last_control: ControlView | None
    refused_reports: int


@dataclass(frozen=True, slots=True)
class ConsoleSnapshot:
    """What the page shows: the devices, sorted by key, the data-template devices, and the tasks, newest first."""

    devices: tuple[DeviceRow, ...]
    tasks: tuple[TaskView, ...]
    things: tuple[ThingView, ...] = ()


def control_path(key: str) -> str:
    """The control API of device `key` (`PID/DN`)."""
    product_id, _, device_name = key.partition("/")
    return f"/api/devices/{quote(product_id, safe='')}/{quote(device_name, safe='')}/control"


def value_text(value: object) -> str:
    """A reported or sent value as the page shows it: JSON, with non-ASCII text as it is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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
    parts.append(f'</section><section id="data"><h2>Device data ({len(snapshot.things)})</h2>')
    if not snapshot.things:
        parts.append('<p class="muted">No device of a product with a data template yet.</p>')
    parts.extend(map(_thing, snapshot.things))
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


def _thing(thing: ThingView) -> str:
    """A data-template device: its properties (name, value, when reported), its latest control, and a form."""
    online = '<span class="good">● online</span>' if thing.online else '<span class="muted">○ offline</span>'
    category = f", category {escape(thing.category)}" if thing.category else ""
    parts = [
        f'<article class="thing" data-device="{escape(thing.key)}">',
        f"<h3><code>{escape(thing.key)}</code> {online}</h3>",
        f'<p class="meta">Data template{category}.</p>',
    ]
    if thing.refused_reports:
        parts.append(
            f'<p class="bad">{int(thing.refused_reports)} report(s) refused: they did not fit the template '
            "(see <code>/api/violations</code>).</p>"
        )
    parts.append(
        _table(("Property", "Value", "Reported at", "Allowed"), map(_property_cells, thing.properties))
    )
    parts.append(_last_control(thing.last_control))
    writable = [p for p in thing.properties if p.writable]
    if writable:
        parts.append(_control_form(thing.key, writable))
    parts.append("</article>")
    return "\n".join(parts)


def _property_cells(row: PropertyRow) -> tuple[str, ...]:
    name = f"<code>{escape(row.property_id)}</code>"
    if not row.writable:
        name += ' <span class="muted">(read-only)</span>'
    if row.value is None:
        value = '<span class="muted">none reported</span>'
    else:
        meaning = f' <span class="muted">({escape(row.meaning)})</span>' if row.meaning else ""
        value = f'<code class="value">{escape(row.value)}</code>{meaning}'
    when = '<span class="muted">never</span>' if row.reported_at is None else _clock(row.reported_at)
    return name, value, when, f"{escape(row.kind)}: {escape(row.allowed)}"


def _last_control(control: ControlView | None) -> str:
    if control is None:
        return '<p class="meta">No control sent yet.</p>'
    if control.reply_code is not None:
        status = f" ({escape(control.reply_status)})" if control.reply_status else ""
        verdict = "good" if control.reply_code == 0 else "bad"
        answer = f'<span class="{verdict}">answered code {int(control.reply_code)}{status}</span>'
    elif control.cleared:
        answer = '<span class="muted">cleared by the device</span>'
    elif control.delivered:
        answer = '<span class="waiting">pending: no answer yet</span>'
    else:
        answer = '<span class="waiting">pending: the device was offline (it gets it with get_status)</span>'
    return (
        f'<p class="meta last-control">Last control <code>{escape(control.params)}</code> '
        f"sent {_clock(control.sent_at)}: {answer}.</p>"
    )


def _control_form(key: str, writable: Sequence[PropertyRow]) -> str:
    """Property and value; the script sends it as JSON (a bool or number typed as text becomes a number)."""
    options = "".join(
        f'<option value="{escape(p.property_id)}" data-kind="{escape(p.kind)}">'
        f"{escape(p.property_id)} ({escape(p.allowed)})</option>"
        for p in writable
    )
    return (
        f'<form class="control" data-control="{escape(control_path(key))}">'
        f'<label>Property <select name="property">{options}</select></label> '
        '<label>Value <input name="value" required autocomplete="off" size="10"></label> '
        '<button type="submit">Send control</button> <output class="answer"></output></form>'
    )


def _clock(when: float) -> str:
    return escape(time.strftime("%H:%M:%S", time.localtime(when)))


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
    "<p>The cloud's view of the devices, of their data (the properties they report; a control sent from here "
    "stands for Tencent's app) and of the upgrade tasks. The JSON API is under <code>/api</code> "
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
.thing { margin: 1rem 0 1.5rem; }
.thing h3 code { font-size: 1rem; }
form.control { margin: .5rem 0; display: flex; flex-wrap: wrap; gap: .4rem .8rem; align-items: center; }
form.control select, form.control input, form.control button { font: inherit; }
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
const NUMBER = /^-?\\d+(\\.\\d+)?([eE][-+]?\\d+)?$/;
let timer = 0;
let asked = 0;

function controlForm(root, path) {{
  for (const form of root.querySelectorAll("form[data-control]")) {{
    if (form.dataset.control === path) return form;
  }}
  return null;
}}

function carryOver(main) {{
  // What the user typed or chose in each control form, and the answer to the last control, by form.
  for (const old of document.querySelectorAll("#console form[data-control]")) {{
    const form = controlForm(main, old.dataset.control);
    if (!form) continue;
    const choice = old.elements.property.value;
    if ([...form.elements.property.options].some((option) => option.value === choice)) {{
      form.elements.property.value = choice;
    }}
    form.elements.value.value = old.elements.value.value;
    const answer = form.querySelector("output"), before = old.querySelector("output");
    answer.textContent = before.textContent;
    answer.className = before.className;
  }}
}}

function refocus(main, active) {{
  const old = active && active.closest ? active.closest("form[data-control]") : null;
  const form = old ? controlForm(main, old.dataset.control) : null;
  const field = form && active.name ? form.elements.namedItem(active.name) : null;
  if (!field) return;
  field.focus();
  if (field.setSelectionRange && active.selectionStart !== null) {{
    field.setSelectionRange(active.selectionStart, active.selectionEnd);
  }}
}}

async function refresh() {{
  clearTimeout(timer);
  const mine = ++asked;
  try {{
    const response = await fetch(location.pathname, {{cache: "no-store"}});
    if (!response.ok) throw new Error(String(response.status));
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    // Only the latest answer is shown; an open drop-down is not swapped from under the user.
    const active = document.activeElement;
    if (mine === asked && !(active && active.tagName === "SELECT" && active.closest("#console"))) {{
      const main = document.adoptNode(page.getElementById("console"));
      carryOver(main);
      document.getElementById("console").replaceWith(main);
      refocus(main, active);
    }}
    document.getElementById("offline").hidden = true;
  }} catch (err) {{
    document.getElementById("offline").hidden = false;
  }}
  if (mine === asked) timer = setTimeout(refresh, {REFRESH_MS});
}}

async function sendControl(form) {{
  const path = form.dataset.control;
  const option = form.elements.property.selectedOptions[0];
  const typed = form.elements.value.value;
  // Tencent's wire values: bool, int and enum are numbers, so text that is a number is sent as one; the
  // API refuses what does not fit the template, and says why.
  const value = option.dataset.kind !== "string" && NUMBER.test(typed.trim()) ? Number(typed) : typed;
  const params = {{[option.value]: value}};
  let text, verdict;
  try {{
    const response = await fetch(path, {{
      method: "POST",
      headers: {{"Content-Type": "application/json"}},
      body: JSON.stringify({{params}}),
    }});
    const answer = await response.json();
    verdict = response.ok ? "good" : "bad";
    text = response.ok
      ? "Sent " + JSON.stringify(params) + " (" + answer.clientToken + ")."
      : "Not sent: " + answer.error;
  }} catch (err) {{
    verdict = "bad";
    text = "Not sent: the emulator does not answer.";
  }}
  // A refresh may have swapped the form while the control was on its way: answer in the current one.
  const current = controlForm(document, path);
  if (current) {{
    const output = current.querySelector("output");
    output.textContent = text;
    output.className = "answer " + verdict;
  }}
  refresh();
}}

document.addEventListener("submit", (event) => {{
  const form = event.target.closest("form[data-control]");
  if (!form) return;
  event.preventDefault();
  sendControl(form);
}});
timer = setTimeout(refresh, {REFRESH_MS});
"""
