"""Progress of long operations (batch operations, ``copy``, ``clear``, ``purge``).

Silent by default. ``progress=callback`` calls ``callback(event)`` once per
item done, with a :class:`ProgressEvent`; ``progress=True`` shows a
``tqdm`` progress bar (a terminal bar, or a widget in a notebook), from the
``progress`` extra: ``pip install "persidict[progress]"``. Nothing is logged
or printed otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeAlias

import attrs


@attrs.frozen
class ProgressEvent:
    """One item of a long operation is done.

    Attributes:
        key: the item's key (None when the operation does not name items).
        done: how many items are done, this one included.
        total: how many there are, when known in advance (else None).
        ok: False when this item failed (the operation then raises at its end).
        nbytes: the item's size in bytes, when the operation knows it.
    """

    key: Any
    done: int
    total: int | None
    ok: bool = True
    nbytes: int | None = None


ProgressOption: TypeAlias = "Callable[[ProgressEvent], object] | bool | None"
"""``None`` / ``False`` (silent), ``True`` (a progress bar) or a callback taking a ProgressEvent."""


class Reporter:
    """Turns finished items into ProgressEvents for a callback or a progress bar; use as a context."""

    def __init__(self, progress: ProgressOption, *, total: int | None, desc: str) -> None:
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise TypeError(f"progress must be None, a bool or a callable, not {progress!r}")
        self.total = total
        self.done = 0
        self._callback: Callable[[ProgressEvent], object] | None = None
        self._bar: Any = None
        if progress is True:
            self._bar = _progress_bar(total, desc)
        elif callable(progress) and not isinstance(progress, bool):
            self._callback = progress

    @property
    def silent(self) -> bool:
        """Whether nothing listens (callers may then skip building events)."""
        return self._callback is None and self._bar is None

    def advance(self, key: Any = None, *, ok: bool = True, nbytes: int | None = None) -> None:
        """One more item is done."""
        self.done += 1
        if self._callback is not None:
            self._callback(ProgressEvent(key, self.done, self.total, ok, nbytes))
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        """Close the progress bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Reporter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _progress_bar(total: int | None, desc: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "progress=True shows a tqdm progress bar: install it with pip install 'persidict[progress]'"
        ) from e
    return tqdm(total=total, desc=desc, unit="item", leave=False)
