"""Fixtures shared by every test."""

from __future__ import annotations

import importlib

import pytest

pytest_plugins = ["tests.emulator_fixtures"]

# The harness ships a `custom_components` package of its own: importing ours first makes it the one that
# Home Assistant's loader finds.
importlib.import_module("custom_components.tencent_iot_gateway")


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load this integration in every test."""


# Tencent allows one connect per device per 5 s (engine/mqtt/session.py): the suite connects the same test devices
# over and over, so it waits a token interval; tests of the rule itself set their own.
TEST_CONNECT_INTERVAL_S = 0.01


@pytest.fixture(autouse=True)
def short_connect_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shrink the process-wide connect interval and forget the previous test's connects."""
    session = importlib.import_module("custom_components.tencent_iot_gateway.engine.mqtt.session")
    monkeypatch.setattr(session, "CONNECT_INTERVAL_S", TEST_CONNECT_INTERVAL_S)
    monkeypatch.setattr(session, "_last_connect", {})
