"""Constants of the integration: one place for every key, default and name the HA layer uses."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from .engine import DEFAULT_ROLLBACK_BUDGET, DEFAULT_SOAK_S

DOMAIN: Final = "tencent_iot_gateway"

# -- config entry data (exactly these keys) ----------------------------------------------------------------
CONF_REGION: Final = "region"
CONF_PRODUCT_ID: Final = "product_id"
CONF_DEVICE_NAME: Final = "device_name"


class SecretKey(StrEnum):
    """The data keys that hold secrets (an enum, so no secret-looking name is bound to a literal)."""

    DEVICE = "device_secret"
    PRODUCT = "product_secret"


CONF_DEVICE_SECRET: Final = SecretKey.DEVICE
CONF_PRODUCT_SECRET: Final = SecretKey.PRODUCT
CONF_HOST: Final = "host"
CONF_PORT: Final = "port"
CONF_TLS: Final = "tls"
CONF_CA_CERT: Final = "ca_cert"

# Asked by the custom step only when a product secret is given; never stored (see config_flow.py).
CONF_REGISTRATION_URL: Final = "registration_url"

# -- options ---------------------------------------------------------------------------------------------
CONF_INSTALL_POLICY: Final = "install_policy"
CONF_MAX_DOWNLOADS: Final = "max_downloads"
CONF_MAX_FLASHES: Final = "max_flashes"
CONF_MAX_FIRMWARE_SIZE_MIB: Final = "max_firmware_size_mib"

# The gateway's own firmware (off by default): its version (empty: the integration's) and pushes to it.
CONF_GATEWAY_UPDATES: Final = "gateway_updates"
CONF_GATEWAY_VERSION: Final = "gateway_version"

# Staged rollouts (off by default): a canary group first, a soak time, then batches; halt after failures.
CONF_ROLLOUT: Final = "rollout"
CONF_CANARY_COUNT: Final = "canary_count"
CONF_CANARY_PERCENT: Final = "canary_percent"
CONF_SOAK_MIN: Final = "soak_min"
CONF_MAX_FAILURES: Final = "max_failures"
DEFAULT_CANARY_COUNT: Final = 1
# The options form sizes the canary group one way: a number and its unit. What is stored stays
# `canary_count` or `canary_percent` (exactly one of them), as the engine's settings take it.
CONF_CANARY_SIZE: Final = "canary_size"
CONF_CANARY_UNIT: Final = "canary_unit"


class CanaryUnit(StrEnum):
    """What the canary group's size counts."""

    DEVICES = "devices"
    PERCENT = "percent"


DEFAULT_SOAK_MIN: Final = int(DEFAULT_SOAK_S // 60)  # the engine's default, in the form's unit
DEFAULT_MAX_FAILURES: Final = 1
MAX_ROLLOUT_COUNT: Final = 1000
MAX_SOAK_MIN: Final = 1440

DEFAULT_MAX_DOWNLOADS: Final = 2
DEFAULT_MAX_FLASHES: Final = 2
DEFAULT_MAX_FIRMWARE_SIZE_MIB: Final = 512
MAX_PARALLEL: Final = 16
MAX_FIRMWARE_SIZE_MIB_LIMIT: Final = 4096
MIB: Final = 1024 * 1024


class InstallPolicy(StrEnum):
    """When a pushed firmware is installed."""

    MANUAL = "manual"
    """Wait for the user or an automation (`update.install`)."""

    AUTO = "auto"
    """Install as soon as the cloud pushes it, as Tencent's sample gateway does."""


DEFAULT_INSTALL_POLICY: Final = InstallPolicy.MANUAL

# -- sub-devices (config subentries) ---------------------------------------------------------------------
SUBENTRY_SUB_DEVICE: Final = "sub_device"
CONF_INSTALLED_VERSION: Final = "installed_version"
CONF_FLASHER: Final = "flasher"
CONF_FLASHER_KIND: Final = "flasher_kind"
FLASHER_NONE: Final = "none"

# -- storage ---------------------------------------------------------------------------------------------
STORAGE_VERSION: Final = 1
FIRMWARE_CACHE_DIR: Final = "firmware"

# -- events and actions ----------------------------------------------------------------------------------
EVENT_OTA: Final = f"{DOMAIN}_ota"
# A staged rollout halted (by failures) or resumed (by the user); the console bound or unbound sub-devices.
EVENT_ROLLOUT: Final = f"{DOMAIN}_rollout"
EVENT_CLOUD: Final = f"{DOMAIN}_cloud"
EVENT_FLASH_REQUEST: Final = f"{DOMAIN}_flash_request"

# The update entities' keys (their unique id's end and translation key): a sub-device's and the gateway's own.
UPDATE_KEY: Final = "firmware"
GATEWAY_UPDATE_KEY: Final = "gateway_firmware"

SERVICE_SET_INSTALLED_VERSION: Final = "set_installed_version"
SERVICE_CANCEL_UPDATE: Final = "cancel_update"
SERVICE_CHECK_FOR_UPDATE: Final = "check_for_update"
SERVICE_COMPLETE_FLASH: Final = "complete_flash"
SERVICE_RESUME_ROLLOUT: Final = "resume_rollout"


# -- flashes and the entry's life cycle ------------------------------------------------------------------
# A reload (options, reauth, reconfigure) waits this long for flashes under way: a killed flash can leave a
# sub-device without working firmware. It covers the flashers' own default timeout (600 s) with a margin.
RELOAD_FLASH_WAIT_S: Final = 660.0
# HA gives the stop stage 100 s for everything; flashes get most of it, the rest is for saving and closing.
SHUTDOWN_FLASH_WAIT_S: Final = 60.0
CONF_UNBIND_ON_REMOVE: Final = "unbind_on_remove"
# Pre-flight conditions of a sub-device (all optional): a template that must render true before its job
# downloads and flashes, a maintenance window for installs nobody started by hand, how long a job may wait.
CONF_PREFLIGHT_CONDITION: Final = "preflight_condition"
CONF_MAINTENANCE_START: Final = "maintenance_start"
CONF_MAINTENANCE_END: Final = "maintenance_end"
CONF_PREFLIGHT_TIMEOUT_MIN: Final = "preflight_timeout_min"
MAX_PREFLIGHT_TIMEOUT_MIN: Final = 7 * 24 * 60
# Health check after a flash (all optional), and rolling back to the last good image (kept within a budget).
CONF_HEALTH_TEMPLATE: Final = "health_template"
CONF_HEALTH_VERSION_CHECK: Final = "health_version_check"
CONF_HEALTH_TIMEOUT_MIN: Final = "health_timeout_min"
CONF_ROLLBACK: Final = "rollback"
CONF_ROLLBACK_BUDGET_MIB: Final = "rollback_budget_mib"
DEFAULT_ROLLBACK_BUDGET_MIB: Final = DEFAULT_ROLLBACK_BUDGET // (1024 * 1024)  # the engine's, in MiB
ROLLBACK_DIR: Final = "rollback"
# What the user calls a sub-device, its model and maker (all optional: the device name and product id stand in).
CONF_NAME: Final = "name"
CONF_MODEL: Final = "model"
CONF_MANUFACTURER: Final = "manufacturer"
# The gateway's own device (Home Assistant acting as a device of Tencent Cloud IoT).
MANUFACTURER: Final = "Tencent Cloud IoT"
