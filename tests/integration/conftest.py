"""Fixtures of the integration tests: a gateway registered in the emulator, and entry data that reaches it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
import logging
from types import MappingProxyType
from typing import Any
from unittest.mock import AsyncMock, patch

from homeassistant.config_entries import SOURCE_USER, ConfigEntry, ConfigEntryState, ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.helpers import frame
import pytest

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
from custom_components.tencent_iot_gateway.sensor import OtaStateSensor
from tencent_iot_emulator.emulator import Emulator

GATEWAY_PRODUCT = "GWPROD0001"
GATEWAY_NAME = "gw01"
PRODUCT_SECRET = "ABCDEFGHIJKLMNOPQRSTUVWX"
# What Home Assistant logs when an integration uses something it is about to remove (frame.report_usage and
# the deprecation helpers): a bug in this integration, however green the test is otherwise.
DEPRECATION_MARKERS = (
    "will stop working in Home Assistant",
    "is deprecated",
    "deprecated and will be removed",
)


@pytest.fixture(autouse=True)
def fail_on_home_assistant_deprecations(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail any test during which Home Assistant reported a deprecated use (each report, not just the first)."""
    # report_usage logs each integration's misuse once per process: forget earlier tests' reports.
    frame._REPORTED_INTEGRATIONS.clear()
    yield
    reported = [
        record.getMessage()
        for record in caplog.get_records("call") + caplog.get_records("setup")
        if record.levelno >= logging.WARNING
        and any(marker in record.getMessage() for marker in DEPRECATION_MARKERS)
    ]
    if reported:
        pytest.fail(f"Home Assistant reported deprecated use: {reported}", pytrace=False)


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


@pytest.fixture
async def gateway(hass: HomeAssistant, emulator: Emulator) -> AsyncIterator[Gateway]:
    """A gateway product (with a product secret, for dynamic registration) and one device of it.

    On teardown the integration's entries are unloaded while the emulator still runs (it stops next).
    """
    await emulator.console.add_product(GATEWAY_PRODUCT, PRODUCT_SECRET)
    credentials = await emulator.console.add_device(GATEWAY_PRODUCT, GATEWAY_NAME)
    ca_pem = emulator.ca_file.read_text(encoding="utf-8")
    yield Gateway(emulator, GATEWAY_PRODUCT, GATEWAY_NAME, credentials.device_secret, ca_pem)
    for entry in hass.config_entries.async_entries(DOMAIN):
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


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


@pytest.fixture
def mock_setup_entry() -> Iterator[AsyncMock]:
    """Config flow tests stop at the entry: setting it up (and unloading it) is tested elsewhere."""
    with (
        patch("custom_components.tencent_iot_gateway.async_setup_entry", return_value=True) as mock,
        patch("custom_components.tencent_iot_gateway.async_unload_entry", return_value=True),
    ):
        yield mock


@pytest.fixture
def ota_state_sensors_enabled() -> Iterator[None]:
    """The OTA state sensor is disabled by default; tests that read it enable it as a user would."""
    with patch.object(OtaStateSensor, "_attr_entity_registry_enabled_default", True):
        yield
