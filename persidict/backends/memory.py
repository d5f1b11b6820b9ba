"""LocalDict's store: Python objects in a RAM-only hierarchical store, guarded by a lock.

Unlike the other backends, this one holds whatever it is given — LocalDict
gives it private deep copies of values, never bytes — and never looks inside.
Each object sits at a location (a tuple of parts, as in every backend) in a
flat dict, for one-lookup reads and writes, and in a tree of folders that
counts the objects under every folder, so the number of items of a dict or
of any of its subdicts is known at once, and a listing or a ``clear`` visits
that subtree only. A folder is removed as soon as it holds nothing.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeAlias

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

Entry: TypeAlias = list[Any]
"""What is stored at a location: [the object, its ETag, the POSIX time it was written, its Stat or None].

An entry is replaced whole on every write, never changed, except that its
last slot caches the Stat once one is needed (built lazily: ``d[k] = v``
needs none; a benign race at worst builds two equal ones).
"""


def _size(obj: Any) -> int:
    """``Stat.size`` of a stored object: the length of bytes; else its shallow size in memory.

    ``sys.getsizeof`` counts the object itself, not what it refers to (a list of
    a thousand strings is a few kilobytes, whatever the strings hold): a cheap,
    constant-time figure, not the memory the value takes in all.
    """
    return len(obj) if type(obj) is bytes else sys.getsizeof(obj)


def _stat(entry: Entry) -> Stat:
    """The entry's Stat, built on first need."""
    stat: Stat | None = entry[3]
    if stat is None:
        stat = entry[3] = Stat(etag=entry[1], mtime=entry[2], size=_size(entry[0]))
    return stat


def _check(loc: Location, current: Entry | None, precondition: Precondition) -> None:
    if precondition is None:
        return
    if isinstance(precondition, IfAbsent):
        ok = current is None
    else:
        assert isinstance(precondition, IfMatch)
        ok = current is not None and current[1] == precondition.etag
    if not ok:
        raise PreconditionFailed(loc, precondition)


class _Folder:
    """A folder: its sub-folders, the names of its objects, how many objects it holds at any depth."""

    __slots__ = ("count", "folders", "names")

    def __init__(self) -> None:
        self.count = 0
        self.folders: dict[str, _Folder] = {}
        self.names: dict[str, None] = {}  # a dict, not a set: listings keep the order of insertion


class MemoryBackend:
    """A thread-safe in-memory store of objects; ETags come from one counter per store.

    Writes, deletes and the tree are guarded by one lock; reads of one object
    (``entry``, ``contains``, ``read``, ``stat``) take no lock: the flat dict
    is replaced entry by entry, and stored objects are never changed in place.
    Pickling (or ``copy.deepcopy``) a store gives a snapshot: a new store with
    copies of the objects, its own lock, and the ETag counter continued.
    """

    capabilities = Capabilities()

    def __init__(self) -> None:
        self._start(next_etag=1)

    def _start(self, next_etag: int) -> None:
        """Start empty, with the lock, the tree and the ETag counter."""
        self._entries: dict[Location, Entry] = {}
        self._tree = _Folder()
        self._lock = threading.Lock()
        self._counter = itertools.count(next_etag)

    def __getstate__(self) -> dict[str, object]:
        with self._lock:
            return {"items": dict(self._entries), "next_etag": next(self._counter)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._start(next_etag=int(state["next_etag"]))
        for loc, entry in dict(state["items"]).items():
            self._entries[loc] = entry
            self._add(loc)

    def describe(self) -> str:
        """Identify the store."""
        return f"memory@{id(self):x}"

    def where(self, loc: Location) -> str:
        """``memory@<id>/<location>``."""
        return f"{self.describe()}/{'/'.join(loc)}"

    def __repr__(self) -> str:
        return f"MemoryBackend({len(self._entries)} objects)"

    # ------------------------------------------------------------ one object, no lock

    def entry(self, loc: Location) -> Entry | None:
        """[object, ETag, mtime, Stat or None] at ``loc``, or None: LocalDict's read path (no Stat built)."""
        return self._entries.get(loc)

    def contains(self, loc: Location) -> bool:
        """Whether an object is stored at ``loc``."""
        return loc in self._entries

    def stat(self, loc: Location) -> Stat | None:
        """Metadata at ``loc``."""
        entry = self._entries.get(loc)
        return None if entry is None else _stat(entry)

    def read(self, loc: Location, *, if_none_match: str | None = None) -> ReadAnswer:
        """The stored object and its stat at ``loc`` (the object where other backends give bytes)."""
        entry = self._entries.get(loc)
        if entry is None:
            return None
        if if_none_match is not None and entry[1] == if_none_match:
            return NotModified(_stat(entry))
        return entry[0], _stat(entry)

    # ------------------------------------------------------------ writes

    def put(self, loc: Location, data: Any) -> None:
        """Store ``data`` unconditionally: ``write`` without a precondition or a Stat to return."""
        with self._lock:
            entries = self._entries
            new = loc not in entries
            entries[loc] = [data, str(next(self._counter)), time.time(), None]
            if new:
                self._add(loc)

    def write(self, loc: Location, data: Any, *, precondition: Precondition = None) -> Stat:
        """Store ``data`` (kept as it is, not copied); the new ETag is the next number of the counter."""
        with self._lock:
            entries = self._entries
            current = entries.get(loc)
            _check(loc, current, precondition)
            entry = entries[loc] = [data, str(next(self._counter)), time.time(), None]
            if current is None:
                self._add(loc)
        return _stat(entry)

    def delete(self, loc: Location, *, precondition: Precondition = None) -> bool:
        """Remove ``loc``."""
        with self._lock:
            current = self._entries.get(loc)
            _check(loc, current, precondition)
            if current is None:
                return False
            del self._entries[loc]
            self._remove(loc)
            return True

    def delete_many(self, locs: Iterable[Location]) -> int:
        """Delete many locations."""
        n = 0
        for loc in locs:
            n += self.delete(loc)
        return n

    def delete_prefix(self, prefix: Location) -> int:
        """Delete every object under ``prefix`` (not one stored at ``prefix`` itself); return how many."""
        with self._lock:
            path = self._path(prefix)
            if path is None:
                return 0
            folder = path[-1]
            n = folder.count
            if not prefix:
                self._entries.clear()
                self._tree = _Folder()
                return n
            for rel in self._walk(folder):
                del self._entries[prefix + rel]
            for above in path[:-1]:
                above.count -= n
            # Detach the emptied folder, and every folder above it that held nothing else.
            for depth in range(len(prefix) - 1, -1, -1):
                del path[depth].folders[prefix[depth]]
                if path[depth].count:
                    break
            return n

    # ------------------------------------------------------------ the tree (callers hold the lock)

    def _add(self, loc: Location) -> None:
        """Count a new object at ``loc`` in every folder above it."""
        folder = self._tree
        folder.count += 1
        for part in loc[:-1]:
            child = folder.folders.get(part)
            if child is None:
                child = folder.folders[part] = _Folder()
            child.count += 1
            folder = child
        folder.names[loc[-1]] = None

    def _remove(self, loc: Location) -> None:
        """Uncount the object deleted at ``loc``; drop the folders it leaves empty."""
        folder = self._tree
        folder.count -= 1
        for part in loc[:-1]:
            child = folder.folders[part]
            child.count -= 1
            if not child.count:
                del folder.folders[part]  # nothing else below: the whole branch goes
                return
            folder = child
        del folder.names[loc[-1]]

    def _path(self, prefix: Location) -> list[_Folder] | None:
        """The folders from the root down to ``prefix``, or None if there is no such folder."""
        folder = self._tree
        path = [folder]
        for part in prefix:
            child = folder.folders.get(part)
            if child is None:
                return None
            path.append(child)
            folder = child
        return path

    def _walk(self, folder: _Folder) -> list[Location]:
        """Every location under ``folder``, relative to it."""
        out: list[Location] = []
        stack: list[tuple[Location, _Folder]] = [((), folder)]
        while stack:
            where, f = stack.pop()
            out.extend([(*where, name) for name in f.names])
            stack.extend([((*where, part), child) for part, child in reversed(f.folders.items())])
        return out

    # ------------------------------------------------------------ listing and counting

    def count(self, prefix: Location) -> int:
        """The number of objects under ``prefix``, at any depth: a walk down ``len(prefix)`` folders."""
        folder = self._tree
        for part in prefix:
            child = folder.folders.get(part)
            if child is None:
                return 0
            folder = child
        return folder.count

    def _snapshot(self, prefix: Location) -> list[Location]:
        with self._lock:
            path = self._path(prefix)
            return [] if path is None else self._walk(path[-1])

    def list(self, prefix: Location) -> Iterator[Location]:
        """Locations under ``prefix``, relative to it (a snapshot taken at the first ``next``)."""
        yield from self._snapshot(prefix)

    def list_times(self, prefix: Location) -> Iterator[tuple[Location, float]]:
        """Locations under ``prefix`` with their mtimes (objects deleted meanwhile are skipped)."""
        entries = self._entries
        for rel in self._snapshot(prefix):
            entry = entries.get(prefix + rel)
            if entry is not None:
                yield rel, entry[2]

    def list_stats(self, prefix: Location) -> Iterator[tuple[Location, Stat]]:
        """Locations under ``prefix`` with their stats (objects deleted meanwhile are skipped)."""
        entries = self._entries
        for rel in self._snapshot(prefix):
            entry = entries.get(prefix + rel)
            if entry is not None:
                yield rel, _stat(entry)
