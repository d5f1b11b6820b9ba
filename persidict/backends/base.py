"""The Backend protocol: raw, per-location primitives with preconditions.

A backend stores opaque bytes at *locations* (tuples of already-encoded path
parts, extension included). It never sees a user key, a codec or a flag.
Writes and deletes may carry a precondition, in the manner of the Rust
``object_store`` crate: create only (``IfAbsent``) or update only a given
version (``IfMatch``). A backend that cannot enforce a precondition
atomically says so in ``capabilities``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol, TypeAlias

import attrs

Location: TypeAlias = tuple[str, ...]
"""Encoded path parts, extension included, relative to a backend's root."""


@attrs.frozen
class Stat:
    """Metadata of one stored object."""

    etag: str
    """Opaque version; changes on every write (or, on S3, on new content)."""
    mtime: float
    """POSIX seconds of the last write."""
    size: int
    """Size of the stored bytes."""


@attrs.frozen
class IfAbsent:
    """Precondition: the location must not exist (create only)."""


@attrs.frozen
class IfMatch:
    """Precondition: the location must exist with exactly this ETag."""

    etag: str


Precondition: TypeAlias = IfAbsent | IfMatch | None
"""What must hold for a write or delete to take place (None: nothing)."""

IF_ABSENT = IfAbsent()


@attrs.frozen
class NotModified:
    """Answer of ``read(..., if_none_match=etag)`` when the ETag matched."""

    stat: Stat


@attrs.frozen
class Capabilities:
    """What a backend guarantees."""

    atomic_preconditions: bool = True
    """Whether IfAbsent / IfMatch are checked atomically with the write."""
    unique_etags: bool = True
    """Whether every write yields a new ETag, even of identical bytes."""
    persistent: bool = True
    """Whether writes are kept at all (False for the null device)."""
    batch_workers: int = 1
    """How many items a batch operation runs at once by default (more where round trips dominate)."""


class PreconditionFailed(Exception):
    """A write or delete whose precondition did not hold; nothing changed."""

    def __init__(self, location: Location, precondition: Precondition) -> None:
        super().__init__(f"precondition {precondition!r} failed at {location!r}")
        self.location = location
        self.precondition = precondition


ReadAnswer: TypeAlias = tuple[bytes, Stat] | NotModified | None
"""Bytes and stat; NotModified when the ETag matched; None when absent."""


class Backend(Protocol):
    """The minimal store interface every PersiDict runs against."""

    capabilities: Capabilities

    def stat(self, loc: Location) -> Stat | None:
        """Metadata of the object at ``loc``, or None when absent."""
        ...

    def read(self, loc: Location, *, if_none_match: str | None = None) -> ReadAnswer:
        """The bytes and stat at ``loc``; NotModified if its ETag is ``if_none_match``."""
        ...

    def write(self, loc: Location, data: bytes, *, precondition: Precondition = None) -> Stat | None:
        """Store ``data`` at ``loc``; return the new stat (None: discarded).

        Raises PreconditionFailed, changing nothing, when the precondition
        does not hold.
        """
        ...

    def delete(self, loc: Location, *, precondition: Precondition = None) -> bool:
        """Delete ``loc``; return whether something was deleted.

        Raises PreconditionFailed, changing nothing, when the precondition
        does not hold.
        """
        ...

    def list(self, prefix: Location) -> Iterator[Location]:
        """Every stored location under ``prefix``, relative to it, streamed."""
        ...

    def list_stats(self, prefix: Location) -> Iterator[tuple[Location, Stat]]:
        """Like ``list`` but with each location's stat."""
        ...

    def delete_many(self, locs: Iterable[Location]) -> int:
        """Delete many locations unconditionally; return how many were deleted."""
        n = 0
        for loc in locs:
            n += self.delete(loc)
        return n

    def describe(self) -> str:
        """A short human-readable description, for errors and repr."""
        ...

    # A backend may also run whole batches itself (persidict/ops/run_many.py
    # looks for these; otherwise it runs the single-item primitives in a pool):
    #   read_many(locs, *, max_workers) -> list[ReadAnswer | BaseException]
    #   write_many([(loc, data)], *, max_workers) -> list[Stat | None | BaseException]
    #   discard_many(locs, *, max_workers) -> list[bool | BaseException]

    def where(self, loc: Location) -> str:
        """The path or URL of ``loc`` in this store, for error messages."""
        ...
