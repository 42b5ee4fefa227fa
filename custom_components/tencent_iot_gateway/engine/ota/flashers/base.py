"""What every flasher shares: the interface, the argument templates and the settings stored per sub-device.

A flasher puts a verified image on a sub-device. Its settings are small frozen dataclasses with `to_dict()` /
`from_dict()`, so the integration can keep them in a config entry; `from_dict` validates every field and names
the bad one (`InvalidFieldError`). Each kind registers itself with `register_flasher_kind`, so a kind defined
elsewhere (the integration's "automation" flasher) plugs into the same `flasher_config_from_dict` /
`build_flasher`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import math
from pathlib import Path
import string
from typing import Any, ClassVar, Final, Protocol, runtime_checkable

import aiohttp

from custom_components.tencent_iot_gateway.engine.errors import FieldProblem, InvalidFieldError
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec

PLACEHOLDERS: frozenset[str] = frozenset({"path", "product_id", "device_name", "version", "md5", "size"})
"""The names a command argument or URL template may use, as `{name}`."""


class Flasher(Protocol):
    """Puts a verified image on one sub-device."""

    async def flash(
        self, image: Path, target: DeviceId, firmware: FirmwareSpec, progress: Callable[[int], None]
    ) -> str:
        """Flash `image` (the verified `firmware`) onto `target`; return the version it now runs.

        `progress` takes a whole percent 0..100. Raises `FlashError` with a message fit for the cloud's
        `result_msg` and the UI.
        """


@runtime_checkable
class VersionReader(Protocol):
    """A flasher that can ask a sub-device which version it runs (e.g. the http flasher's `version_url`).

    Used after a restart to settle a flash the shutdown interrupted: if the device runs the new version, the
    cloud hears `done` rather than a failure.
    """

    async def read_version(self, target: DeviceId, firmware: FirmwareSpec) -> str | None:
        """The version `target` reports now, or None when it cannot be asked or does not answer."""


class FlasherConfig(Protocol):
    """The stored settings of one flasher kind."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-able data, `kind` included."""


type ConfigParser = Callable[[Mapping[str, Any]], FlasherConfig]
type FlasherFactory = Callable[[Any, aiohttp.ClientSession], Flasher]


@dataclass(frozen=True, slots=True)
class _Kind:
    config_type: type[Any]
    parse: ConfigParser
    build: FlasherFactory


_KINDS: dict[str, _Kind] = {}


def register_flasher_kind(
    kind: str, config_type: type[Any], parse: ConfigParser, build: FlasherFactory
) -> None:
    """Make `kind` known to `flasher_config_from_dict` and `build_flasher` (a later call replaces it)."""
    _KINDS[kind] = _Kind(config_type, parse, build)


def flasher_kinds() -> list[str]:
    """The kinds that can be configured, for a selector."""
    return sorted(_KINDS)


def flasher_config_from_dict(data: Mapping[str, Any]) -> FlasherConfig:
    """Parse stored flasher settings of any registered kind."""
    if not isinstance(data, Mapping):
        raise InvalidFieldError("flasher", FieldProblem.INVALID)
    kind = data.get("kind")
    registered = _KINDS.get(kind) if isinstance(kind, str) else None
    if registered is None:
        raise InvalidFieldError("kind", FieldProblem.CHOICE, allowed=", ".join(flasher_kinds()))
    return registered.parse(data)


def build_flasher(config: FlasherConfig, session: aiohttp.ClientSession) -> Flasher:
    """The flasher for `config`; `session` is used by the kinds that speak HTTP (its TLS settings apply)."""
    registered = _KINDS.get(config.kind)
    if registered is None or not isinstance(config, registered.config_type):
        raise InvalidFieldError("kind", FieldProblem.CHOICE, allowed=", ".join(flasher_kinds()))
    return registered.build(config, session)


# --- templates -------------------------------------------------------------------------------------------


def validate_template(template: object, field: str) -> str:
    """Return `template` if it only uses known `{placeholders}` (no attribute access, no format spec)."""
    if not isinstance(template, str):
        raise InvalidFieldError(field, FieldProblem.INVALID)
    if "\x00" in template:
        raise InvalidFieldError(field, FieldProblem.CONTROL_CHARACTER)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        raise InvalidFieldError(field, FieldProblem.TEMPLATE_BRACES, open="{{", close="}}") from None
    allowed = ", ".join(f"{{{name}}}" for name in sorted(PLACEHOLDERS))
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS or spec or conversion:
            raise InvalidFieldError(
                field, FieldProblem.UNKNOWN_PLACEHOLDER, name=f"{{{name}}}", allowed=allowed
            )
    return template


def render_template(
    template: str, values: Mapping[str, str], *, quote: Callable[[str], str] | None = None
) -> str:
    """Substitute the placeholders of a validated template; `quote` escapes each value (URLs)."""
    parts: list[str] = []
    for literal, name, _spec, _conversion in string.Formatter().parse(template):
        parts.append(literal)
        if name is not None:
            value = values[name]
            parts.append(quote(value) if quote is not None else value)
    return "".join(parts)


def template_values(image: Path, target: DeviceId, firmware: FirmwareSpec) -> dict[str, str]:
    """The placeholder values for one flash."""
    return {
        "path": str(image),
        "product_id": target.product_id,
        "device_name": target.device_name,
        "version": firmware.version,
        "md5": firmware.md5.lower(),
        "size": str(firmware.size),
    }


# --- field validation shared by the config dataclasses --------------------------------------------------


SECONDS_MIN: Final = 0.01
"""The shortest time a flasher setting takes (forms ask for more: their fields have their own minimum)."""


def check_seconds(
    value: object, field: str, *, minimum: float = SECONDS_MIN, maximum: float = 86_400.0
) -> float:
    """A finite number of seconds from `minimum` to `maximum`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFieldError(field, FieldProblem.NOT_A_NUMBER)
    if not math.isfinite(value) or value < minimum or value > maximum:
        raise InvalidFieldError(field, FieldProblem.OUT_OF_RANGE, min=f"{minimum:g}", max=f"{maximum:g}")
    return float(value)


def optional_text(value: object, field: str) -> str | None:
    """None, or a non-empty single-line string."""
    return None if value is None else check_text(value, field)


def check_text(value: object, field: str) -> str:
    """A non-empty single-line string."""
    if not isinstance(value, str) or not value:
        raise InvalidFieldError(field, FieldProblem.REQUIRED)
    if any(ch in value for ch in "\x00\r\n"):
        raise InvalidFieldError(field, FieldProblem.SINGLE_LINE)
    return value


def check_kind(data: Mapping[str, Any], kind: str) -> None:
    """Refuse data stored for another kind."""
    if data.get("kind", kind) != kind:
        raise InvalidFieldError("kind", FieldProblem.CHOICE, allowed=kind)
