"""The engine's exception hierarchy; callers catch these, never a library's internals."""

from __future__ import annotations


class TencentIotError(Exception):
    """Base of every error the engine raises on purpose."""


class InvalidFieldError(TencentIotError, ValueError):
    """A value given to the engine is malformed; `field` names which one, for a form error or a log line."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
