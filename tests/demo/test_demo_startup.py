"""The demo starts as a new user would want it: no repair to do before anything is done.

Home Assistant 2026.10 raises a repair for an `http:` section in YAML ("The HTTP YAML configuration is
deprecated") and for a missing country; the demo sets both the way Home Assistant keeps them now (its HTTP
storage, written before the start; the core settings through the config API) and ignores the one notice about
running from a virtualenv. `test_the_demo_starts_without_repairs` runs the real demo (`hass` and the emulator).
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import socket
import stat
from typing import Any, cast

import aiohttp
import pytest

from demo_support.demo_banner import banner
from demo_support.demo_setup import (
    CORE_CONFIG,
    INSTALL_METHOD_ISSUE,
    DemoSetup,
    EmulatorEndpoints,
    HomeAssistantApi,
)
from demo_support.demo_stack import (
    CHECKOUT_CONFIG,
    DemoPaths,
    Ports,
    RunningDemo,
    prepare_config_dir,
    running_demo,
)

# A top-level key of configuration.yaml: a name at the start of a line, then a colon.
_TOP_LEVEL_KEY = re.compile(r"^([a-z_]+):", re.MULTILINE)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _stored_http(config_dir: Path) -> dict[str, Any]:
    return dict(json.loads((config_dir / ".storage" / "http").read_text(encoding="utf-8"))["data"])


def test_the_demo_configuration_leaves_out_what_home_assistant_moved_out_of_yaml() -> None:
    """No `http:` (a deprecation repair) and no core settings under `homeassistant:` (they would lock the
    General settings page to YAML): both are set where Home Assistant keeps them."""
    configuration = set(
        _TOP_LEVEL_KEY.findall((CHECKOUT_CONFIG / "configuration.yaml").read_text(encoding="utf-8"))
    )
    assert "http" not in configuration
    assert "homeassistant" not in configuration
    assert {"frontend", "config", "logbook", "logger"} <= configuration


def test_the_http_settings_are_stored_for_loopback_and_the_port(tmp_path: Path) -> None:
    """127.0.0.1 and the port in Home Assistant's HTTP storage, nothing pending, the YAML migration done;
    an unchanged file is left alone, a new port keeps what was changed in the UI and drops a staged change."""
    from homeassistant.components.http.config import HTTP_STORAGE_SCHEMA

    config_dir = tmp_path / "config"
    prepare_config_dir(config_dir, 18123)
    path = config_dir / ".storage" / "http"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert (stored["version"], stored["key"]) == (2, "http")
    data = stored["data"]
    assert data["pending"] is None
    assert data["yaml_migration_done"] is True
    stable = data["stable"]
    assert stable["server_host"] == ["127.0.0.1"]
    assert stable["server_port"] == 18123
    settings = {k: v for k, v in stable.items() if k not in ("created_at", "error", "error_message")}
    assert HTTP_STORAGE_SCHEMA(settings) == settings  # complete: every default Home Assistant reads is there

    written = path.read_text(encoding="utf-8")
    prepare_config_dir(config_dir, 18123)
    assert path.read_text(encoding="utf-8") == written

    # A change made in the UI (kept) and one staged but never confirmed (dropped: it would win over stable).
    data["stable"]["login_attempts_threshold"] = 5
    data["pending"] = dict(data["stable"], server_host=["0.0.0.0"])
    path.write_text(json.dumps(stored), encoding="utf-8")
    prepare_config_dir(config_dir, 18124)
    data = _stored_http(config_dir)
    assert data["pending"] is None
    assert data["stable"]["server_port"] == 18124
    assert data["stable"]["server_host"] == ["127.0.0.1"]
    assert data["stable"]["login_attempts_threshold"] == 5

    path.write_text("not json", encoding="utf-8")
    prepare_config_dir(config_dir, 18125)
    assert _stored_http(config_dir)["stable"]["server_port"] == 18125


@pytest.mark.timeout(180)
async def test_the_demo_starts_without_repairs(socket_enabled: None, tmp_path: Path) -> None:
    """After the demo's own start nothing is left to repair and every integration is loaded; the country, time zone, units, currency, language
    and name are set (and editable: stored, not YAML); Home Assistant listens on 127.0.0.1 from stable settings."""
    paths = DemoPaths(tmp_path / "config", tmp_path / "emulator")
    ports = Ports(ha=_free_port(), mqtt=0, mqtts=0, http=0, https=0)
    async with aiohttp.ClientSession() as session, running_demo(paths, ports, session, timeout_s=90) as demo:
        api = HomeAssistantApi(session, demo.setup.ha_url)
        api.access_token = demo.setup.access_token
        issues = await api.repair_issues()
        assert [i for i in issues if not i["ignored"]] == []
        assert {(i["domain"], i["issue_id"]) for i in issues} <= {INSTALL_METHOD_ISSUE}

        entries = await api.request("GET", "/api/config/config_entries/entry")
        assert [e["domain"] for e in entries if e["state"] != "loaded"] == []

        core, http = await api.websocket({"type": "get_config"}, {"type": "http/config"})
        assert core["country"] == CORE_CONFIG.country == "CN"
        assert core["time_zone"] == CORE_CONFIG.time_zone
        assert core["currency"] == CORE_CONFIG.currency
        assert core["language"] == CORE_CONFIG.language
        assert core["location_name"] == CORE_CONFIG.location_name
        assert core["unit_system"]["length"] == "km"
        assert core["config_source"] == "storage"
        assert http["active_config_type"] == "stable"
        assert http["pending"] is None
        assert http["stable"]["server_host"] == ["127.0.0.1"]
        assert http["stable"]["server_port"] == ports.ha


def test_the_banner_points_to_the_console_page(tmp_path: Path) -> None:
    """What `scripts/develop` prints sends a person to the console's page, where the task can be followed."""
    endpoints = EmulatorEndpoints(
        18830, 18883, "http://127.0.0.1:18080", "https://127.0.0.1:18443", tmp_path / "ca"
    )
    setup = DemoSetup(
        "http://127.0.0.1:8123", "token", "entry", True, endpoints.http_url, {"LIGHTPID01/light1": "0.1"}
    )
    # The processes are not used to print the banner.
    demo = RunningDemo(cast("Any", None), cast("Any", None), endpoints, setup)
    text = banner(demo, DemoPaths(tmp_path / "config", tmp_path / "emulator"))
    assert "Emulator console   http://127.0.0.1:18080/   (open it in a browser" in text
    assert "each light's state and percent) in the emulator console" in text
    # The bridge's product, and where its product secret is (never the secret itself).
    assert "Bridge product     BRLIGHTS01 (light, dynamic registration on" in text
    assert "emulator/demo.json) for light.living_room_lamp" in text
