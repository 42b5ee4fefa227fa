"""The emulator in a process of its own: `python -m tencent_iot_emulator serve`, started and stopped from asyncio.

For whoever must not share an event loop (or its CPU accounting) with the emulator: the benchmarks, and the
Home Assistant setup bench they run in a child pytest. The process runs in its own session, so a Ctrl-C in
the caller's terminal reaches only the caller, which then stops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
import json
from pathlib import Path
import sys
from typing import IO

# `python -m tencent_iot_emulator` runs from the checkout that holds this package.
TOP = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
_LOG_TAIL_LINES = 30


class EmulatorStartError(Exception):
    """The emulator exited, or stayed silent, before it said where it listens."""


@dataclass(frozen=True, slots=True)
class Endpoints:
    """What `python -m tencent_iot_emulator serve` announces once it is ready."""

    http_url: str
    https_url: str
    mqtts_port: int
    ca_file: Path


class EmulatorProcess:
    """`python -m tencent_iot_emulator serve` in its own session (a Ctrl-C here reaches us, not it)."""

    def __init__(self, state_dir: Path, log_path: Path, serve_args: Sequence[str] = ()) -> None:
        """Keep the emulator's state in `state_dir` and its log in `log_path`; pass `serve_args` to `serve`."""
        self._state_dir = state_dir
        self._log_path = log_path
        self._serve_args = tuple(serve_args)
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> Endpoints:
        """Start it and wait for its one JSON line of endpoints."""
        log = await asyncio.to_thread(_open_for_writing, self._log_path)
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tencent_iot_emulator",
                "serve",
                "--state-dir",
                str(self._state_dir),
                "--host",
                "127.0.0.1",
                *self._serve_args,
                cwd=TOP,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                start_new_session=True,
            )
        finally:
            await asyncio.to_thread(log.close)
        assert self._process.stdout is not None
        try:
            line = await asyncio.wait_for(self._process.stdout.readline(), READY_TIMEOUT_S)
        except TimeoutError:
            raise EmulatorStartError(f"the emulator did not get ready in {READY_TIMEOUT_S:g} s") from None
        if not line:
            tail = await asyncio.to_thread(_tail, self._log_path)
            raise EmulatorStartError(f"the emulator exited before it was ready:\n{tail}")
        ready = json.loads(line)
        return Endpoints(
            http_url=str(ready["http"]),
            https_url=str(ready["https"]),
            mqtts_port=int(ready["mqtts"]),
            ca_file=Path(ready["ca_file"]),
        )

    async def stop(self) -> None:
        """SIGTERM (it then stops its broker too); SIGKILL if it does not exit in time."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            process.kill()
            await process.wait()


def _open_for_writing(path: Path) -> IO[bytes]:
    return path.open("wb")


def _tail(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-_LOG_TAIL_LINES:])
