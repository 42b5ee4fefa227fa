"""Flashers: the step that puts a verified firmware image on a sub-device.

Three kinds come with the engine (`command`, `http`, `file`), each registered with `register_flasher_kind` and
built by `build_flasher`. (The integration's `automation` kind needs Home Assistant and is handled beside
these, in the integration's `flashers.py`.)
"""

from __future__ import annotations

from typing import Any

import aiohttp

from custom_components.tencent_iot_gateway.engine.ota.flashers.base import (
    PLACEHOLDERS,
    Flasher,
    FlasherConfig,
    build_flasher,
    flasher_config_from_dict,
    flasher_kinds,
    register_flasher_kind,
)
from custom_components.tencent_iot_gateway.engine.ota.flashers.command import (
    CommandFlasher,
    CommandFlasherConfig,
)
from custom_components.tencent_iot_gateway.engine.ota.flashers.file import (
    FileFlasher,
    FileFlasherConfig,
    image_file_name,
)
from custom_components.tencent_iot_gateway.engine.ota.flashers.http_device import (
    HttpFlasher,
    HttpFlasherConfig,
    HttpMethod,
)

__all__ = [
    "PLACEHOLDERS",
    "CommandFlasher",
    "CommandFlasherConfig",
    "FileFlasher",
    "FileFlasherConfig",
    "Flasher",
    "FlasherConfig",
    "HttpFlasher",
    "HttpFlasherConfig",
    "HttpMethod",
    "build_flasher",
    "flasher_config_from_dict",
    "flasher_kinds",
    "image_file_name",
    "register_flasher_kind",
]


def _build_command(config: Any, session: aiohttp.ClientSession) -> Flasher:
    return CommandFlasher(config)


def _build_http(config: Any, session: aiohttp.ClientSession) -> Flasher:
    return HttpFlasher(config, session)


def _build_file(config: Any, session: aiohttp.ClientSession) -> Flasher:
    return FileFlasher(config)


register_flasher_kind(
    CommandFlasherConfig.kind, CommandFlasherConfig, CommandFlasherConfig.from_dict, _build_command
)
register_flasher_kind(HttpFlasherConfig.kind, HttpFlasherConfig, HttpFlasherConfig.from_dict, _build_http)
register_flasher_kind(FileFlasherConfig.kind, FileFlasherConfig, FileFlasherConfig.from_dict, _build_file)
