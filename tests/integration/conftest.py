"""Fixtures of the integration tests: a gateway registered in the emulator (its type and the entry helper are in
gateway_rig.py), no deprecated use of Home Assistant, and the few patches some tests need."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
import logging
from unittest.mock import AsyncMock, patch

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import frame
import pytest

from custom_components.tencent_iot_gateway.const import DOMAIN
from custom_components.tencent_iot_gateway.sensor import OtaStateSensor
from tencent_iot_emulator.emulator import Emulator

from .gateway_rig import GATEWAY_NAME, GATEWAY_PRODUCT, PRODUCT_SECRET, Gateway

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
