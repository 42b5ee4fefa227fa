"""The engine's exception hierarchy; callers catch these, never a library's internals.

OTA failures carry Tencent's result code, so the code reported to the cloud is decided here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import ClassVar, Final


class TencentIotError(Exception):
    """Base of every error the engine raises on purpose."""


class FieldProblem(StrEnum):
    """What is wrong with a value; each is a form's error key (its words in every language are in the
    integration's translations), with the placeholders `InvalidFieldError.placeholders` fills."""

    REQUIRED = "required"
    TOO_LONG = "too_long"  # {length}, {max}
    TOO_SHORT = "too_short"  # {min}
    OUT_OF_RANGE = "out_of_range"  # {min}, {max}
    NOT_A_NUMBER = "not_a_number"
    TOO_MANY = "too_many"  # {max}
    CHOICE = "choice"  # {allowed}
    PRODUCT_ID_CHARACTERS = "product_id_characters"
    DEVICE_NAME_CHARACTERS = "device_name_characters"
    NOT_BASE64 = "not_base64"
    SECRET_EMPTY = "secret_empty"  # noqa: S105 (an error key, not a secret)
    NOT_ASCII = "not_ascii"
    SINGLE_LINE = "single_line"
    URL_SCHEME = "url_scheme"
    HTTPS_BASE_URL = "https_base_url"
    HOST_NAME = "host_name"
    ABSOLUTE_PATH = "absolute_path"
    TEMPLATE_BRACES = "template_braces"  # {open}, {close}: a translation cannot hold braces itself
    UNKNOWN_PLACEHOLDER = "unknown_placeholder"  # {name}, {allowed}
    NOT_PEM = "not_pem"
    CA_UNUSABLE = "ca_unusable"
    NO_REGISTRATION_IN_REGION = "no_registration_in_region"
    CUSTOM_REGION_NEEDS_HOST = "custom_region_needs_host"
    TIME_OF_DAY = "time_of_day"
    WINDOW_INCOMPLETE = "window_incomplete"
    WINDOW_EMPTY = "window_empty"
    ROLLBACK_NEEDS_CHECK = "rollback_needs_check"
    CONTROL_CHARACTER = "control_character"
    DEVICE_KEY = "device_key"
    REGISTRATION_UNREADABLE = "registration_unreadable"
    CERTIFICATE_DEVICE = "certificate_device"
    PROPERTY_IDENTIFIER = "property_identifier"  # {name}: not of a data-template identifier's shape
    DUPLICATE_PROPERTY = "duplicate_property"  # {name}: two roles of a bridge name the same property
    INVALID = "invalid"  # stored data of the wrong type: no form produces it


# The English of each problem, for logs and the exceptions of callers without a UI.
_FIELD_ENGLISH: Final[Mapping[FieldProblem, str]] = {
    FieldProblem.REQUIRED: "must not be empty",
    FieldProblem.TOO_LONG: "is {length} characters long; at most {max} are allowed",
    FieldProblem.TOO_SHORT: "must be at least {min} characters long",
    FieldProblem.OUT_OF_RANGE: "must be from {min} to {max}",
    FieldProblem.NOT_A_NUMBER: "must be a number",
    FieldProblem.TOO_MANY: "may hold at most {max} entries",
    FieldProblem.CHOICE: "must be one of: {allowed}",
    FieldProblem.PRODUCT_ID_CHARACTERS: "may hold only letters and digits",
    FieldProblem.DEVICE_NAME_CHARACTERS: "may hold only letters, digits and _ - . : @",
    FieldProblem.NOT_BASE64: "is not valid base64 (copy it again from the console)",
    FieldProblem.SECRET_EMPTY: "decodes to nothing",
    FieldProblem.NOT_ASCII: "may hold only ASCII characters",
    FieldProblem.SINGLE_LINE: "must be a single line without control characters",
    FieldProblem.URL_SCHEME: "must be an http:// or https:// URL",
    FieldProblem.HTTPS_BASE_URL: "must be an https:// base URL with no path",
    FieldProblem.HOST_NAME: "is not a host name or IP address",
    FieldProblem.ABSOLUTE_PATH: "must be an absolute path",
    FieldProblem.TEMPLATE_BRACES: "has an unmatched brace; write {open} or {close} for a literal one",
    FieldProblem.UNKNOWN_PLACEHOLDER: "uses the unknown placeholder {name}; allowed: {allowed}",
    FieldProblem.NOT_PEM: "is not PEM certificate text",
    FieldProblem.CA_UNUSABLE: "cannot be used as a trust anchor",
    FieldProblem.NO_REGISTRATION_IN_REGION: "Tencent documents no dynamic registration in this region",
    FieldProblem.CUSTOM_REGION_NEEDS_HOST: "a custom region needs an explicit host",
    FieldProblem.TIME_OF_DAY: "is not a time of day (HH:MM)",
    FieldProblem.WINDOW_INCOMPLETE: "a maintenance window needs both a start and an end",
    FieldProblem.WINDOW_EMPTY: "the window must not end when it starts",
    FieldProblem.ROLLBACK_NEEDS_CHECK: "a rollback needs a health check",
    FieldProblem.CONTROL_CHARACTER: "holds a control character",
    FieldProblem.DEVICE_KEY: "is not of the form PRODUCT_ID/DEVICE_NAME",
    FieldProblem.REGISTRATION_UNREADABLE: "the registration answer cannot be read: is the product secret right?",
    FieldProblem.CERTIFICATE_DEVICE: "is a certificate device; only key (PSK) devices are supported",
    FieldProblem.PROPERTY_IDENTIFIER: "{name} is not a property identifier (letters, digits and _, at most 32)",
    FieldProblem.DUPLICATE_PROPERTY: "{name} is named for two properties",
    FieldProblem.INVALID: "has the wrong type",
}


class InvalidFieldError(TencentIotError, ValueError):
    """A value given to the engine is malformed: `field` names which one, `problem` what is wrong (a form's
    error key) and `placeholders` its values; `reason` is the problem in English, for a log line."""

    def __init__(self, field: str, problem: FieldProblem, **values: object) -> None:
        self.field = field
        self.problem = problem
        self.placeholders = {name: str(value) for name, value in values.items()}
        self.reason = _FIELD_ENGLISH[problem].format(**self.placeholders)
        super().__init__(f"{field}: {self.reason}")


class OtaResultCode(IntEnum):
    """The failure codes of `report_progress` (spec §3); sent to the cloud as strings."""

    DOWNLOAD_TIMEOUT = -1
    FILE_NOT_FOUND = -2
    SIGNATURE_EXPIRED = -3
    MD5_MISMATCH = -4
    UPGRADE_FAILED = -5


class FailureReason(StrEnum):
    """Why an OTA job failed, one value per cause a user can act on; the UI words each one with its advice
    (`failure_<value>` and `install_failed_<value>` in the integration's translations).

    Causes that need different advice have their own value even when they look alike: a refused connection to
    the firmware server (check the host's internet access) is not one to the sub-device (is it on; is its Upload
    URL right?).
    """

    UPGRADE_FAILED = "upgrade_failed"
    # The firmware server (the download).
    DOWNLOAD_CONNECTION_REFUSED = "download_connection_refused"
    DOWNLOAD_HOST_UNREACHABLE = "download_host_unreachable"
    DOWNLOAD_TIMEOUT = "download_timeout"
    DOWNLOAD_TLS = "download_tls"
    DOWNLOAD_SERVER_ERROR = "download_server_error"
    DOWNLOAD_INTERRUPTED = "download_interrupted"
    DOWNLOAD_REFUSED = "download_refused"
    FIRMWARE_NOT_FOUND = "firmware_not_found"
    URL_EXPIRED = "url_expired"
    URL_EXPIRED_VERSION_UNKNOWN = "url_expired_version_unknown"
    URL_EXPIRED_OFFLINE = "url_expired_offline"
    URL_EXPIRED_OTHER_IMAGE = "url_expired_other_image"
    TASK_ENDED = "task_ended"
    MD5_MISMATCH = "md5_mismatch"
    SIZE_MISMATCH = "size_mismatch"
    INSUFFICIENT_SPACE = "insufficient_space"
    CACHE_NOT_WRITABLE = "cache_not_writable"
    CACHE_WRITE_FAILED = "cache_write_failed"
    # Before the flash.
    NO_UPDATE_PENDING = "no_update_pending"
    NOT_A_SUB_DEVICE = "not_a_sub_device"
    INVALID_FIRMWARE = "invalid_firmware"
    NO_FLASHER = "no_flasher"
    PREFLIGHT_TIMEOUT = "preflight_timeout"
    ROLLOUT_HALTED = "rollout_halted"
    # The http flasher (the sub-device's own web server).
    DEVICE_CONNECTION_REFUSED = "device_connection_refused"
    DEVICE_HOST_UNREACHABLE = "device_host_unreachable"
    DEVICE_TIMEOUT = "device_timeout"
    DEVICE_TLS = "device_tls"
    DEVICE_DISCONNECTED = "device_disconnected"
    DEVICE_HTTP_STATUS = "device_http_status"
    VERSION_NOT_REACHED = "version_not_reached"
    VERSION_MISMATCH = "version_mismatch"
    IMAGE_UNREADABLE = "image_unreadable"
    # The command flasher.
    COMMAND_NOT_FOUND = "command_not_found"
    COMMAND_NOT_EXECUTABLE = "command_not_executable"
    COMMAND_START_FAILED = "command_start_failed"
    COMMAND_EXIT = "command_exit"
    COMMAND_KILLED = "command_killed"
    COMMAND_TIMEOUT = "command_timeout"
    COMMAND_OPTION_ARGUMENT = "command_option_argument"
    # The file flasher.
    FILE_NOT_A_DIRECTORY = "file_not_a_directory"
    FILE_NOT_WRITABLE = "file_not_writable"
    FILE_DISK_FULL = "file_disk_full"
    FILE_PATH_MISSING = "file_path_missing"
    FILE_WRITE_FAILED = "file_write_failed"
    UNSAFE_FILE_NAME = "unsafe_file_name"
    # The automation flasher, and any flasher.
    AUTOMATION_TIMEOUT = "automation_timeout"
    AUTOMATION_FAILED = "automation_failed"
    FLASH_FAILED = "flash_failed"
    FLASH_INTERRUPTED = "flash_interrupted"
    # After the flash.
    HEALTH_CHECK_FAILED = "health_check_failed"
    HEALTH_VERSION = "health_version"
    HEALTH_NO_VERSION_READER = "health_no_version_reader"
    HEALTH_ROLLED_BACK = "health_rolled_back"
    HEALTH_ROLLBACK_FAILED = "health_rollback_failed"
    HEALTH_NO_ROLLBACK_IMAGE = "health_no_rollback_image"


class FailureValue(StrEnum):
    """The placeholders a failure may carry besides the job's own (device, version, code, size).

    `remote` is text that is not ours (a device's or a program's answer, an automation's or the OS's message):
    it is shown as received, quoted.
    """

    HOST = "host"
    PORT = "port"
    PATH = "path"
    HTTP_STATUS = "http_status"
    EXIT_CODE = "exit_code"
    SIGNAL = "signal"
    SECONDS = "seconds"
    PROGRAM = "program"
    ARGUMENT = "argument"
    EXPECTED = "expected"
    ACTUAL = "actual"
    NEEDED = "needed"
    SEEN = "seen"
    FAILED = "failed"
    TOTAL = "total"
    REMOTE = "remote"


# The English of each failure: the cloud's `result_msg` and the log. Plain, with no advice (the UI's words have
# it) and no class names; a placeholder missing from a failure reads "?".
_ENGLISH: Final[Mapping[FailureReason, str]] = {
    FailureReason.UPGRADE_FAILED: "the update failed: {remote}",
    FailureReason.DOWNLOAD_CONNECTION_REFUSED: "the firmware server {host}:{port} refused the connection",
    FailureReason.DOWNLOAD_HOST_UNREACHABLE: "the firmware server {host} cannot be reached",
    FailureReason.DOWNLOAD_TIMEOUT: "the firmware server {host} did not answer within {seconds} s",
    FailureReason.DOWNLOAD_TLS: "the certificate of the firmware server {host} cannot be verified",
    FailureReason.DOWNLOAD_SERVER_ERROR: "the firmware server {host} answered HTTP {http_status} to every try",
    FailureReason.DOWNLOAD_INTERRUPTED: "the download from {host} broke off at every try",
    FailureReason.DOWNLOAD_REFUSED: "the firmware server {host} refused the download with HTTP {http_status}",
    FailureReason.FIRMWARE_NOT_FOUND: "the firmware file is gone from {host} (HTTP {http_status})",
    FailureReason.URL_EXPIRED: "the firmware URL expired (HTTP {http_status}) and no fresh one worked",
    FailureReason.URL_EXPIRED_VERSION_UNKNOWN: (
        "the firmware URL expired; a fresh one needs the installed version, which is not known"
    ),
    FailureReason.URL_EXPIRED_OFFLINE: "the firmware URL expired while the gateway was offline",
    FailureReason.URL_EXPIRED_OTHER_IMAGE: "the firmware URL expired and the cloud now offers another image",
    FailureReason.TASK_ENDED: "the firmware URL expired and the cloud sent no fresh one: the upgrade task ended",
    FailureReason.MD5_MISMATCH: "the image's MD5 is {actual}, not the announced {expected}",
    FailureReason.SIZE_MISMATCH: "the server's image is {actual} bytes, not the announced {expected}",
    FailureReason.INSUFFICIENT_SPACE: "not enough free disk space in {path}: {needed} bytes more are needed",
    FailureReason.CACHE_NOT_WRITABLE: "the gateway cannot write the image into {path}",
    FailureReason.CACHE_WRITE_FAILED: "writing the image into {path} failed: {remote}",
    FailureReason.NO_UPDATE_PENDING: "no firmware update is pending",
    FailureReason.NOT_A_SUB_DEVICE: "not a sub-device of this gateway",
    FailureReason.INVALID_FIRMWARE: "the firmware offer is not valid: {remote}",
    FailureReason.NO_FLASHER: "the sub-device has no flasher",
    FailureReason.PREFLIGHT_TIMEOUT: "the pre-flight condition was still not met after {seconds} s",
    FailureReason.ROLLOUT_HALTED: "the rollout halted after {failed} of {total} devices failed",
    FailureReason.DEVICE_CONNECTION_REFUSED: "the sub-device at {host}:{port} refused the connection",
    FailureReason.DEVICE_HOST_UNREACHABLE: "the sub-device at {host} cannot be reached",
    FailureReason.DEVICE_TIMEOUT: "the upload to the sub-device at {host} did not finish within {seconds} s",
    FailureReason.DEVICE_TLS: "the certificate of the sub-device at {host} cannot be verified",
    FailureReason.DEVICE_DISCONNECTED: "the sub-device at {host} closed the connection during the upload",
    FailureReason.DEVICE_HTTP_STATUS: "the sub-device at {host} refused the image with HTTP {http_status}: {remote}",
    FailureReason.VERSION_NOT_REACHED: (
        "the sub-device reported version {seen}, not the new one, {seconds} s after the upload"
    ),
    FailureReason.VERSION_MISMATCH: "the sub-device runs version {seen} after the flash, not the new one",
    FailureReason.IMAGE_UNREADABLE: "the downloaded image {path} cannot be read",
    FailureReason.COMMAND_NOT_FOUND: "the flasher program {program} was not found",
    FailureReason.COMMAND_NOT_EXECUTABLE: "the flasher program {program} may not be run (permission denied)",
    FailureReason.COMMAND_START_FAILED: "the flasher program {program} could not be started: {remote}",
    FailureReason.COMMAND_EXIT: "the flasher program {program} exited with code {exit_code}: {remote}",
    FailureReason.COMMAND_KILLED: "the flasher program {program} was ended by signal {signal}",
    FailureReason.COMMAND_TIMEOUT: "the flasher program {program} ran longer than {seconds} s and was stopped",
    FailureReason.COMMAND_OPTION_ARGUMENT: "the argument {argument} would be read as an option; nothing was run",
    FailureReason.FILE_NOT_A_DIRECTORY: "{path} is a file, not a directory",
    FailureReason.FILE_NOT_WRITABLE: "the gateway may not write into {path}",
    FailureReason.FILE_DISK_FULL: "the disk of {path} is full",
    FailureReason.FILE_PATH_MISSING: "{path} does not exist",
    FailureReason.FILE_WRITE_FAILED: "writing into {path} failed: {remote}",
    FailureReason.UNSAFE_FILE_NAME: "the image's file name {path} is not safe to write",
    FailureReason.AUTOMATION_TIMEOUT: "no automation completed the flash within {seconds} s",
    FailureReason.AUTOMATION_FAILED: "the flashing automation reported a failure: {remote}",
    FailureReason.FLASH_FAILED: "flashing failed: {remote}",
    FailureReason.FLASH_INTERRUPTED: "the flash was interrupted by a shutdown",
    FailureReason.HEALTH_CHECK_FAILED: "the sub-device was not healthy within {seconds} s after the flash",
    FailureReason.HEALTH_VERSION: "the sub-device reported version {seen}, not the new one, after the flash",
    FailureReason.HEALTH_NO_VERSION_READER: "the health check reads the version, which this flasher cannot",
    FailureReason.HEALTH_ROLLED_BACK: "the sub-device was not healthy after the flash and was rolled back to {actual}",
    FailureReason.HEALTH_ROLLBACK_FAILED: (
        "the sub-device was not healthy after the flash, and rolling it back to {seen} failed"
    ),
    FailureReason.HEALTH_NO_ROLLBACK_IMAGE: "the sub-device was not healthy after the flash, and no earlier image was kept to roll back to",
}


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


@dataclass(frozen=True, slots=True)
class Failure:
    """One OTA failure: its reason and its values (placeholders), never a sentence built from them."""

    reason: FailureReason
    values: tuple[tuple[FailureValue, str], ...] = ()

    @classmethod
    def of(cls, reason: FailureReason, **values: object) -> Failure:
        """`Failure.of(reason, host="h", port=9)`; a None value is left out."""
        return cls(
            reason,
            tuple(
                sorted(
                    (FailureValue(name), str(value)) for name, value in values.items() if value is not None
                )
            ),
        )

    def get(self, name: FailureValue) -> str | None:
        """The value of one placeholder, None when the failure has none."""
        return dict(self.values).get(name)

    @property
    def placeholders(self) -> dict[str, str]:
        """Every value by its placeholder name."""
        return {name.value: value for name, value in self.values}

    @property
    def english(self) -> str:
        """The plain English of the failure (the cloud's `result_msg`, the log line)."""
        return _ENGLISH[self.reason].format_map(_Missing(self.placeholders))


class OtaError(TencentIotError):
    """An OTA job failed; `code` is what the cloud is told, `failure` why, `str(self)` its `result_msg`.

    Messages never hold a signed URL's query or any secret: they go to the cloud, the log and the UI. The UI
    words `failure` in the user's language; `str(self)` is the plain English of the same failure.
    `OtaError("text")` is the class's generic reason quoting `text` (words that are not ours: an automation's
    message, a server's answer).
    """

    code: OtaResultCode = OtaResultCode.UPGRADE_FAILED
    default_reason: ClassVar[FailureReason] = FailureReason.UPGRADE_FAILED

    def __init__(self, failure: Failure | str = "", /) -> None:
        """The failure, or a text for the class's generic reason."""
        if isinstance(failure, str):
            failure = Failure.of(self.default_reason, remote=failure or None)
        super().__init__(failure.english)
        self.failure = failure

    @property
    def translation_key(self) -> str:
        """The failure's name in the translations."""
        return self.failure.reason.value

    @property
    def http_status(self) -> int | None:
        """What a server answered, when that is the failure."""
        status = self.failure.get(FailureValue.HTTP_STATUS)
        return int(status) if status is not None and status.isdigit() else None


class DownloadTimeoutError(OtaError):
    """The download failed for network reasons after every retry."""

    code = OtaResultCode.DOWNLOAD_TIMEOUT
    default_reason = FailureReason.DOWNLOAD_INTERRUPTED


class DownloadRefusedError(DownloadTimeoutError):
    """The firmware server answered an HTTP status that no retry or fresh URL can help (not 403/404/5xx)."""

    default_reason = FailureReason.DOWNLOAD_REFUSED


class FirmwareNotFoundError(OtaError):
    """The server answered 404 for the firmware URL."""

    code = OtaResultCode.FILE_NOT_FOUND
    default_reason = FailureReason.FIRMWARE_NOT_FOUND


class UrlExpiredError(OtaError):
    """The server answered 403: the signed URL has expired; a re-report of the version gets a fresh one."""

    code = OtaResultCode.SIGNATURE_EXPIRED
    default_reason = FailureReason.URL_EXPIRED


class TaskEndedError(UrlExpiredError):
    """The URL expired and a re-report brought no fresh push: the cloud's upgrade task has ended.

    Typical of a manual install long after the push (spec §3a): only a new task in the console helps.
    """

    default_reason = FailureReason.TASK_ENDED

    def __init__(self, failure: Failure | str = "", /) -> None:
        """Always the one reason."""
        super().__init__(failure or Failure.of(FailureReason.TASK_ENDED))


class Md5MismatchError(OtaError):
    """The downloaded image does not hash to the announced MD5 (or is not of the announced size)."""

    code = OtaResultCode.MD5_MISMATCH
    default_reason = FailureReason.MD5_MISMATCH


class InsufficientSpaceError(OtaError):
    """Not enough free disk space to store the image; reported as an upgrade failure with its own reason."""

    code = OtaResultCode.UPGRADE_FAILED
    default_reason = FailureReason.INSUFFICIENT_SPACE


class FlashError(OtaError):
    """The flasher could not put the image on the sub-device."""

    code = OtaResultCode.UPGRADE_FAILED
    default_reason = FailureReason.FLASH_FAILED


class InvalidFirmwareError(OtaError):
    """An `update_firmware` push is malformed (bad URL, MD5, size or version), or there is nothing to install."""

    code = OtaResultCode.UPGRADE_FAILED
    default_reason = FailureReason.INVALID_FIRMWARE


class PreflightTimeoutError(OtaError):
    """A pre-flight condition of the sub-device stayed false until its timeout: nothing was flashed."""

    code = OtaResultCode.UPGRADE_FAILED
    default_reason = FailureReason.PREFLIGHT_TIMEOUT


class RolloutHaltedError(OtaError):
    """The staged rollout this job belonged to halted after too many of its devices failed."""

    code = OtaResultCode.UPGRADE_FAILED
    default_reason = FailureReason.ROLLOUT_HALTED


class HealthCheckError(OtaError):
    """The flash returned, but the sub-device did not prove healthy in time: never reported `done`."""

    code = OtaResultCode.UPGRADE_FAILED
    default_reason = FailureReason.HEALTH_CHECK_FAILED


class JobSuspendedError(TencentIotError):
    """The job stopped with its gateway (a reload, a stop) and resumes when the gateway starts again."""


class AuthenticationError(TencentIotError):
    """The broker refused the gateway's credentials (CONNACK 4 or 5): a new secret is needed."""


class ConnectCause(StrEnum):
    """Why the broker could not be reached; the HA layer words each (`cannot_connect_<cause>`) with advice."""

    CA_UNUSABLE = "ca_unusable"  # the CA certificate to verify the broker with cannot be loaded
    REFUSED = "refused"  # nothing listens at host:port
    UNREACHABLE = "unreachable"  # the name does not resolve, or no route to the host
    TLS = "tls"  # the broker's certificate is not trusted, or the handshake failed
    CLOSED = "closed"  # the connection was closed before the broker answered
    NO_ANSWER = "no_answer"  # connected, but no CONNACK in time
    BROKER_REFUSED = "broker_refused"  # the CONNACK refused the connection: `detail` is the broker's reason


_CONNECT_ENGLISH: Final[Mapping[ConnectCause, str]] = {
    ConnectCause.CA_UNUSABLE: "the CA certificate cannot be loaded",
    ConnectCause.REFUSED: "{host}:{port} refused the connection",
    ConnectCause.UNREACHABLE: "{host}:{port} cannot be reached",
    ConnectCause.TLS: "the TLS handshake with {host}:{port} failed (is its certificate trusted?)",
    ConnectCause.CLOSED: "{host}:{port} closed the connection before answering",
    ConnectCause.NO_ANSWER: "{host}:{port} did not answer the MQTT CONNECT",
    ConnectCause.BROKER_REFUSED: "the broker at {host}:{port} refused the connection",
}


class CannotConnectError(TencentIotError):
    """The broker could not be reached, or the TLS handshake failed: `cause` says which, with `host`, `port`
    and, where the other side or the system said more, `detail` (their words, for the log and quoted)."""

    def __init__(self, cause: ConnectCause, host: str, port: int, detail: str = "") -> None:
        english = _CONNECT_ENGLISH[cause].format(host=host, port=port)
        super().__init__(f"{english}: {detail}" if detail else english)
        self.cause = cause
        self.host = host
        self.port = port
        self.detail = detail

    @property
    def placeholders(self) -> dict[str, str]:
        """What the words of `cause` need: host, port and the quoted detail."""
        return {"host": self.host, "port": str(self.port), "detail": self.detail or "-"}


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
    """The registration endpoint could not be reached, or did not answer like one.

    `host`: where it was asked; `cause`: why, one of `REGISTRATION_CAUSES` (a form's error names it).
    """

    def __init__(self, host: str, cause: str) -> None:
        super().__init__(f"the registration service {host} cannot be used: {cause.replace('_', ' ')}")
        self.host = host
        self.cause = cause


REGISTRATION_NOT_A_SERVER: Final = "not_a_server"
"""The cause of a registration answer that is not Tencent's format (a proxy's page, another service)."""


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
