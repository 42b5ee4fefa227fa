"""The `command` flasher: runs a configured program (never through a shell) and watches its output.

Each argument is a template; placeholders are substituted per argument, so a value can never split into
several arguments or reach a shell. Device names come from the cloud and may start with `-`: an argument that
a substituted value turns into an option is refused (the flash fails, the program is not run) unless it comes
after a literal `--` argument or the template itself is an option (`--name={device_name}`). Lines `progress: N` on the program's stdout are the flash progress; exit
status 0 means the sub-device now runs the new version; anything else is a `FlashError` quoting the end of
the program's stderr. A program that outlives its timeout is killed with its whole process group.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
import contextlib
from dataclasses import dataclass
import errno
import logging
import os
from pathlib import Path
import re
import signal
from typing import Any, ClassVar

from custom_components.tencent_iot_gateway.engine.errors import (
    Failure,
    FailureReason,
    FieldProblem,
    FlashError,
    InvalidFieldError,
)
from custom_components.tencent_iot_gateway.engine.gateway.identity import DeviceId
from custom_components.tencent_iot_gateway.engine.ota.firmware import FirmwareSpec
from custom_components.tencent_iot_gateway.engine.ota.flashers.base import (
    check_kind,
    check_seconds,
    check_text,
    render_template,
    template_values,
    validate_template,
)

_LOGGER = logging.getLogger(__name__)

STDERR_TAIL_LINES = 5
STDERR_TAIL_CHARS = 500
MAX_ARGS = 64
_LINE_MAX = 4096
_READ_SIZE = 4096
_PROGRESS_RE = re.compile(r"\s*progress:\s*(\d{1,3})\s*%?\s*", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class CommandFlasherConfig:
    """Run `program` with `args` (templates); kill it after `timeout_s` seconds."""

    kind: ClassVar[str] = "command"

    program: str
    args: tuple[str, ...] = ()
    timeout_s: float = 600.0

    def __post_init__(self) -> None:
        """Validate every field, naming the bad one."""
        check_text(self.program, "program")
        if not isinstance(self.args, tuple) or len(self.args) > MAX_ARGS:
            raise InvalidFieldError("args", FieldProblem.TOO_MANY, max=MAX_ARGS)
        for index, arg in enumerate(self.args):
            validate_template(arg, f"args[{index}]")
        check_seconds(self.timeout_s, "timeout_s")

    def to_dict(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "kind": self.kind,
            "program": self.program,
            "args": list(self.args),
            "timeout_s": self.timeout_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CommandFlasherConfig:
        """Parse the stored form (raises `InvalidFieldError`)."""
        check_kind(data, cls.kind)
        args = data.get("args", [])
        if not isinstance(args, list | tuple):
            raise InvalidFieldError("args", FieldProblem.INVALID)
        return cls(
            program=check_text(data.get("program"), "program"),
            args=tuple(args),
            timeout_s=data.get("timeout_s", 600.0),
        )


class CommandFlasher:
    """Flashes by running a program."""

    def __init__(self, config: CommandFlasherConfig) -> None:
        """Use `config`'s program, arguments and timeout."""
        self._config = config

    async def flash(
        self, image: Path, target: DeviceId, firmware: FirmwareSpec, progress: Callable[[int], None]
    ) -> str:
        """Run the program for this image and device; return `firmware.version` when it exits 0."""
        config = self._config
        values = template_values(image, target, firmware)
        argv = [config.program, *_render_arguments(config.args, values, target)]
        name = Path(config.program).name
        _LOGGER.info("Flashing %s with %s to version %s", target, name, firmware.version)
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                # Its own process group, so a timeout kills whatever it started too.
                start_new_session=True,
            )
        except OSError as err:
            raise FlashError(_start_failure(config.program, err)) from None
        assert process.stdout is not None
        assert process.stderr is not None
        tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        try:
            async with asyncio.timeout(config.timeout_s):
                await asyncio.gather(
                    _follow_progress(process.stdout, progress, target),
                    _keep_tail(process.stderr, tail),
                )
                status = await process.wait()
        except TimeoutError:
            await _kill(process)
            raise FlashError(
                Failure.of(FailureReason.COMMAND_TIMEOUT, program=name, seconds=f"{config.timeout_s:g}")
            ) from None
        except BaseException:
            await _kill(process)
            raise
        if status < 0:
            # Ended by a signal (asyncio's negative return code), not by the program's own exit.
            raise FlashError(
                Failure.of(FailureReason.COMMAND_KILLED, program=name, signal=_signal_name(-status))
            )
        if status != 0:
            # The program's own words on stderr, quoted as received.
            raise FlashError(
                Failure.of(
                    FailureReason.COMMAND_EXIT, program=name, exit_code=status, remote=_tail_text(tail)
                )
            )
        _LOGGER.info("Flashed %s to version %s", target, firmware.version)
        return firmware.version


def _render_arguments(templates: tuple[str, ...], values: Mapping[str, str], target: DeviceId) -> list[str]:
    """The arguments; refused when a substituted value (a device name from the cloud) makes one an option.

    Device names may start with `-`: `{device_name}` alone would then be read as an option by most programs.
    An option the user wrote (`--device={device_name}`), or any argument after a literal `--`, is fine.
    """
    rendered: list[str] = []
    options_ended = False
    for template in templates:
        argument = render_template(template, values)
        if not options_ended and argument.startswith("-") and not template.startswith("-"):
            _LOGGER.debug("Refusing to run the flasher for %s: %r would be an option", target, argument)
            raise FlashError(Failure.of(FailureReason.COMMAND_OPTION_ARGUMENT, argument=argument))
        options_ended = options_ended or template == "--"
        rendered.append(argument)
    return rendered


async def _lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    """Decoded lines of `stream`; overlong lines are cut, so a chatty program cannot exhaust memory."""
    pending = b""
    while chunk := await stream.read(_READ_SIZE):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            yield raw[:_LINE_MAX].decode("utf-8", "replace").rstrip("\r")
        pending = pending[-_LINE_MAX:]
    if pending:
        yield pending.decode("utf-8", "replace").rstrip("\r")


async def _follow_progress(
    stream: asyncio.StreamReader, progress: Callable[[int], None], target: DeviceId
) -> None:
    async for line in _lines(stream):
        match = _PROGRESS_RE.fullmatch(line)
        if match is not None:
            progress(min(100, int(match[1])))
        elif line:
            _LOGGER.debug("Flasher output for %s: %s", target, line)


async def _keep_tail(stream: asyncio.StreamReader, tail: deque[str]) -> None:
    async for line in _lines(stream):
        if line.strip():
            tail.append(line.strip())


def _start_failure(program: str, err: OSError) -> Failure:
    if err.errno in {errno.ENOENT, errno.ENOTDIR}:
        return Failure.of(FailureReason.COMMAND_NOT_FOUND, program=program)
    if err.errno in {errno.EACCES, errno.EPERM}:
        return Failure.of(FailureReason.COMMAND_NOT_EXECUTABLE, program=program)
    # The OS's own words, quoted as received.
    return Failure.of(FailureReason.COMMAND_START_FAILED, program=program, remote=err.strerror or str(err))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _tail_text(tail: deque[str]) -> str:
    if not tail:
        return "-"
    text = " | ".join(tail)
    return text if len(text) <= STDERR_TAIL_CHARS else "…" + text[-(STDERR_TAIL_CHARS - 1) :]


async def _kill(process: asyncio.subprocess.Process) -> None:
    """Kill the program's process group and reap it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await process.wait()
