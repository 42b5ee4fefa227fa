"""Diagnostics: the engine's state is there; no secret, token, certificate or signed query is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
import json
from typing import Any
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component

from custom_components.tencent_iot_gateway.const import CONF_PRODUCT_SECRET
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId

from .gateway_rig import PRODUCT_SECRET, Gateway, add_entry
from .helpers import LIGHT_PRODUCT, VERSION, light_key, push, register_lights, state, sub, wait_for

FIRMWARE = bytes(range(256)) * 64
FLASHER_TOKEN = "flasher-bearer-token-4f1c9a"

type ClientFactory = Callable[[], Awaitable[TestClient[Any, Any]]]


async def get_diagnostics_for_config_entry(
    hass: HomeAssistant, hass_client: ClientFactory, entry: ConfigEntry
) -> dict[str, Any]:
    """Download the entry's diagnostics through HA's HTTP API, as the UI does."""
    assert await async_setup_component(hass, "diagnostics", {})
    client = await hass_client()
    response = await client.get(f"/api/diagnostics/config_entry/{entry.entry_id}")
    assert response.status == HTTPStatus.OK
    body = await response.json()
    assert isinstance(body, dict)
    data = body["data"]
    assert isinstance(data, dict)
    return data


async def test_diagnostics_redact_secrets_and_signed_urls(
    hass: HomeAssistant, gateway: Gateway, hass_client: ClientFactory
) -> None:
    """Secrets, the CA, the flasher token and the URL's query are absent; the job state is present."""
    secrets = await register_lights(gateway, "light1")
    flasher = {"kind": "http", "url": "http://127.0.0.1:9/flash", "token": FLASHER_TOKEN}
    entry = await add_entry(
        hass,
        # A product secret is never stored by the flow; it is here to prove it would be redacted too.
        gateway.entry_data | {CONF_PRODUCT_SECRET: PRODUCT_SECRET},
        subentries=[sub("light1", flasher=flasher, secret=secrets["light1"])],
    )
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, "update.light1_firmware").state == STATE_ON)
    target = entry.runtime_data.snapshot(DeviceId(LIGHT_PRODUCT, "light1")).target
    assert target is not None
    query = urlsplit(target.url).query
    assert query, "the emulator signs its URLs"

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(diagnostics)

    for secret in (gateway.secret, secrets["light1"], PRODUCT_SECRET, FLASHER_TOKEN, query):
        assert secret not in text
    ca_body = gateway.ca_pem.strip().splitlines()[1]
    assert ca_body not in text
    assert "BEGIN CERTIFICATE" not in text
    assert "?" not in text

    assert isinstance(diagnostics["entry"], dict)
    data = diagnostics["entry"]["data"]
    assert isinstance(data, dict)
    assert data["device_secret"] == "**REDACTED**"
    assert data["ca_cert"] == "**REDACTED**"
    assert data["product_id"] == gateway.product_id
    engine = diagnostics["engine"]
    assert isinstance(engine, dict)
    assert engine["connected"] is True
    assert engine["gateway"] == gateway.key
    sub_devices = engine["sub_devices"]
    assert isinstance(sub_devices, list)
    [light] = sub_devices
    assert isinstance(light, dict)
    assert light["device"] == light_key("light1")
    assert light["online"] is True
    assert light["online_result"] == 0
    assert light["has_secret"] is True
    assert light["has_flasher"] is True
    assert light["installed_version"] == "0.1"
    assert light["latest_version"] == VERSION
    assert light["job"] == {
        "state": "available",
        "percent": None,
        "downloaded": 0,
        "total": 0,
        "result_code": None,
        "message": "",
    }
    pending = light["pending_firmware"]
    assert isinstance(pending, dict)
    assert pending["version"] == VERSION
    assert pending["size"] == len(FIRMWARE)
    assert pending["url"] == target.public_url
    assert pending["resumable_bytes"] == 0


async def test_diagnostics_of_an_unloaded_entry(
    hass: HomeAssistant, gateway: Gateway, hass_client: ClientFactory
) -> None:
    """An entry that is not loaded still gives its (redacted) configuration, and no engine state."""
    entry = await add_entry(hass, gateway.entry_data)
    assert await hass.config_entries.async_unload(entry.entry_id)
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diagnostics["engine"] is None
    assert gateway.secret not in json.dumps(diagnostics)


async def test_diagnostics_redact_flasher_urls_and_arguments(
    hass: HomeAssistant, gateway: Gateway, hass_client: ClientFactory
) -> None:
    """Flasher URLs lose userinfo and query; command arguments (may hold passwords) are redacted."""
    http = {
        "kind": "http",
        "url": "http://admin:urlpass1@127.0.0.1:9/flash?key=querysecret1",
        "version_url": "http://viewer:urlpass2@127.0.0.1:9/version?sig=querysecret2",
    }
    command = {"kind": "command", "program": "/usr/bin/flash", "args": ["--password=argsecret", "{path}"]}
    entry = await add_entry(
        hass, gateway.entry_data, subentries=[sub("light1", flasher=http), sub("light2", flasher=command)]
    )
    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    text = json.dumps(diagnostics)
    for secret in ("urlpass1", "urlpass2", "querysecret1", "querysecret2", "argsecret", "admin", "viewer"):
        assert secret not in text
    flashers = {s["title"]: s["data"]["flasher"] for s in diagnostics["entry"]["subentries"]}
    by_kind = {flasher["kind"]: flasher for flasher in flashers.values()}
    assert by_kind["http"]["url"] == "http://127.0.0.1:9/flash"
    assert by_kind["http"]["version_url"] == "http://127.0.0.1:9/version"
    assert by_kind["command"]["program"] == "/usr/bin/flash"
    assert by_kind["command"]["args"] == "**REDACTED**"
