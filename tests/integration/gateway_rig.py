"""A gateway registered in the emulator and the entry that reaches it: what the integration tests build on.

The `gateway` fixture (conftest.py) registers one; tests import the types and helpers from here, never from a
conftest.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigSubentryData
from homeassistant.core import HomeAssistant

from custom_components.tencent_iot_gateway.const import (
    CONF_CA_CERT,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_HOST,
    CONF_PORT,
    CONF_PRODUCT_ID,
    CONF_REGION,
    CONF_TLS,
    DOMAIN,
)
from tencent_iot_emulator.emulator import Emulator

GATEWAY_PRODUCT = "GWPROD0001"
GATEWAY_NAME = "gw01"
PRODUCT_SECRET = "ABCDEFGHIJKLMNOPQRSTUVWX"


@dataclass(frozen=True, slots=True)
class Gateway:
    """A gateway registered in the emulator, and how to reach the emulator's TLS broker."""

    emulator: Emulator
    product_id: str
    device_name: str
    secret: str
    ca_pem: str

    @property
    def key(self) -> str:
        """`PID/DN`."""
        return f"{self.product_id}/{self.device_name}"

    @property
    def custom(self) -> dict[str, Any]:
        """The custom step's input for the emulator's mqtts listener."""
        return {
            CONF_HOST: "127.0.0.1",
            CONF_PORT: self.emulator.mqtts_port,
            CONF_TLS: True,
            CONF_CA_CERT: self.ca_pem,
        }

    @property
    def entry_data(self) -> dict[str, Any]:
        """Complete entry data for this gateway."""
        return {
            CONF_REGION: "custom",
            CONF_PRODUCT_ID: self.product_id,
            CONF_DEVICE_NAME: self.device_name,
            CONF_DEVICE_SECRET: self.secret,
        } | self.custom


async def add_entry(
    hass: HomeAssistant,
    data: dict[str, Any],
    *,
    options: dict[str, Any] | None = None,
    subentries: list[ConfigSubentryData] | None = None,
) -> ConfigEntry:
    """Add (and so set up) an entry as if a flow had created it."""
    entry = ConfigEntry(
        data=data,
        discovery_keys=MappingProxyType({}),
        domain=DOMAIN,
        minor_version=1,
        options=options or {},
        source=SOURCE_USER,
        subentries_data=subentries,
        title=f"{data[CONF_DEVICE_NAME]} ({data[CONF_PRODUCT_ID]})",
        unique_id=f"{data[CONF_PRODUCT_ID]}/{data[CONF_DEVICE_NAME]}",
        version=1,
    )
    await hass.config_entries.async_add(entry)
    await hass.async_block_till_done()
    return entry
