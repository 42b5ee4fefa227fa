"""The engine's exception hierarchy; callers catch these, never a library's internals.

OTA failures carry Tencent's result code, so the code reported to the cloud is decided here, once.
"""

from __future__ import annotations

from enum import IntEnum


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
    """

    code: OtaResultCode = OtaResultCode.UPGRADE_FAILED


class DownloadTimeoutError(OtaError):
    """The download failed for network reasons after every retry."""

    code = OtaResultCode.DOWNLOAD_TIMEOUT


class FirmwareNotFoundError(OtaError):
    """The server answered 404 for the firmware URL."""

    code = OtaResultCode.FILE_NOT_FOUND


class UrlExpiredError(OtaError):
    """The server answered 403: the signed URL has expired; a re-report of the version gets a fresh one."""

    code = OtaResultCode.SIGNATURE_EXPIRED


class Md5MismatchError(OtaError):
    """The downloaded image does not hash to the announced MD5."""

    code = OtaResultCode.MD5_MISMATCH


class InsufficientSpaceError(OtaError):
    """Not enough free disk space to store the image; reported as an upgrade failure with its own message."""

    code = OtaResultCode.UPGRADE_FAILED


class FlashError(OtaError):
    """The flasher could not put the image on the sub-device."""

    code = OtaResultCode.UPGRADE_FAILED


class InvalidFirmwareError(OtaError):
    """An `update_firmware` push is malformed (bad URL, MD5, size or version)."""

    code = OtaResultCode.UPGRADE_FAILED
