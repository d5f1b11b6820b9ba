"""The interpreter: observe, decide, act, and on a lost race observe again.

This is the only place, besides the backends themselves, where commands meet
I/O. Every conditional action carries a precondition pinned to what was
observed; when the backend answers PreconditionFailed, somebody else wrote
in between, so the command is decided again against the new state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..backends.base import IF_ABSENT, Backend, IfAbsent, NotModified, PreconditionFailed, Stat
from ..flags import (
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    VALUE_NOT_RETRIEVED,
    ETagIfExists,
    ETagValue,
    Joker,
)
from ..results import ConditionalOperationResult, OperationResult
from . import decide as d
from .commands import (
    DiscardIf,
    DiscardItem,
    GetItem,
    GetItemIf,
    SetDefaultIf,
    SetItem,
    SetItemIf,
    StatItem,
    Target,
    TransformItem,
)

MAX_CONDITIONAL_ATTEMPTS = 1000
"""A conditional command re-decided this often under contention gives up."""


def _decode(backend: Backend, target: Target, data: bytes) -> Any:
    return target.coder.decode(target.key, data, lambda: backend.where(target.loc))


def _etag(stat: Stat | None) -> ETagIfExists:
    return ITEM_NOT_AVAILABLE if stat is None else ETagValue(stat.etag)


def run_get(backend: Backend, cmd: GetItem) -> Any:
    """``d[key]``: one read; KeyError when absent."""
    got = backend.read(cmd.target.loc)
    if got is None or isinstance(got, NotModified):
        raise KeyError(cmd.target.key)
    return _decode(backend, cmd.target, got[0])


def run_set(backend: Backend, cmd: SetItem) -> Stat | None:
    """``d[key] = value``: one write (create-only in an append-only dict)."""
    if not cmd.append_only:
        return backend.write(cmd.target.loc, cmd.data)
    try:
        return backend.write(cmd.target.loc, cmd.data, precondition=IF_ABSENT)
    except PreconditionFailed:
        raise d.refuse_overwrite(cmd.target.key) from None


def run_stat(backend: Backend, cmd: StatItem) -> Stat | None:
    """The key's metadata: one stat."""
    return backend.stat(cmd.target.loc)


def run_discard(backend: Backend, cmd: DiscardItem) -> bool:
    """Delete if present: one unconditional delete."""
    return backend.delete(cmd.target.loc)


Observation = tuple[ETagIfExists, bytes | None]
"""The observed ETag, and the bytes when they were read."""


def _observe(backend: Backend, cmd: GetItemIf | SetItemIf | SetDefaultIf | DiscardIf) -> Observation:
    loc = cmd.target.loc
    if not d.may_need_value(cmd):
        return _etag(backend.stat(loc)), None
    assert not isinstance(cmd, DiscardIf)
    got = backend.read(loc, if_none_match=d.if_none_match_for(cmd))
    if got is None:
        return ITEM_NOT_AVAILABLE, None
    if isinstance(got, NotModified):
        return ETagValue(got.stat.etag), None
    return ETagValue(got[1].etag), got[0]


def _act(backend: Backend, cmd_loc: tuple[str, ...], action: d.Action) -> tuple[ETagIfExists, bool]:
    """Carry out an action; return the resulting ETag and whether anything changed."""
    if isinstance(action, d.Write):
        stat = backend.write(cmd_loc, action.data, precondition=action.precondition)
        return _etag(stat), stat is not None
    if isinstance(action, d.Delete):
        return ITEM_NOT_AVAILABLE, backend.delete(cmd_loc, precondition=action.precondition)
    raise AssertionError(action)  # pragma: no cover


_DECIDERS: dict[type, Callable[[Any, ETagIfExists], d.Decision]] = {
    GetItemIf: d.decide_get_if,
    SetItemIf: d.decide_set_if,
    SetDefaultIf: d.decide_setdefault_if,
    DiscardIf: d.decide_discard_if,
}


def _expects_absent(cmd: GetItemIf | SetItemIf | SetDefaultIf | DiscardIf) -> bool:
    """Whether ``cmd`` is an insert conditional on the key being absent."""
    return (
        isinstance(cmd, SetItemIf | SetDefaultIf)
        and cmd.condition is ETAG_IS_THE_SAME
        and cmd.expected_etag is ITEM_NOT_AVAILABLE
    )


def _expects_current(cmd: GetItemIf | SetItemIf | SetDefaultIf | DiscardIf) -> bool:
    """Whether ``cmd`` writes or deletes only if the key holds one given ETag (never refused by policy)."""
    return (
        isinstance(cmd, SetItemIf)
        and cmd.condition is ETAG_IS_THE_SAME
        and cmd.expected_etag is not ITEM_NOT_AVAILABLE
        and cmd.value is not KEEP_CURRENT
        and not cmd.append_only
    )


def run_conditional(
    backend: Backend, cmd: GetItemIf | SetItemIf | SetDefaultIf | DiscardIf, *, guess_current: bool = False
) -> ConditionalOperationResult[Any]:
    """Run a conditional command to a result that is true of one moment.

    ``guess_current``: a write or delete conditional on the key holding a
    given ETag is first tried pinned to that ETag, before observing anything
    (one request on S3 when the ETag is current; when it is not, the
    refused attempt is followed by the usual observation).
    """
    decide_fn = _DECIDERS[type(cmd)]
    target = cmd.target
    guess_absent = _expects_absent(cmd)
    guess_current = guess_current and _expects_current(cmd)
    actual: ETagIfExists
    data: bytes | None
    for _ in d.attempt_numbers(target.key, MAX_CONDITIONAL_ATTEMPTS):
        if guess_current:
            # Pinned to the expected ETag: the backend checks it atomically as it writes.
            guess_current = False
            actual, data = cmd.expected_etag, None
            decision = decide_fn(cmd, actual)
        elif guess_absent:
            # An insert that expects no item: try the create-only write before
            # observing anything (one request on S3); observe if it fails.
            guess_absent = False
            actual, data = ITEM_NOT_AVAILABLE, None
            decision = decide_fn(cmd, actual)
            action = decision.action
            if not (isinstance(action, d.Write) and isinstance(action.precondition, IfAbsent)):
                actual, data = _observe(backend, cmd)
                decision = decide_fn(cmd, actual)
        else:
            actual, data = _observe(backend, cmd)
            decision = decide_fn(cmd, actual)
        resulting: ETagIfExists = actual
        mutated = False
        if decision.action is not None:
            try:
                resulting, mutated = _act(backend, target.loc, decision.action)
            except PreconditionFailed:
                continue
        new_value: Any
        if decision.outcome is d.Outcome.WRITTEN:
            if isinstance(cmd, SetItemIf):
                new_value = cmd.value
            else:
                assert isinstance(cmd, SetDefaultIf)
                new_value = cmd.default_value
            if not mutated:  # a null store discarded the write
                new_value = ITEM_NOT_AVAILABLE
        elif decision.outcome is d.Outcome.ABSENT or actual is ITEM_NOT_AVAILABLE:
            new_value = ITEM_NOT_AVAILABLE
        elif isinstance(cmd, DiscardIf) or not d.wants_value(cmd.retrieve, cmd.expected_etag, actual):
            new_value = VALUE_NOT_RETRIEVED
        else:
            if data is None:
                # Observed by stat only; fetch now (rare: only under NEVER/ANY mixes).
                got = backend.read(target.loc)
                if got is None or isinstance(got, NotModified) or got[1].etag != actual:
                    continue  # changed since observed: decide again
                data = got[0]
            new_value = _decode(backend, target, data)
        return ConditionalOperationResult(
            condition_was_satisfied=decision.satisfied,
            actual_etag=actual,
            resulting_etag=resulting,
            new_value=new_value,
        )
    raise AssertionError("unreachable: attempt_numbers raises when the attempts run out")


def run_transform(backend: Backend, cmd: TransformItem) -> OperationResult[Any]:
    """Read, transform, write back pinned to the version read; retry on conflict."""
    target = cmd.target
    for _ in d.attempt_numbers(target.key, cmd.max_attempts):
        got = backend.read(target.loc)
        if got is None or isinstance(got, NotModified):
            actual: ETagIfExists = ITEM_NOT_AVAILABLE
            current: Any = ITEM_NOT_AVAILABLE
        else:
            actual = ETagValue(got[1].etag)
            current = _decode(backend, target, got[0])
        new_value = cmd.transformer(current)
        data = None
        if not isinstance(new_value, Joker):
            data = target.coder.encode(target.key, new_value)
        decision = d.decide_transform(new_value, data, actual, cmd.append_only, target.key)
        if decision.action is None:
            if decision.outcome is d.Outcome.ABSENT:
                return OperationResult(ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
            return OperationResult(actual, current)
        try:
            resulting, mutated = _act(backend, target.loc, decision.action)
        except PreconditionFailed:
            continue
        if decision.outcome is d.Outcome.ABSENT or not mutated:
            return OperationResult(ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)
        return OperationResult(resulting, new_value)
    raise AssertionError("unreachable: attempt_numbers raises when the attempts run out")
