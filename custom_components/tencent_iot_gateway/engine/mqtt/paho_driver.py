"""paho-mqtt driven by the asyncio event loop: the I/O half of the MQTT session.

paho-mqtt does the protocol; the event loop does the I/O. paho's socket callbacks hand its socket to
`add_reader`/`add_writer`, and a task calls its housekeeping (`loop_misc`: keepalive pings, and noticing a broker
that stopped answering them) once a second, so no network thread is ever started (`loop_start` is never used).
Reads are bounded per wake-up of the socket, so that a burst of packets cannot hold the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import socket
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

_MISC_INTERVAL_S = 1.0
# Packets read per wake-up of the socket: paho's `loop_read` reads as many as it has messages in flight (more
# than 1,000 during a push to 1,000 sub-devices), each handled at once, in one step of the event loop.
READ_PACKETS_PER_CALLBACK = 32


class PahoLoopDriver:
    """Does the I/O of one paho client at a time on the event loop; the session attaches each new client.

    Only the attached client is driven: a late callback of a client replaced since (its socket closing, a read
    scheduled before) finds it is not current and does nothing. paho calls the socket callbacks on the thread
    it runs on: the event loop, except inside `connect`, which the session runs in the executor (DNS, TCP and
    the TLS handshake block); those are handed over to the loop.
    """

    def __init__(self) -> None:
        """Drive nothing until `attach`."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._client: mqtt.Client | None = None
        self._sock: socket.socket | None = None
        self._misc_task: asyncio.Task[None] | None = None
        self._read_again: asyncio.Handle | None = None  # a bounded read stopped with more to read

    @property
    def watched_socket(self) -> socket.socket | None:
        """The attached client's socket while the loop watches it (None between connections)."""
        return self._sock

    def attach(self, client: mqtt.Client) -> None:
        """Drive `client` from now on, in place of any earlier one (whose socket is torn down).

        Call it on the event loop and before `client.connect`: paho reports its new socket through the
        callbacks installed here.
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.teardown()
        self._client = client
        client.on_socket_open = self._handle_socket_open
        client.on_socket_close = self._handle_socket_close
        client.on_socket_register_write = self._handle_register_write
        client.on_socket_unregister_write = self._handle_unregister_write

    def detach(self) -> None:
        """Stop driving any client: tear its socket down, and let its late callbacks do nothing."""
        self.teardown()
        self._client = None

    def teardown(self) -> None:
        """Forget the current socket whatever state paho is in; safe to call twice."""
        sock = self._sock
        if sock is not None:
            self._unwatch_socket(sock)
            sock.close()
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None

    # -- paho's socket callbacks (on the executor's thread during connect) -------------------------------

    def _on_loop_thread(self, callback: Callable[[], None]) -> None:
        assert self._loop is not None
        if threading.get_ident() == self._loop_thread:
            callback()
        else:
            self._loop.call_soon_threadsafe(callback)

    def _handle_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._on_loop_thread(lambda: self._watch_socket(client, sock))

    def _handle_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._on_loop_thread(lambda: self._unwatch_socket(sock))

    def _handle_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        def register() -> None:
            current = self._sock
            if current is not None and current is sock and current.fileno() != -1:
                assert self._loop is not None
                self._loop.add_writer(current, client.loop_write)

        self._on_loop_thread(register)

    def _handle_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        def unregister() -> None:
            if sock.fileno() != -1:
                assert self._loop is not None
                self._loop.remove_writer(sock)

        self._on_loop_thread(unregister)

    # -- watching the socket (always on the event loop thread) -------------------------------------------

    def _watch_socket(self, client: mqtt.Client, sock: socket.socket) -> None:
        assert self._loop is not None
        if client is not self._client or sock.fileno() == -1:
            return
        self._sock = sock
        self._loop.add_reader(sock, self._on_readable, client)
        # paho may have left bytes of CONNECT unsent in the executor; let the writer drain them.
        self._loop.add_writer(sock, client.loop_write)
        self._misc_task = self._loop.create_task(self._misc_loop(client), name="mqtt keepalive")

    def _unwatch_socket(self, sock: socket.socket) -> None:
        assert self._loop is not None
        if self._read_again is not None:
            self._read_again.cancel()
            self._read_again = None
        if sock.fileno() != -1:
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        if sock is self._sock:
            self._sock = None
            if self._misc_task is not None:
                self._misc_task.cancel()
                self._misc_task = None

    def _on_readable(self, client: mqtt.Client) -> None:
        if self._read_again is None:  # else the read already scheduled goes on where the last one stopped
            self._read_some(client)

    def _read_later(self, client: mqtt.Client) -> None:
        self._read_again = None
        self._read_some(client)

    def _read_some(self, client: mqtt.Client) -> None:
        """What `loop_read` does, but at most `READ_PACKETS_PER_CALLBACK` packets; the next loop iteration
        reads on. Uses paho's packet reader directly: `loop_read` offers no bound (`max_packets` is ignored).
        Private API of the pinned paho-mqtt 2.1.0 (manifest): a paho bump must pass
        `test_one_wake_up_of_the_socket_handles_a_bounded_number_of_packets`, which drives it for real.
        """
        assert self._loop is not None
        for _ in range(READ_PACKETS_PER_CALLBACK):
            if client is not self._client or client.socket() is None:
                return
            rc = client._packet_read()  # noqa: SLF001
            if rc > 0:
                client._loop_rc_handle(rc)  # noqa: SLF001
                return
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return
        # More may wait, some of it already decrypted inside the TLS object where the selector cannot see it.
        self._read_again = self._loop.call_soon(self._read_later, client)

    async def _misc_loop(self, client: mqtt.Client) -> None:
        while True:
            await asyncio.sleep(_MISC_INTERVAL_S)
            client.loop_misc()
