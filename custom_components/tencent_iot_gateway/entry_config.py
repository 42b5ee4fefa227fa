"""The entry's configuration as the runtime and the engine take it, parsed and validated in one place.

The gateway's id, its broker, the CA and the registration URL (the config flow's fields); the sub-devices of
the config subentries; the OTA and rollout settings of the options; where the entry keeps its files. Everything
here raises the engine's `InvalidFieldError` naming the field; the flows turn it into a form error. Dynamic
registration and the test login are the engine's (`engine.register_device`, `engine.check_login`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import logging
from pathlib import Path
import re
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant

from .const import (
    CONF_CA_CERT,
    CONF_CANARY_COUNT,
    CONF_CANARY_PERCENT,
    CONF_DEVICE_NAME,
    CONF_DEVICE_SECRET,
    CONF_FLASHER,
    CONF_HOST,
    CONF_INSTALLED_VERSION,
    CONF_MANUFACTURER,
    CONF_MAX_DOWNLOADS,
    CONF_MAX_FAILURES,
    CONF_MAX_FIRMWARE_SIZE_MIB,
    CONF_MAX_FLASHES,
    CONF_MODEL,
    CONF_NAME,
    CONF_PORT,
    CONF_PRODUCT_ID,
    CONF_REGION,
    CONF_REGISTRATION_URL,
    CONF_ROLLOUT,
    CONF_SOAK_MIN,
    CONF_TLS,
    CONF_UNBIND_ON_REMOVE,
    DEFAULT_CANARY_COUNT,
    DEFAULT_MAX_DOWNLOADS,
    DEFAULT_MAX_FAILURES,
    DEFAULT_MAX_FIRMWARE_SIZE_MIB,
    DEFAULT_MAX_FLASHES,
    DEFAULT_SOAK_MIN,
    DOMAIN,
    FIRMWARE_CACHE_DIR,
    MIB,
    SUBENTRY_SUB_DEVICE,
)
from .engine import (
    BrokerEndpoint,
    DeviceId,
    FieldProblem,
    InvalidFieldError,
    OtaSettings,
    Region,
    RolloutSettings,
    decode_device_secret,
    registration_host,
)
from .ota.health_templates import NO_HEALTH_CHECK, HealthConfig
from .ota.preflight_templates import NO_PREFLIGHT, PreflightConfig

_LOGGER = logging.getLogger(__name__)

# A product ID as Tencent's console issues it. The engine takes any short alphanumeric ID (what the cloud
# sends is its own business), but one the user types is held to this, so that a typo ("lightpid") is caught on
# the form rather than as a refused login or a device that never comes online.
_TENCENT_PRODUCT_ID = re.compile(r"[A-Z0-9]{10}")


def is_tencent_product_id(text: str) -> bool:
    """Whether `text` has the shape of a Tencent product ID: 10 upper-case letters and digits."""
    return _TENCENT_PRODUCT_ID.fullmatch(text) is not None


def device_id_from(data: Mapping[str, Any]) -> DeviceId:
    """The gateway's id from entry data; raises `InvalidFieldError` naming the bad field."""
    return DeviceId(str(data.get(CONF_PRODUCT_ID, "")).strip(), str(data.get(CONF_DEVICE_NAME, "")).strip())


def check_device_secret(secret: str) -> str:
    """A device secret that can sign (base64, at most 64 characters)."""
    decode_device_secret(secret, CONF_DEVICE_SECRET)
    return secret


def check_ca_pem(text: str | None) -> str | None:
    """The PEM text of one or more CA certificates, or None when empty."""
    if text is None or not text.strip():
        return None
    try:
        # Raises ValueError for text holding no certificate too, so a success means at least one.
        x509.load_pem_x509_certificates(text.strip().encode())
    except ValueError:
        raise InvalidFieldError(CONF_CA_CERT, FieldProblem.NOT_PEM) from None
    return text.strip() + "\n"


def endpoint_from(data: Mapping[str, Any]) -> BrokerEndpoint:
    """The broker of an entry: a Tencent region's, or the custom host/port/TLS/CA."""
    region = Region(data[CONF_REGION])
    if region is not Region.CUSTOM:
        return BrokerEndpoint.for_region(region, data[CONF_PRODUCT_ID])
    return BrokerEndpoint(
        host=str(data[CONF_HOST]).strip(),
        port=int(data[CONF_PORT]),
        tls=bool(data[CONF_TLS]),
        ca_pem=check_ca_pem(data.get(CONF_CA_CERT)),
    )


def registration_url_for(data: Mapping[str, Any]) -> str:
    """Where dynamic registration goes.

    Tencent's regions use Tencent's documented registration hosts. A custom (private) deployment has no
    documented one, so the user gives its HTTPS base URL; when left empty it is `https://<mqtt host>`.
    """
    region = Region(data[CONF_REGION])
    if region is not Region.CUSTOM:
        host = registration_host(region)
        if host is None:
            raise InvalidFieldError(CONF_REGION, FieldProblem.NO_REGISTRATION_IN_REGION)
        return f"https://{host}"
    given = str(data.get(CONF_REGISTRATION_URL) or "").strip()
    url = given or f"https://{str(data[CONF_HOST]).strip()}"
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path not in {"", "/"} or parts.query:
        raise InvalidFieldError(CONF_REGISTRATION_URL, FieldProblem.HTTPS_BASE_URL)
    return f"https://{parts.netloc}"


@dataclass(frozen=True, slots=True)
class SubDeviceConfig:
    """A sub-device as its subentry describes it."""

    subentry_id: str
    device: DeviceId
    installed_version: str | None  # None: unknown (adopted from the cloud; the user has not said)
    secret: str | None
    flasher: Mapping[str, Any] | None
    unbind_on_remove: bool
    name: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    preflight: PreflightConfig = NO_PREFLIGHT
    health: HealthConfig = NO_HEALTH_CHECK

    def __repr__(self) -> str:
        """The secret stays out of logs."""
        return f"SubDeviceConfig({self.device}, subentry={self.subentry_id})"

    @property
    def display_name(self) -> str:
        """What the user calls it; its device name otherwise."""
        return self.name or self.device.device_name

    @property
    def device_model(self) -> tuple[str, str | None]:
        """(model, model_id) for the device registry: the product id is shown once, as the model id of a
        named model or as the model itself."""
        if self.model:
            return self.model, self.device.product_id
        return self.device.product_id, None

    @classmethod
    def from_subentry(cls, subentry_id: str, data: Mapping[str, Any]) -> SubDeviceConfig:
        """Parse a subentry's data (raises `InvalidFieldError`)."""
        flasher = data.get(CONF_FLASHER)
        return cls(
            subentry_id=subentry_id,
            device=device_id_from(data),
            installed_version=str(data.get(CONF_INSTALLED_VERSION) or "") or None,
            secret=data.get(CONF_DEVICE_SECRET) or None,
            flasher=flasher if isinstance(flasher, Mapping) else None,
            unbind_on_remove=bool(data.get(CONF_UNBIND_ON_REMOVE, False)),
            name=_optional_text(data.get(CONF_NAME)),
            model=_optional_text(data.get(CONF_MODEL)),
            manufacturer=_optional_text(data.get(CONF_MANUFACTURER)),
            preflight=PreflightConfig.from_data(data),
            health=HealthConfig.from_data(data),
        )


def _optional_text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def registry_fields(config: SubDeviceConfig) -> tuple[str, tuple[str, str | None], str | None]:
    return config.display_name, config.device_model, config.manufacturer


def sub_device_configs(entry: ConfigEntry) -> dict[DeviceId, SubDeviceConfig]:
    """Every valid sub-device subentry of an entry (an invalid one is logged and skipped)."""
    configs: dict[DeviceId, SubDeviceConfig] = {}
    for subentry_id, subentry in entry.subentries.items():
        if subentry.subentry_type != SUBENTRY_SUB_DEVICE:
            continue
        try:
            config = SubDeviceConfig.from_subentry(subentry_id, subentry.data)
        except InvalidFieldError as err:
            _LOGGER.error("Ignoring sub-device %s: %s", subentry.title, err)
            continue
        configs[config.device] = config
    return configs


def ota_settings(options: Mapping[str, Any]) -> OtaSettings:
    """The scheduler settings the options ask for."""
    return OtaSettings(
        max_downloads=int(options.get(CONF_MAX_DOWNLOADS, DEFAULT_MAX_DOWNLOADS)),
        max_flashes=int(options.get(CONF_MAX_FLASHES, DEFAULT_MAX_FLASHES)),
        max_firmware_size=int(options.get(CONF_MAX_FIRMWARE_SIZE_MIB, DEFAULT_MAX_FIRMWARE_SIZE_MIB)) * MIB,
    )


def rollout_settings(options: Mapping[str, Any]) -> RolloutSettings | None:
    """The staged rollout the options ask for, or None when it is off; its batches are `max_flashes` big."""
    if not options.get(CONF_ROLLOUT):
        return None
    return RolloutSettings(
        canary_count=int(options.get(CONF_CANARY_COUNT, DEFAULT_CANARY_COUNT)),
        canary_percent=int(options.get(CONF_CANARY_PERCENT, 0)),
        soak_s=float(options.get(CONF_SOAK_MIN, DEFAULT_SOAK_MIN)) * 60,
        max_failures=int(options.get(CONF_MAX_FAILURES, DEFAULT_MAX_FAILURES)),
        batch_size=int(options.get(CONF_MAX_FLASHES, DEFAULT_MAX_FLASHES)),
    )


def cache_directory(hass: HomeAssistant, entry_id: str) -> Path:
    """Where an entry's firmware images are kept (HA's cache folder: not backed up, can be rebuilt)."""
    return Path(hass.config.cache_path(DOMAIN, entry_id, FIRMWARE_CACHE_DIR))
