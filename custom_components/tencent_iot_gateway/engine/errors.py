"""The engine's exception hierarchy; callers catch these, never a library's internals.

OTA failures carry Tencent's result code, so the code reported to the cloud is decided here, once.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class TencentIotError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidFieldError(TencentIotError, ValueError):
    """A value given to the engine is malformed; `field` names which one, for a form error or a log line."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class OtaResultCode(IntEnum):
    """The failure codes of `report_progress` (spec §3); sent to the cloud as strings."""

    DOWNLOAD_TIMEOUT = -1
    FILE_NOT_FOUND = -2
    SIGNATURE_EXPIRED = -3
    MD5_MISMATCH = -4
    UPGRADE_FAILED = -5


class OtaError(TencentIotError):
    """An OTA job failed; `code` is what the cloud is told, `str(self)` its `result_msg`.

    Messages never hold a signed URL's query or any secret: they go to the cloud, the log and the UI.
    `translation_key` names the failure for the UI, which words it in the user's language (the English
    message is only its detail where the words come from elsewhere: a flasher's output, a server's answer).
    """

    code: OtaResultCode = OtaResultCode.UPGRADE_FAILED
    translation_key: ClassVar[str] = "upgrade_failed"

    def __init__(self, message: str = "", *, http_status: int | None = None) -> None:
        """`http_status`: what the firmware server answered, when that is the failure (a placeholder)."""
        super().__init__(message)
        self.http_status = http_status


class DownloadTimeoutError(OtaError):
    """The download failed for network reasons after every retry."""

    code = OtaResultCode.DOWNLOAD_TIMEOUT
    translation_key = "download_failed"


class DownloadRefusedError(DownloadTimeoutError):
    """The firmware server answered an HTTP status that no retry or fresh URL can help (not 403/404/5xx)."""

    translation_key = "download_refused"


class FirmwareNotFoundError(OtaError):
    """The server answered 404 for the firmware URL."""

    code = OtaResultCode.FILE_NOT_FOUND
    translation_key = "firmware_not_found"


class UrlExpiredError(OtaError):
    """The server answered 403: the signed URL has expired; a re-report of the version gets a fresh one."""

    code = OtaResultCode.SIGNATURE_EXPIRED
    translation_key = "url_expired"


class TaskEndedError(UrlExpiredError):
    """The URL expired and a re-report brought no fresh push: the cloud's upgrade task has ended.

    Typical of a manual install long after the push (spec §3a): only a new task in the console helps.
    """

    translation_key = "task_ended"
    MESSAGE = (
        "the firmware URL expired and the cloud sent no fresh one: its upgrade task has ended; "
        "create a new upgrade task in the console"
    )

    def __init__(self, message: str = MESSAGE) -> None:
        """The fixed message is also how a job's snapshot tells this failure apart (see ota_jobs)."""
        super().__init__(message)


class Md5MismatchError(OtaError):
    """The downloaded image does not hash to the announced MD5."""

    code = OtaResultCode.MD5_MISMATCH
    translation_key = "md5_mismatch"


class InsufficientSpaceError(OtaError):
    """Not enough free disk space to store the image; reported as an upgrade failure with its own message."""

    code = OtaResultCode.UPGRADE_FAILED
    translation_key = "insufficient_space"


class FlashError(OtaError):
    """The flasher could not put the image on the sub-device."""

    code = OtaResultCode.UPGRADE_FAILED
    translation_key = "flash_failed"


class InvalidFirmwareError(OtaError):
    """An `update_firmware` push is malformed (bad URL, MD5, size or version)."""

    code = OtaResultCode.UPGRADE_FAILED
    translation_key = "invalid_firmware"


class PreflightTimeoutError(OtaError):
    """A pre-flight condition of the sub-device stayed false until its timeout: nothing was flashed."""

    code = OtaResultCode.UPGRADE_FAILED
    translation_key = "preflight_timeout"


class RolloutHaltedError(OtaError):
    """The staged rollout this job belonged to halted after too many of its devices failed."""

    code = OtaResultCode.UPGRADE_FAILED
    translation_key = "rollout_halted"


class HealthCheckError(OtaError):
    """The flash returned, but the sub-device did not prove healthy in time: never reported `done`."""

    code = OtaResultCode.UPGRADE_FAILED
    translation_key = "health_check_failed"


class JobSuspendedError(TencentIotError):
    """The job stopped with its gateway (a reload, a stop) and resumes when the gateway starts again."""


class AuthenticationError(TencentIotError):
    """The broker refused the gateway's credentials (CONNACK 4 or 5): a new secret is needed."""


class CannotConnectError(TencentIotError):
    """The broker could not be reached, or the TLS handshake failed."""


class NotConnectedError(TencentIotError):
    """A message could not be sent because the MQTT session is down."""


class OperationTimeoutError(TencentIotError):
    """The cloud did not answer in time."""


class SubscriptionRefusedError(TencentIotError):
    """The broker refused subscriptions (SUBACK failure): not this device's topics, or over a limit."""

    def __init__(self, topics: list[str]) -> None:
        super().__init__(f"the broker refused the subscription to {', '.join(topics)}")
        self.topics = tuple(topics)


class NotAGatewayError(TencentIotError):
    """The device logs in, but the cloud refuses it the gateway protocol: its product is not a gateway product."""


class PayloadTooLargeError(TencentIotError):
    """A message is over Tencent's publish size limit (16 KB); it was not sent."""


class GatewayOperationError(TencentIotError):
    """The cloud answered a gateway operation with a failure `code` (spec §2)."""

    def __init__(self, operation: str, device: str, code: int) -> None:
        super().__init__(f"{operation} of {device} failed: {describe_gateway_result(code)} (result {code})")
        self.operation = operation
        self.device = device
        self.code = code


_GATEWAY_RESULTS = {
    -1: "the sub-device is not bound to this gateway",
    -2: "system error in the cloud",
    801: "a parameter is wrong",
    802: "no such device",
    803: "the signature is wrong (check the sub-device secret)",
    804: "the signature method is not supported",
    805: "the signature has expired (check the clock)",
    806: "the sub-device is bound to another gateway",
    807: "the sub-device cannot be bound",
    808: "the operation is not permitted",
    809: "the sub-device is already bound to this gateway",
}


def describe_gateway_result(code: int) -> str:
    """Words for a gateway result code; the cloud sends 809 with either sign, hence the absolute value."""
    return _GATEWAY_RESULTS.get(code) or _GATEWAY_RESULTS.get(abs(code), "unknown error")


class RegistrationError(TencentIotError):
    """The cloud refused a dynamic registration; `message` is the cloud's own words (no secret)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClockSkewError(RegistrationError):
    """The registration was refused, and the host's clock is off: its signed timestamp is what failed.

    `skew_s`: how far the host's clock is ahead of the server's (negative: behind), from the reply's `Date`
    header; None when the reply had none and only the refusal's code says so.
    """

    def __init__(self, message: str, skew_s: float | None) -> None:
        super().__init__(message)
        self.skew_s = skew_s


class RegistrationUnreachableError(TencentIotError):
    """The registration endpoint could not be reached or did not answer with JSON."""


class MalformedDownlinkError(TencentIotError):
    """A data-template message from the cloud that cannot be understood; nothing is done or answered for it.

    `reason` says what is wrong, for the log and the diagnostics; it never quotes the payload's values.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(f"malformed data-template message: {reason}")
        self.reason = reason


class DataTemplateRefusedError(TencentIotError):
    """The cloud answered a data-template request (`get_status`, `clear_control`, ...) with a non-zero code."""

    def __init__(self, method: str, code: int, status: str) -> None:
        super().__init__(f"the cloud refused {method}: code {code} ({status})")
        self.method = method
        self.code = code
        self.status = status
