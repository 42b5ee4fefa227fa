"""The gateway engine: everything that does not need Home Assistant, behind this one public interface.

The Home Assistant layer imports only the names below (`scripts/lint` enforces it with import-linter, and that
nothing under `engine/` imports `homeassistant`). The sub-packages are the engine's rooms:

- `mqtt/`: signing, endpoints, the session driven by the asyncio loop, its uplink budget, registration;
- `gateway/`: sub-device identities and the gateway operations (online, bind, the console's pushes);
- `data_template/`: each bridged sub-device's data-template client (reports, controls, status) and its pacing;
- `ota/`: the OTA jobs and their reports, downloads, the image cache, flashers, and the gates a job passes;
- `stores/`: what survives a restart.

`gateway_engine.GatewayEngine` composes them; it is the one entry point.
"""

from __future__ import annotations

from .data_template.client import DataTemplateClient, DataTemplateHandlers, PropertyRefused
from .data_template.protocol import (
    CODE_FAILED,
    CODE_OK,
    Control,
    Properties,
    PropertyValue,
    Reply,
    StatusReply,
    StatusType,
)
from .engine_config import ConnectionSettings, EngineDevices, EngineStorage, GatewayLogin
from .errors import (
    AuthenticationError,
    CannotConnectError,
    ClockSkewError,
    ConnectCause,
    DataTemplateRefusedError,
    Failure,
    FailureReason,
    FailureValue,
    FieldProblem,
    FlashError,
    InvalidFieldError,
    InvalidFirmwareError,
    JobSuspendedError,
    MalformedDownlinkError,
    NotAGatewayError,
    NotConnectedError,
    OtaError,
    OtaResultCode,
    RegistrationError,
    RegistrationUnreachableError,
    SubscriptionRefusedError,
    TencentIotError,
)
from .gateway.identity import DeviceId, decode_device_secret
from .gateway.operations import RESULT_NOT_BOUND, AllUnbound, SubDevicesChanged
from .gateway_engine import (
    AuthenticationFailed,
    ConnectionChanged,
    EngineEvent,
    GatewayEngine,
    OwnFirmware,
    SubDevice,
    SubDeviceStatus,
    UpdatesBlocked,
)
from .mqtt.endpoints import MQTT_TLS_PORT, BrokerEndpoint, Region, registration_host
from .mqtt.login_check import check_login
from .mqtt.registration import register_device
from .ota.download import Downloader
from .ota.firmware import FirmwareSpec, check_version, url_without_query, validate_version
from .ota.firmware_cache import FirmwareCache
from .ota.flashers import (
    PLACEHOLDERS,
    CommandFlasherConfig,
    FileFlasherConfig,
    Flasher,
    HttpFlasherConfig,
    HttpMethod,
    build_flasher,
    flasher_config_from_dict,
    flasher_kinds,
)
from .ota.flashers.base import check_kind, check_seconds
from .ota.health_check import DEFAULT_HEALTH_TIMEOUT_S, HealthCheck
from .ota.job_phases import HoldKind, JobHold, JobPhase
from .ota.jobs import DOWNLOAD_SHARE, JobSnapshot, JobState, OtaSettings
from .ota.preflight import DEFAULT_PREFLIGHT_TIMEOUT_S, GatePoint, Preflight
from .ota.rollback_images import DEFAULT_ROLLBACK_BUDGET, RollbackImages
from .ota.rollout_policy import DEFAULT_SOAK_S, RolloutHalted, RolloutSettings
from .stores.halted_rollouts import HaltedRollouts

__all__ = [
    "CODE_FAILED",
    "CODE_OK",
    "DEFAULT_HEALTH_TIMEOUT_S",
    "DEFAULT_PREFLIGHT_TIMEOUT_S",
    "DEFAULT_ROLLBACK_BUDGET",
    "DEFAULT_SOAK_S",
    "DOWNLOAD_SHARE",
    "MQTT_TLS_PORT",
    "PLACEHOLDERS",
    "RESULT_NOT_BOUND",
    "AllUnbound",
    "AuthenticationError",
    "AuthenticationFailed",
    "BrokerEndpoint",
    "CannotConnectError",
    "ClockSkewError",
    "CommandFlasherConfig",
    "ConnectCause",
    "ConnectionChanged",
    "ConnectionSettings",
    "Control",
    "DataTemplateClient",
    "DataTemplateHandlers",
    "DataTemplateRefusedError",
    "DeviceId",
    "Downloader",
    "EngineDevices",
    "EngineEvent",
    "EngineStorage",
    "Failure",
    "FailureReason",
    "FailureValue",
    "FieldProblem",
    "FileFlasherConfig",
    "FirmwareCache",
    "FirmwareSpec",
    "FlashError",
    "Flasher",
    "GatePoint",
    "GatewayEngine",
    "GatewayLogin",
    "HaltedRollouts",
    "HealthCheck",
    "HoldKind",
    "HttpFlasherConfig",
    "HttpMethod",
    "InvalidFieldError",
    "InvalidFirmwareError",
    "JobHold",
    "JobPhase",
    "JobSnapshot",
    "JobState",
    "JobSuspendedError",
    "MalformedDownlinkError",
    "NotAGatewayError",
    "NotConnectedError",
    "OtaError",
    "OtaResultCode",
    "OtaSettings",
    "OwnFirmware",
    "Preflight",
    "Properties",
    "PropertyRefused",
    "PropertyValue",
    "Region",
    "RegistrationError",
    "RegistrationUnreachableError",
    "Reply",
    "RollbackImages",
    "RolloutHalted",
    "RolloutSettings",
    "StatusReply",
    "StatusType",
    "SubDevice",
    "SubDeviceStatus",
    "SubDevicesChanged",
    "SubscriptionRefusedError",
    "TencentIotError",
    "UpdatesBlocked",
    "build_flasher",
    "check_kind",
    "check_login",
    "check_seconds",
    "check_version",
    "decode_device_secret",
    "flasher_config_from_dict",
    "flasher_kinds",
    "register_device",
    "registration_host",
    "url_without_query",
    "validate_version",
]
