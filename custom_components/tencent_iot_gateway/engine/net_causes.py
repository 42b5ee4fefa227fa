"""What went wrong on the wire, from an aiohttp or OS error: one of a few causes a user can act on.

The download (the firmware server) and the http flasher (the sub-device) both ask here, then name the failure
for their side: the same refused connection needs other advice there. A library's class name is never the
answer; what it means is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
import errno
import ssl
from urllib.parse import urlsplit

import aiohttp

_REFUSED = frozenset({errno.ECONNREFUSED})
_UNREACHABLE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN})
_DISCONNECTED = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


class NetCause(Enum):
    """Why a connection or a transfer failed."""

    REFUSED = "refused"  # nothing listens at the port
    UNREACHABLE = "unreachable"  # the name does not resolve, or no route to the host
    TIMEOUT = "timeout"  # no answer in time
    TLS = "tls"  # the certificate or the TLS handshake failed
    DISCONNECTED = "disconnected"  # the other side closed or reset the connection mid-way


def net_cause(err: BaseException) -> NetCause:
    """The cause of a failed request (a library error the caller caught)."""
    if isinstance(err, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch | ssl.SSLError):
        return NetCause.TLS
    if isinstance(err, aiohttp.ClientConnectorDNSError):
        return NetCause.UNREACHABLE
    if isinstance(err, TimeoutError | aiohttp.ServerTimeoutError):
        return NetCause.TIMEOUT
    if isinstance(err, aiohttp.ClientConnectorError):
        code = err.os_error.errno
        if code in _REFUSED:
            return NetCause.REFUSED
        if isinstance(err.os_error, TimeoutError) or code == errno.ETIMEDOUT:
            return NetCause.TIMEOUT
        return NetCause.UNREACHABLE if code not in _DISCONNECTED else NetCause.DISCONNECTED
    if isinstance(err, OSError) and err.errno in _REFUSED:
        return NetCause.REFUSED
    if isinstance(err, OSError) and err.errno in _UNREACHABLE:
        return NetCause.UNREACHABLE
    return NetCause.DISCONNECTED


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a request went: host and port only (a URL's path and query are not shown: the query may be a
    credential)."""

    host: str
    port: int | None

    @classmethod
    def of(cls, url: str) -> Endpoint:
        """The host and port of `url` (the scheme's default port when it names none)."""
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            port = {"http": 80, "https": 443}.get(parts.scheme)
        return cls(parts.hostname or "?", port)
