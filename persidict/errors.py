"""Errors raised by persidict, each carrying what went wrong and where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

MutationPolicy = Literal["append-only", "write-once"]


class MutationPolicyError(TypeError):
    """A write or delete that the dict's mutation policy forbids.

    ``MutationPolicyError("append-only")`` is enough: ``.policy`` holds the
    policy and ``str(e)`` is the policy. Our own raises also pass a message
    naming the key and the dict.
    """

    def __init__(self, policy: MutationPolicy | str, message: str | None = None) -> None:
        super().__init__(policy if message is None else message)
        self.policy: MutationPolicy | str = policy
        self.message: str | None = message

    def __reduce__(self) -> tuple[type, tuple[MutationPolicy | str, str | None]]:
        # Picklable (e.g. raised in a worker process) with its attributes.
        return (type(self), (self.policy, self.message))


class ConcurrencyConflictError(RuntimeError):
    """A retrying operation gave up: other writers kept changing the key."""

    def __init__(self, key: object, attempts: int) -> None:
        super().__init__(
            f"Gave up on key {key!r} after {attempts} attempts: "
            "it kept changing under concurrent writers"
        )
        self.key = key
        self.attempts = attempts

    def __reduce__(self) -> tuple[type, tuple[object, int]]:
        return (type(self), (self.key, self.attempts))


class BackendError(RuntimeError):
    """A storage backend failed (permission, I/O, network) — not a missing key."""

    def __init__(
        self, message: str, *, backend: str, operation: str, key: object = None
    ) -> None:
        where = f" (backend {backend}, operation {operation}"
        where += f", key {key!r})" if key is not None else ")"
        super().__init__(message + where)
        self.message = message
        self.backend = backend
        self.operation = operation
        self.key = key

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (_rebuild_backend_error, (type(self), self.message, self.backend, self.operation, self.key))


def _rebuild_backend_error(
    cls: type[BackendError], message: str, backend: str, operation: str, key: object
) -> BackendError:
    """Unpickle a BackendError (its constructor takes keyword arguments)."""
    return cls(message, backend=backend, operation=operation, key=key)


class CorruptValueError(BackendError):
    """A stored value could not be decoded."""


class BatchError(ExceptionGroup[Exception]):
    """Some items of a batch operation failed; the others were done (each item is all-or-nothing).

    An ``ExceptionGroup`` of the items' exceptions (``except* BackendError``
    works), with ``keys`` (the failed keys, in the batch's order) and
    ``failures`` (key -> its exception). A batch with a single failure
    raises that exception itself instead.
    """

    keys: list[object]
    failures: dict[object, Exception]

    def __new__(cls, message: str, failures: list[tuple[object, Exception]]) -> BatchError:
        self = super().__new__(cls, message, [e for _, e in failures])
        self.keys = [k for k, _ in failures]
        self.failures = dict(failures)
        return self

    def __init__(self, message: str, failures: list[tuple[object, Exception]]) -> None:
        super().__init__(message, [e for _, e in failures])

    def derive(self, excs: Sequence[Exception], /) -> BatchError:  # type: ignore[override]
        """The same kind of group over a subset of the exceptions (for ``except*`` and ``split``)."""
        kept = {id(e) for e in excs}
        return BatchError(self.message, [(k, e) for k, e in self.failures.items() if id(e) in kept])

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (type(self), (self.message, list(self.failures.items())))


def batch_error(operation: str, failures: list[tuple[object, Exception]]) -> Exception:
    """The exception for a batch with ``failures``: the one exception, or a BatchError naming every key."""
    if len(failures) == 1:
        return failures[0][1]
    keys = ", ".join(repr(k) for k, _ in failures[:20])
    more = f" and {len(failures) - 20} more" if len(failures) > 20 else ""
    return BatchError(f"{operation} failed for {len(failures)} keys: {keys}{more}", failures)
