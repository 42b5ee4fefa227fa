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
