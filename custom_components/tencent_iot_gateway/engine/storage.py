"""Where the engine keeps what must survive a restart: one JSON document per store.

The integration puts Home Assistant's `Store` behind `StateStore` (it has the same two methods); tests and
scripts use `JsonFileStore`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Protocol


class StateStore(Protocol):
    """A JSON document that can be loaded and saved whole."""

    async def async_load(self) -> dict[str, Any] | None:
        """The saved document, or None when nothing was saved yet."""

    async def async_save(self, data: dict[str, Any]) -> None:
        """Replace the saved document."""


class JsonFileStore:
    """A `StateStore` in one file, written atomically in the executor so the event loop never blocks."""

    def __init__(self, path: Path) -> None:
        """Keep the document at `path`."""
        self._path = path
        # Saves overlap when several jobs change state at once: one at a time, so the last one wins whole.
        self._lock = asyncio.Lock()

    async def async_load(self) -> dict[str, Any] | None:
        """Read the file; a missing file is an empty store."""
        return await asyncio.get_running_loop().run_in_executor(None, self._load)

    async def async_save(self, data: dict[str, Any]) -> None:
        """Write to a temporary file, then rename it over the old one."""
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        async with self._lock:
            await asyncio.get_running_loop().run_in_executor(None, self._save, text)

    def _load(self) -> dict[str, Any] | None:
        try:
            document = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return document if isinstance(document, dict) else None

    def _save(self, text: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_name(f".{self._path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(self._path)
