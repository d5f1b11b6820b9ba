"""The interpreter of batch commands: many keys, each outcome kept, concurrent where it pays.

A backend may run a whole batch itself (``read_many`` / ``write_many`` /
``discard_many``: one LMDB transaction, S3's DeleteObjects or its own pool
of requests); otherwise each item runs through the backend's single-item
primitive in a bounded pool of threads (``map_outcomes``). Either way, every
item's outcome is returned in order — a value, ``ABSENT``, a Stat, or the
exception of that item — and the façade decides what to raise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..backends.base import IF_ABSENT, Backend, Location, NotModified, PreconditionFailed, ReadAnswer, Stat
from ..concurrency import map_outcomes
from . import decide as d
from .commands import DiscardMany, GetMany, SetMany

ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()
"""The outcome of a key that is not stored."""

OnDone = Callable[[int, Any], None]
"""Called with (item index, outcome) as each item finishes."""


def _decoded(backend: Backend, cmd: GetMany, i: int, got: ReadAnswer | BaseException) -> Any:
    """The outcome of item ``i`` of a GetMany: (value, ETag), ABSENT, or an exception."""
    if isinstance(got, BaseException):
        return got
    if got is None or isinstance(got, NotModified):
        return ABSENT
    t = cmd.targets[i]
    try:
        return t.coder.decode(t.key, got[0], lambda: backend.where(t.loc)), got[1].etag
    except Exception as e:
        return e


def run_get_many(
    backend: Backend, cmd: GetMany, max_workers: int, on_done: OnDone | None = None
) -> list[Any]:
    """Read every target: (value, ETag), ABSENT, or the exception of that key."""
    locs = [t.loc for t in cmd.targets]
    read_many: Callable[..., list[ReadAnswer | BaseException]] | None = getattr(backend, "read_many", None)
    if read_many is not None:
        answers = read_many(locs, max_workers=max_workers)
        out = [_decoded(backend, cmd, i, got) for i, got in enumerate(answers)]
        if on_done is not None:
            for i, outcome in enumerate(out):
                on_done(i, outcome)
        return out

    def read_one(i: int) -> Any:
        return _decoded(backend, cmd, i, backend.read(locs[i]))

    return map_outcomes(read_one, range(len(locs)), max_workers, on_done)


def _write_one(backend: Backend, loc: Location, data: bytes, append_only: bool, key: Any) -> Stat | None:
    if not append_only:
        return backend.write(loc, data)
    try:
        return backend.write(loc, data, precondition=IF_ABSENT)
    except PreconditionFailed:
        raise d.refuse_overwrite(key) from None


def run_set_many(
    backend: Backend, cmd: SetMany, max_workers: int, on_done: OnDone | None = None
) -> list[Any]:
    """Write every item: its new Stat (None when discarded), or the exception of that key."""
    write_many: Callable[..., list[Stat | BaseException | None]] | None = getattr(backend, "write_many", None)
    if write_many is not None and not cmd.append_only:
        outcomes = write_many([(t.loc, data) for t, data in cmd.items], max_workers=max_workers)
        if on_done is not None:
            for i, outcome in enumerate(outcomes):
                on_done(i, outcome)
        return list(outcomes)

    def write_one(i: int) -> Stat | None:
        t, data = cmd.items[i]
        return _write_one(backend, t.loc, data, cmd.append_only, t.key)

    return map_outcomes(write_one, range(len(cmd.items)), max_workers, on_done)


def run_discard_many(
    backend: Backend, cmd: DiscardMany, max_workers: int, on_done: OnDone | None = None
) -> list[Any]:
    """Delete every target if present: whether it was, or the exception of that key."""
    locs = [t.loc for t in cmd.targets]
    discard_many: Callable[..., list[bool | BaseException]] | None = getattr(backend, "discard_many", None)
    if discard_many is not None:
        outcomes = discard_many(locs, max_workers=max_workers)
        if on_done is not None:
            for i, outcome in enumerate(outcomes):
                on_done(i, outcome)
        return list(outcomes)
    return map_outcomes(lambda i: backend.delete(locs[i]), range(len(locs)), max_workers, on_done)
