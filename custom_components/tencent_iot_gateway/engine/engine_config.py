"""What a `GatewayEngine` is built from, in a few groups rather than a long list of keyword arguments."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.mqtt.auth import SignMethod
from custom_components.tencent_iot_gateway.engine.mqtt.endpoints import BrokerEndpoint
from custom_components.tencent_iot_gateway.engine.mqtt.session import Backoff
from custom_components.tencent_iot_gateway.engine.mqtt.uplink import DEFAULT_UPLINK_RATE
from custom_components.tencent_iot_gateway.engine.ota.flashers.base import Flasher
from custom_components.tencent_iot_gateway.engine.ota.health_check import HealthCheck
from custom_components.tencent_iot_gateway.engine.ota.job_model import ImageCache, ImageFetcher
from custom_components.tencent_iot_gateway.engine.ota.preflight import Preflight
from custom_components.tencent_iot_gateway.engine.ota.rollback_images import RollbackImages
from custom_components.tencent_iot_gateway.engine.stores.halted_rollouts import HaltedRollouts
from custom_components.tencent_iot_gateway.engine.stores.storage import StateStore

OPERATION_TIMEOUT_S = 20.0  # how long a gateway operation or an acknowledgement is waited for


@dataclass(frozen=True, slots=True)
class GatewayLogin:
    """Who logs in, where, and how it signs. `device_secret` is a secret: it stays out of the repr."""

    endpoint: BrokerEndpoint
    gateway: DeviceId
    device_secret: str = field(repr=False)
    sign_method: SignMethod = SignMethod.HMAC_SHA256


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """The connection's pace: reconnect backoff, how long answers are waited for, the uplink budget.

    `uplink_rate`: the connection's budget in messages a second (None: none), see `rate_budget`.
    """

    backoff: Backoff | None = None
    operation_timeout_s: float = OPERATION_TIMEOUT_S
    uplink_rate: float | None = DEFAULT_UPLINK_RATE


@dataclass(frozen=True, slots=True)
class EngineDevices:
    """What the layer above decides for each device: its flasher (None: it cannot be installed), whether a
    push installs at once, its pre-flight gate (engine/ota/preflight.py) and its check after a flash
    (engine/ota/health_check.py); a None gate or check never holds a job."""

    flasher_for: Callable[[DeviceId], Flasher | None]
    auto_install: Callable[[DeviceId], bool]
    preflight_for: Callable[[DeviceId], Preflight | None] | None = None
    health_for: Callable[[DeviceId], HealthCheck | None] | None = None


@dataclass(frozen=True, slots=True)
class EngineStorage:
    """Where the engine fetches and keeps images and its state: `store` for the jobs' records,
    `rollback_images` for the last good image of devices that roll back (None: none kept),
    `halted_rollouts` for halts across restarts (None: in memory only)."""

    store: StateStore
    downloader: ImageFetcher
    cache: ImageCache
    rollback_images: RollbackImages | None = None
    halted_rollouts: HaltedRollouts | None = None
