"""What `scripts/develop` prints once the demo runs: where Home Assistant and the emulator's console are, and
what to try first."""

from __future__ import annotations

from pathlib import Path

from demo_support.demo_push import next_version
from demo_support.demo_setup import BRIDGE_CATEGORY, BRIDGE_LIGHT, BRIDGE_PRODUCT, DEMO_USER, LIGHTS
from demo_support.demo_stack import DemoPaths, RunningDemo


def banner(demo: RunningDemo, paths: DemoPaths) -> str:
    """What `develop` prints once everything runs."""
    setup = demo.setup
    endpoints = demo.endpoints
    name, username, password = DEMO_USER
    versions = ", ".join(f"{key} {version}" for key, version in sorted(setup.versions.items()))
    lines = [
        "",
        "The Tencent IoT Gateway demo is running." + ("" if setup.created_entry else " (state reused)"),
        "",
        f"  Home Assistant     {setup.ha_url}   user: {username}   password: {password}   ({name})",
        f"  Emulator console   {endpoints.http_url}/   (open it in a browser: devices, their data, tasks)",
        f"  Emulator broker    mqtts://127.0.0.1:{endpoints.mqtts_port}  (CA {relative(endpoints.ca_file)})",
        f"  Sub-devices        {versions}",
        (
            f"  Bridge product     {BRIDGE_PRODUCT} ({BRIDGE_CATEGORY}, dynamic registration on; its product secret "
            f"is in {relative(paths.secret_file)}) for {BRIDGE_LIGHT}"
        ),
        "",
        "Push a firmware upgrade to the three lights (then press Update in a light's firmware dialog):",
        "",
        f"  scripts/demo-push {next_version(v for key, v in setup.versions.items() if _is_light(key))}",
        "",
        "Follow the cloud's side of the task (each light's state and percent) in the emulator console,",
        f"  {endpoints.http_url}/  (it refreshes itself), or as a table in the terminal:",
        f"  scripts/run python -m tencent_iot_emulator status --console {endpoints.http_url}",
        "",
        f"Logs: {relative(paths.config_dir / 'home-assistant.log')}, {relative(paths.emulator_log)}.",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _is_light(key: str) -> bool:
    return any(light.key == key for light in LIGHTS)
