"""LocalDict's store: bytes in a dict, guarded by a lock."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from .base import (
    Capabilities,
    IfAbsent,
    IfMatch,
    Location,
    NotModified,
    Precondition,
    PreconditionFailed,
    ReadAnswer,
    Stat,
)


def _check(loc: Location, current: tuple[bytes, Stat] | None, precondition: Precondition) -> None:
    if precondition is None:
        return
    if isinstance(precondition, IfAbsent):
        ok = current is None
    else:
        assert isinstance(precondition, IfMatch)
        ok = current is not None and current[1].etag == precondition.etag
    if not ok:
        raise PreconditionFailed(loc, precondition)


class MemoryBackend:
    """A thread-safe in-memory store; ETags come from one counter per store."""

    capabilities = Capabilities()

    def __init__(self) -> None:
        self._items: dict[Location, tuple[bytes, Stat]] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def __getstate__(self) -> dict[str, object]:
        # Memory cannot be shared between processes: a pickled (or deep-copied)
        # store is a snapshot with its own lock, continuing the ETag counter.
        with self._lock:
            return {"items": dict(self._items), "next_etag": next(self._counter)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._items = dict(state["items"])
        self._lock = threading.Lock()
        self._counter = itertools.count(int(state["next_etag"]))

    def describe(self) -> str:
        """Identify the store."""
        return f"memory@{id(self):x}"

    def where(self, loc: Location) -> str:
        """``memory@<id>/<location>``."""
        return f"{self.describe()}/{'/'.join(loc)}"

    def __repr__(self) -> str:
        return f"MemoryBackend({len(self._items)} objects)"

    def stat(self, loc: Location) -> Stat | None:
        """Metadata at ``loc``."""
        item = self._items.get(loc)
        return None if item is None else item[1]

    def read(self, loc: Location, *, if_none_match: str | None = None) -> ReadAnswer:
        """Bytes and stat at ``loc``."""
        item = self._items.get(loc)
        if item is not None and if_none_match is not None and item[1].etag == if_none_match:
            return NotModified(item[1])
        return item

    def write(self, loc: Location, data: bytes, *, precondition: Precondition = None) -> Stat:
        """Store bytes; the new ETag is the next value of the store's counter."""
        with self._lock:
            _check(loc, self._items.get(loc), precondition)
            stat = Stat(etag=str(next(self._counter)), mtime=time.time(), size=len(data))
            self._items[loc] = (bytes(data), stat)
            return stat

    def delete(self, loc: Location, *, precondition: Precondition = None) -> bool:
        """Remove ``loc``."""
        with self._lock:
            _check(loc, self._items.get(loc), precondition)
            return self._items.pop(loc, None) is not None

    def _snapshot(self, prefix: Location) -> list[tuple[Location, Stat]]:
        n = len(prefix)
        with self._lock:
            return [
                (loc[n:], item[1])
                for loc, item in self._items.items()
                if loc[:n] == prefix and len(loc) > n
            ]

    def list(self, prefix: Location) -> Iterator[Location]:
        """Locations under ``prefix``, relative to it."""
        for loc, _ in self._snapshot(prefix):
            yield loc

    def list_stats(self, prefix: Location) -> Iterator[tuple[Location, Stat]]:
        """Locations under ``prefix`` with their stats."""
        yield from self._snapshot(prefix)

    def delete_many(self, locs: Iterable[Location]) -> int:
        """Delete many locations."""
        n = 0
        for loc in locs:
            n += self.delete(loc)
        return n
