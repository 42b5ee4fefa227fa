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
        """Replace the saved document.

        The store may serialise `data` later and off the event loop: the caller hands it over and does not
        change it afterwards (build a fresh top-level dict; share only values that are never mutated).
        """


class JsonFileStore:
    """A `StateStore` in one file, written atomically in the executor so the event loop never blocks."""

    def __init__(self, path: Path) -> None:
        """Keep the document at `path`."""
        self._path = path
        # One write at a time, so the last one wins whole; saves that arrive meanwhile leave one pending
        # document (the newest) and share the next write.
        self._lock = asyncio.Lock()
        self._pending: dict[str, Any] | None = None
        self._requested = 0
        self._written = 0

    async def async_load(self) -> dict[str, Any] | None:
        """Read the file; a missing file is an empty store."""
        return await asyncio.get_running_loop().run_in_executor(None, self._load)

    async def async_save(self, data: dict[str, Any]) -> None:
        """Write to a temporary file, then rename it over the old one; the JSON is built in the executor."""
        self._pending = data
        self._requested += 1
        wanted = self._requested
        async with self._lock:
            if self._written >= wanted:
                return  # a write that started after this call already saved this document or a newer one
            document, generation = self._pending, self._requested
            self._pending = None
            try:
                await asyncio.get_running_loop().run_in_executor(None, self._save, document)
            except BaseException:
                if self._pending is None:  # nothing newer arrived: the next save retries this document
                    self._pending = document
                raise
            self._written = generation

    def _load(self) -> dict[str, Any] | None:
        try:
            document = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return document if isinstance(document, dict) else None

    def _save(self, document: dict[str, Any] | None) -> None:
        # Serialised here, in the executor: a large document would otherwise stall the event loop.
        text = json.dumps(document, separators=(",", ":"), sort_keys=True)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self._path.with_name(f".{self._path.name}.tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(self._path)
