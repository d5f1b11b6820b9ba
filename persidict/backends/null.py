"""EmptyDict's store: the null device. Accepts every write, keeps nothing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .base import (
    Capabilities,
    IfMatch,
    Location,
    Precondition,
    PreconditionFailed,
    ReadAnswer,
    Stat,
)


class NullBackend:
    """Every location is always absent; writes are discarded."""

    capabilities = Capabilities(persistent=False)

    def describe(self) -> str:
        """Identify the store."""
        return "null"

    def where(self, loc: Location) -> str:
        """``null/<location>``."""
        return "null/" + "/".join(loc)

    def stat(self, loc: Location) -> Stat | None:
        """Always absent."""
        return None

    def read(self, loc: Location, *, if_none_match: str | None = None) -> ReadAnswer:
        """Always absent."""
        return None

    def write(self, loc: Location, data: bytes, *, precondition: Precondition = None) -> None:
        """Discard; an IfMatch can never hold on an absent location."""
        if isinstance(precondition, IfMatch):
            raise PreconditionFailed(loc, precondition)

    def delete(self, loc: Location, *, precondition: Precondition = None) -> bool:
        """Nothing to delete."""
        if isinstance(precondition, IfMatch):
            raise PreconditionFailed(loc, precondition)
        return False

    def list(self, prefix: Location) -> Iterator[Location]:
        """Nothing stored."""
        return iter(())

    def list_stats(self, prefix: Location) -> Iterator[tuple[Location, Stat]]:
        """Nothing stored."""
        return iter(())

    def delete_many(self, locs: Iterable[Location]) -> int:
        """Nothing to delete."""
        return 0
