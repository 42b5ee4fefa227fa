"""The logbook tells each install's history (start, failure and why, done) and what the cloud console did, in
the server's language, read back through the logbook's own websocket API from the recorder."""

# ruff: noqa: RUF001  (Chinese texts use full-width punctuation)

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from homeassistant.components.update import DOMAIN as UPDATE_DOMAIN
from homeassistant.const import ATTR_ENTITY_ID, STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.recorder import get_instance
from homeassistant.helpers.translation import async_get_translations
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
import pytest

from custom_components.tencent_iot_gateway.const import DOMAIN

from .gateway_rig import Gateway
from .helpers import (
    LIGHT_PRODUCT,
    VERSION,
    available,
    light_key,
    push,
    register_lights,
    setup_gateway,
    state,
    sub,
    wait_for,
)

# pytest-homeassistant's `hass_ws_client` (its own type is not exported typed): hass in, a WS client out.
type WebSocketGenerator = Callable[[HomeAssistant], Awaitable[Any]]

FIRMWARE = bytes(range(256)) * 400  # 100 KiB
ENTITY = "update.light1_firmware"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_db_url: str, enable_custom_integrations: None) -> None:
    """The recorder's database before Home Assistant (as `recorder_mock` requires), then this integration."""


async def _logbook(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, since: Any, **query: Any
) -> list[dict[str, Any]]:
    for _ in range(2):  # what the recorder committed may fire more events to record
        await hass.async_block_till_done()
        await get_instance(hass).async_block_till_done()
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "logbook/get_events", "start_time": since.isoformat(), **query})
    response = await client.receive_json()
    assert response["success"], response
    return [e for e in response["result"] if e.get("domain") == DOMAIN]


async def test_a_failed_and_a_successful_install_leave_their_history(
    recorder_mock: Any,
    hass: HomeAssistant,
    gateway: Gateway,
    hass_ws_client: WebSocketGenerator,
    tmp_path: Path,
) -> None:
    """An MD5 fault from the emulator, then the same install without it: the update entity's logbook says
    it started, failed (with the failure's own words), started again and installed it; in Chinese too."""
    assert await async_setup_component(hass, "logbook", {})
    since = dt_util.utcnow() - timedelta(seconds=1)
    await register_lights(gateway, "light1")
    await setup_gateway(hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(tmp_path)})])
    await gateway.emulator.console.set_faults(
        {"firmware": {f"{LIGHT_PRODUCT}/{VERSION}": {"flip_byte_at": 10}}}
    )
    await push(gateway, FIRMWARE, "light1")
    await wait_for(hass, lambda: state(hass, ENTITY).state == STATE_ON)
    with pytest.raises(HomeAssistantError):
        await hass.services.async_call(UPDATE_DOMAIN, "install", {ATTR_ENTITY_ID: ENTITY}, blocking=True)
    await gateway.emulator.console.reset_faults()
    await hass.services.async_call(UPDATE_DOMAIN, "install", {ATTR_ENTITY_ID: ENTITY}, blocking=True)
    await hass.async_block_till_done()

    entries = await _logbook(hass, hass_ws_client, since, entity_ids=[ENTITY])
    assert {e["entity_id"] for e in entries} == {ENTITY}
    assert {e["name"] for e in entries} == {state(hass, ENTITY).name}
    messages = [e["message"] for e in entries]
    failed = [m for m in messages if m.startswith(f"failed to install {VERSION}: ")]
    assert len(failed) == 1, messages
    assert (
        f"The downloaded image of {VERSION} (100 KiB) for light1 does not match its MD5 checksum" in failed[0]
    )
    assert messages.count(f"started installing {VERSION}") == 2, messages
    assert messages[0] == f"has {VERSION} available from the cloud", messages
    assert messages[-1] == f"installed {VERSION}", messages
    assert messages.index(failed[0]) < len(messages) - 1
    assert f"is downloading {VERSION}" in messages
    assert f"is flashing {VERSION}" in messages

    await hass.config.async_update(language="zh-Hans")
    await async_get_translations(hass, "zh-Hans", "exceptions", [DOMAIN])
    messages = [e["message"] for e in await _logbook(hass, hass_ws_client, since, entity_ids=[ENTITY])]
    failed = [m for m in messages if m.startswith(f"安装 {VERSION} 失败：")]
    assert len(failed) == 1, messages
    assert f"为 light1 下载的 {VERSION} 固件" in failed[0]
    assert messages.count(f"开始安装 {VERSION}") == 2, messages
    assert messages[-1] == f"已安装 {VERSION}", messages


async def test_the_cloud_console_unbinding_a_sub_device_is_in_the_logbook(
    recorder_mock: Any,
    hass: HomeAssistant,
    gateway: Gateway,
    hass_ws_client: WebSocketGenerator,
) -> None:
    """The console unbinds light2, then binds it again: two lines under the gateway's name."""
    assert await async_setup_component(hass, "logbook", {})
    since = dt_util.utcnow() - timedelta(seconds=1)
    await register_lights(gateway, "light1", "light2")
    entry = await setup_gateway(hass, gateway, [sub("light1"), sub("light2")])
    await gateway.emulator.console.unbind(gateway.key, light_key("light2"))
    await wait_for(hass, lambda: not available(hass, "update.light2_firmware"))
    await gateway.emulator.console.bind(gateway.key, light_key("light2"))
    await wait_for(hass, lambda: available(hass, "update.light2_firmware"))

    entries = await _logbook(hass, hass_ws_client, since)
    cloud = [(e["name"], e["message"]) for e in entries if "console" in e["message"]]
    assert cloud == [
        (entry.title, "had light2 unbound in the Tencent Cloud console"),
        (entry.title, "had light2 bound in the Tencent Cloud console"),
    ], entries
