"""``persidict.copy``: stream the items of any PersiDict into any other, in bounded memory.

Keys are listed from the source as a stream; items move in chunks, read with
the source's batch read and written with the destination's batch write, so
both run concurrently where their stores gain (S3, network folders) and
LMDB writes a chunk in one transaction. A chunk starts at ``max_workers``
items and grows while its values stay small, so memory stays near
``max_workers`` values plus a few MiB whatever the size of the store.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Literal

import attrs

from .concurrency import check_max_workers, map_outcomes
from .errors import batch_error
from .keys import NonEmptySafeStrTuple
from .ops.run_many import ABSENT
from .persi_dict import PersiDict
from .progress import ProgressOption, Reporter

CHUNK_BYTES = 8 * 1024 * 1024
"""A chunk grows while its serialised values stay under this many bytes."""

MAX_CHUNK = 512
"""Items per chunk at most."""


@attrs.frozen
class CopySummary:
    """What ``copy`` did.

    Attributes:
        copied: items written to the destination.
        skipped: items not written: already in the destination (with
            ``skip_existing``), or deleted from the source while copying.
        failed: items that could not be read, accepted or written (see ``failures``).
        bytes: serialised bytes written (0 for destinations that keep objects, like LocalDict).
        failures: each failed key and its exception.
    """

    copied: int
    skipped: int
    failed: int
    bytes: int
    failures: dict[NonEmptySafeStrTuple, Exception] = attrs.field(factory=dict, repr=False)


def copy(
    src: PersiDict[Any],
    dst: PersiDict[Any],
    *,
    skip_existing: bool = False,
    max_workers: int | None = None,
    progress: ProgressOption = None,
    errors: Literal["raise", "skip"] = "raise",
) -> CopySummary:
    """Copy every item of ``src`` into ``dst`` (any stores, subdicts included); return a summary.

    Streams: memory stays bounded by a chunk of items whatever the size of
    ``src``. ``skip_existing=True`` leaves keys already in ``dst`` alone
    (one existence check per key), so an interrupted copy resumes where it
    stopped. ``max_workers`` bounds the requests in flight on each side
    (default: the larger of the two stores' defaults). Each item is copied
    all-or-nothing; with ``errors="raise"`` (the default) the copy goes on
    past failed items and then raises their exception (a BatchError naming
    every failed key when several failed) with the summary in its
    ``summary`` attribute; with ``errors="skip"`` it returns the summary.
    ``progress`` reports each item (see persidict.progress).
    """
    for name, d in (("src", src), ("dst", dst)):
        if not isinstance(d, PersiDict):
            raise TypeError(f"{name} must be a PersiDict, not {type(d).__name__}")
    if errors not in ("raise", "skip"):
        raise ValueError(f"errors must be 'raise' or 'skip', not {errors!r}")
    if not isinstance(skip_existing, bool):
        raise TypeError(f"skip_existing must be a bool, not {skip_existing!r}")
    n = check_max_workers(max_workers)
    workers = n if n is not None else max(src._default_workers(), dst._default_workers())
    copier = _Copier(src, dst, workers, skip_existing)
    with Reporter(progress, total=None, desc="copy") as rep:
        copier.run(rep)
    summary = copier.summary()
    if summary.failures and errors == "raise":
        error = batch_error("copy", list(summary.failures.items()))
        error.summary = summary  # type: ignore[attr-defined]
        raise error
    return summary


class _Copier:
    """The state of one copy: counts, failures and the adaptive chunk size."""

    def __init__(self, src: PersiDict[Any], dst: PersiDict[Any], workers: int, skip_existing: bool) -> None:
        self.src, self.dst, self.workers, self.skip_existing = src, dst, workers, skip_existing
        self.chunk = workers
        self.copied = self.skipped = self.nbytes = 0
        self.failures: dict[NonEmptySafeStrTuple, Exception] = {}

    def summary(self) -> CopySummary:
        return CopySummary(self.copied, self.skipped, len(self.failures), self.nbytes, dict(self.failures))

    def run(self, rep: Reporter) -> None:
        keys = self.src._iter_keys()
        while chunk := list(islice(keys, self.chunk)):
            self.copy_chunk(chunk, rep)

    def copy_chunk(self, keys: list[NonEmptySafeStrTuple], rep: Reporter) -> None:
        if self.skip_existing:
            present = map_outcomes(self.dst._contains, keys, self.workers)
            todo = []
            for k, there in zip(keys, present, strict=True):
                if there is True:
                    self.skip(k, rep)
                elif isinstance(there, Exception):
                    self.fail(k, there, rep)
                else:
                    todo.append(k)
            keys = todo
        if not keys:
            return
        read = self.src._get_many(keys, self.workers, None)
        payloads: list[tuple[NonEmptySafeStrTuple, Any, Any]] = []
        for k, outcome in zip(keys, read, strict=True):
            if outcome is ABSENT:
                self.skip(k, rep)  # deleted from the source meanwhile
            elif isinstance(outcome, Exception):
                self.fail(k, outcome, rep)
            else:
                try:
                    ((key, value),) = self.dst._checked_items([(k, outcome[0])], {})
                    payloads.append((key, value, self.dst._serialised(key, value)))
                except Exception as e:
                    self.fail(k, e, rep)
        del read
        written = self.dst._set_serialised_many(payloads, self.workers, None) if payloads else []
        size = 0
        for (k, _, payload), outcome in zip(payloads, written, strict=True):
            if isinstance(outcome, Exception):
                self.fail(k, outcome, rep)
                continue
            n = len(payload) if isinstance(payload, bytes | bytearray | memoryview) else 0
            size += n
            self.copied += 1
            self.nbytes += n
            rep.advance(k, nbytes=n)
        self.resize(size, len(payloads))

    def resize(self, size: int, count: int) -> None:
        """Grow the chunk while its values are small; shrink it when they are large."""
        if count and size < CHUNK_BYTES // 2:
            self.chunk = min(self.chunk * 2, MAX_CHUNK)
        elif size > CHUNK_BYTES:
            self.chunk = max(self.chunk // 2, self.workers)

    def skip(self, key: NonEmptySafeStrTuple, rep: Reporter) -> None:
        self.skipped += 1
        rep.advance(key)

    def fail(self, key: NonEmptySafeStrTuple, e: Exception, rep: Reporter) -> None:
        self.failures[key] = e
        rep.advance(key, ok=False)
