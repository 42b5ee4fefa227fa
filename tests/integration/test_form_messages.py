"""What the forms and the update dialog say is the integration's own and true, in English and Chinese."""

from __future__ import annotations

from pathlib import Path

from homeassistant.components.update.const import DOMAIN as UPDATE_DOMAIN
from homeassistant.config_entries import SOURCE_RECONFIGURE
from homeassistant.const import STATE_ON
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.translation import async_get_translations
import pytest

from custom_components.tencent_iot_gateway.const import CONF_FLASHER_KIND, DOMAIN, SUBENTRY_SUB_DEVICE
from custom_components.tencent_iot_gateway.subentry_flow import UPDATED, nest

from .gateway_rig import Gateway, add_entry
from .helpers import push, register_lights, setup_gateway, state, sub, wait_for

_SUBENTRY = f"component.{DOMAIN}.config_subentries.{SUBENTRY_SUB_DEVICE}"


@pytest.mark.parametrize(
    ("language", "text"), [("en", "The sub-device was updated."), ("zh-Hans", "子设备已更新。")]
)
async def test_an_edit_ends_with_the_integrations_message_in_the_users_language(
    hass: HomeAssistant, gateway: Gateway, language: str, text: str
) -> None:
    """Not HA's generic, English-only "Reconfiguration was successful": an abort reason of the subentry flow
    (no translation domain of HA's own), which the frontend looks up in the integration's translations."""
    entry = await add_entry(hass, gateway.entry_data, subentries=[sub("light1")])
    subentry_id = next(iter(entry.subentries))
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SUB_DEVICE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], nest({CONF_FLASHER_KIND: "none"})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == UPDATED
    assert result.get("translation_domain") is None
    translations = await async_get_translations(hass, language, "config_subentries", [DOMAIN])
    assert translations[f"{_SUBENTRY}.abort.{UPDATED}"] == text


@pytest.mark.parametrize(("language", "line"), [("en", "per line"), ("zh-Hans", "每行")])
async def test_the_arguments_are_described_as_the_list_they_are(
    hass: HomeAssistant, language: str, line: str
) -> None:
    """The arguments field is a list with an Add button, not a text area: no "one argument per line"."""
    translations = await async_get_translations(hass, language, "config_subentries", [DOMAIN])
    described = translations[f"{_SUBENTRY}.step.flasher_command.data_description.args"]
    assert line not in described
    assert ("Add" if language == "en" else "添加") in described


@pytest.mark.parametrize(
    ("language", "past", "server"),
    [("en", "Downloaded", "Download server: "), ("zh-Hans", "下载来源", "下载服务器\N{FULLWIDTH COLON}")],
)
async def test_release_notes_do_not_say_downloaded_before_a_download(
    hass: HomeAssistant, gateway: Gateway, tmp_path: Path, language: str, past: str, server: str
) -> None:
    """A firmware just offered: its notes name the server it will come from, not one it was downloaded from."""
    await hass.config.async_update(language=language)
    await register_lights(gateway, "light1")
    await setup_gateway(hass, gateway, [sub("light1", flasher={"kind": "file", "directory": str(tmp_path)})])
    await push(gateway, bytes(range(256)) * 40, "light1")
    await wait_for(hass, lambda: state(hass, "update.light1_firmware").state == STATE_ON)
    entity = hass.data[UPDATE_DOMAIN].get_entity("update.light1_firmware")
    assert entity is not None
    notes = await entity.async_release_notes()
    assert notes is not None
    assert past not in notes
    assert f"{server}127.0.0.1" in notes
