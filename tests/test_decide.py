"""Property tests of the pure decision table in persidict.ops.decide.

Every (condition, expected ETag, actual ETag, retrieve mode, value kind,
append-only) combination is enumerated — there are few — and the verdict
is compared with the contract written out here independently. Hypothesis
adds arbitrary ETag strings, so equality is by value, not identity.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import persidict.ops
from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    MutationPolicyError,
    NonEmptySafeStrTuple,
)
from persidict.backends.base import IF_ABSENT, IfAbsent, IfMatch, Precondition
from persidict.codecs import PickleCodec, ValueCoder
from persidict.flags import ETagConditionFlag, ETagIfExists, ETagValue, RetrieveValueFlag
from persidict.ops import decide as d
from persidict.ops.commands import DiscardIf, GetItemIf, SetDefaultIf, SetItemIf, Target

CONDITIONS: list[ETagConditionFlag] = [ANY_ETAG, ETAG_IS_THE_SAME, ETAG_HAS_CHANGED]
RETRIEVES: list[RetrieveValueFlag] = [ALWAYS_RETRIEVE, NEVER_RETRIEVE, IF_ETAG_CHANGED]
ETAGS: list[ETagIfExists] = [ITEM_NOT_AVAILABLE, ETagValue("e1"), ETagValue("e2")]
VALUES: list[Any] = ["v", KEEP_CURRENT, DELETE_CURRENT]
KEY = NonEmptySafeStrTuple("k")
TARGET = Target(KEY, ("k.pkl",), ValueCoder(PickleCodec()))
DATA = b"encoded"

ALL = list(itertools.product(CONDITIONS, ETAGS, ETAGS, RETRIEVES))


def holds(condition: ETagConditionFlag, expected: ETagIfExists, actual: ETagIfExists) -> bool:
    """The seeds' table: ANY always; SAME when expected == actual; CHANGED when they differ."""
    if condition is ANY_ETAG:
        return True
    same = expected == actual
    return same if condition is ETAG_IS_THE_SAME else not same


def pinned(condition: ETagConditionFlag, actual: ETagIfExists) -> Precondition:
    """Unconditional actions are last-write-wins; conditional ones are pinned to the observation."""
    if condition is ANY_ETAG:
        return None
    return IF_ABSENT if actual is ITEM_NOT_AVAILABLE else IfMatch(str(actual))


def consistent_with(precondition: Precondition, actual: ETagIfExists) -> bool:
    """A precondition that would hold on the observed state."""
    if precondition is None:
        return True
    if isinstance(precondition, IfAbsent):
        return actual is ITEM_NOT_AVAILABLE
    return actual is not ITEM_NOT_AVAILABLE and precondition.etag == actual


def test_the_table_has_every_combination() -> None:
    assert len(ALL) == 3 * 3 * 3 * 3


@pytest.mark.parametrize(("condition", "expected", "actual", "retrieve"), ALL)
def test_condition_and_retrieve(
    condition: ETagConditionFlag, expected: ETagIfExists, actual: ETagIfExists, retrieve: RetrieveValueFlag
) -> None:
    assert d.condition_holds(condition, expected, actual) is holds(condition, expected, actual)
    want = {ALWAYS_RETRIEVE: True, NEVER_RETRIEVE: False}.get(retrieve, expected != actual)
    assert d.wants_value(retrieve, expected, actual) is want


@pytest.mark.parametrize(("condition", "expected", "actual", "retrieve"), ALL)
def test_get_if_never_acts(
    condition: ETagConditionFlag, expected: ETagIfExists, actual: ETagIfExists, retrieve: RetrieveValueFlag
) -> None:
    v = d.decide_get_if(GetItemIf(TARGET, expected, condition, retrieve), actual)
    assert v == d.Decision(holds(condition, expected, actual), None, d.Outcome.CURRENT)


@pytest.mark.parametrize("append_only", [False, True])
@pytest.mark.parametrize("value", VALUES)
@pytest.mark.parametrize(("condition", "expected", "actual", "retrieve"), ALL)
def test_set_if(
    condition: ETagConditionFlag,
    expected: ETagIfExists,
    actual: ETagIfExists,
    retrieve: RetrieveValueFlag,
    value: Any,
    append_only: bool,
) -> None:
    data = None if value is KEEP_CURRENT or value is DELETE_CURRENT else DATA
    cmd = SetItemIf(TARGET, value, data, expected, condition, retrieve, append_only)
    absent = actual is ITEM_NOT_AVAILABLE
    if not holds(condition, expected, actual):
        assert d.decide_set_if(cmd, actual) == d.Decision(False, None, d.Outcome.CURRENT)
    elif value is KEEP_CURRENT:
        assert d.decide_set_if(cmd, actual) == d.Decision(True, None, d.Outcome.CURRENT)
    elif value is DELETE_CURRENT:
        want_action = None if absent else d.Delete(pinned(condition, actual))
        assert d.decide_set_if(cmd, actual) == d.Decision(True, want_action, d.Outcome.ABSENT)
    elif append_only and not absent:
        with pytest.raises(MutationPolicyError) as e:
            d.decide_set_if(cmd, actual)
        assert e.value.policy == "append-only" and "'k'" in str(e.value)
    else:
        want = IF_ABSENT if append_only else pinned(condition, actual)
        assert d.decide_set_if(cmd, actual) == d.Decision(True, d.Write(DATA, want), d.Outcome.WRITTEN)


@pytest.mark.parametrize(("condition", "expected", "actual", "retrieve"), ALL)
def test_setdefault_if(
    condition: ETagConditionFlag, expected: ETagIfExists, actual: ETagIfExists, retrieve: RetrieveValueFlag
) -> None:
    v = d.decide_setdefault_if(SetDefaultIf(TARGET, "v", DATA, expected, condition, retrieve), actual)
    if not holds(condition, expected, actual):
        assert v == d.Decision(False, None, d.Outcome.CURRENT)
    elif actual is ITEM_NOT_AVAILABLE:
        # Always create-only, even under ANY_ETAG: a concurrent insert must not be overwritten.
        assert v == d.Decision(True, d.Write(DATA, IF_ABSENT), d.Outcome.WRITTEN)
    else:
        assert v == d.Decision(True, None, d.Outcome.CURRENT)


@pytest.mark.parametrize(
    ("condition", "expected", "actual"), list(itertools.product(CONDITIONS, ETAGS, ETAGS))
)
def test_discard_if(condition: ETagConditionFlag, expected: ETagIfExists, actual: ETagIfExists) -> None:
    v = d.decide_discard_if(DiscardIf(TARGET, expected, condition), actual)
    if not holds(condition, expected, actual):
        assert v == d.Decision(False, None, d.Outcome.CURRENT)
    elif actual is ITEM_NOT_AVAILABLE:
        assert v == d.Decision(True, None, d.Outcome.ABSENT)
    else:
        assert v == d.Decision(True, d.Delete(pinned(condition, actual)), d.Outcome.ABSENT)


@pytest.mark.parametrize("append_only", [False, True])
@pytest.mark.parametrize("new_value", VALUES)
@pytest.mark.parametrize("actual", ETAGS)
def test_transform(actual: ETagIfExists, new_value: Any, append_only: bool) -> None:
    data = None if new_value is KEEP_CURRENT or new_value is DELETE_CURRENT else DATA
    absent = actual is ITEM_NOT_AVAILABLE
    pin = d.pin(actual)  # a transform is always pinned to the version it read
    if new_value is KEEP_CURRENT:
        assert d.decide_transform(new_value, data, actual, append_only, KEY) == d.Decision(
            True, None, d.Outcome.CURRENT
        )
    elif new_value is DELETE_CURRENT:
        want_action = None if absent else d.Delete(pin)
        assert d.decide_transform(new_value, data, actual, append_only, KEY) == d.Decision(
            True, want_action, d.Outcome.ABSENT
        )
    elif append_only and not absent:
        with pytest.raises(MutationPolicyError):
            d.decide_transform(new_value, data, actual, append_only, KEY)
    else:
        assert d.decide_transform(new_value, data, actual, append_only, KEY) == d.Decision(
            True, d.Write(DATA, pin), d.Outcome.WRITTEN
        )


def test_pin() -> None:
    assert d.pin(ITEM_NOT_AVAILABLE) is IF_ABSENT
    assert d.pin(ETagValue("e1")) == IfMatch("e1")


@pytest.mark.parametrize(("condition", "expected", "actual", "retrieve"), ALL)
def test_every_action_is_pinned_to_the_observation(
    condition: ETagConditionFlag, expected: ETagIfExists, actual: ETagIfExists, retrieve: RetrieveValueFlag
) -> None:
    """Whatever the command, its precondition holds on exactly the state observed."""
    decisions = [
        d.decide_setdefault_if(SetDefaultIf(TARGET, "v", DATA, expected, condition, retrieve), actual),
        d.decide_discard_if(DiscardIf(TARGET, expected, condition), actual),
    ]
    for value in VALUES:
        data = DATA if value == "v" else None
        cmd = SetItemIf(TARGET, value, data, expected, condition, retrieve)
        decisions.append(d.decide_set_if(cmd, actual))
    for v in decisions:
        if v.action is not None:
            assert v.satisfied
            assert consistent_with(v.action.precondition, actual)
            if condition is not ANY_ETAG:
                assert v.action.precondition is not None


@pytest.mark.parametrize(("condition", "expected", "actual", "retrieve"), ALL)
def test_decisions_do_not_depend_on_the_retrieve_mode(
    condition: ETagConditionFlag, expected: ETagIfExists, actual: ETagIfExists, retrieve: RetrieveValueFlag
) -> None:
    def verdicts(r: RetrieveValueFlag) -> list[d.Decision]:
        return [
            d.decide_get_if(GetItemIf(TARGET, expected, condition, r), actual),
            d.decide_set_if(SetItemIf(TARGET, "v", DATA, expected, condition, r), actual),
            d.decide_setdefault_if(SetDefaultIf(TARGET, "v", DATA, expected, condition, r), actual),
        ]

    assert verdicts(retrieve) == verdicts(ALWAYS_RETRIEVE)


@pytest.mark.parametrize(
    ("condition", "expected", "retrieve"), list(itertools.product(CONDITIONS, ETAGS, RETRIEVES))
)
def test_what_to_observe(
    condition: ETagConditionFlag, expected: ETagIfExists, retrieve: RetrieveValueFlag
) -> None:
    get = GetItemIf(TARGET, expected, condition, retrieve)
    assert d.may_need_value(get) is (retrieve is not NEVER_RETRIEVE)
    assert d.may_need_value(DiscardIf(TARGET, expected, condition)) is False
    for value in VALUES:
        cmd = SetItemIf(TARGET, value, None, expected, condition, retrieve)
        # An unconditional write/delete reports what it wrote, never what it found.
        need = retrieve is not NEVER_RETRIEVE and (condition is not ANY_ETAG or value is KEEP_CURRENT)
        assert d.may_need_value(cmd) is need
    inm = d.if_none_match_for(get)
    if retrieve is IF_ETAG_CHANGED and expected is not ITEM_NOT_AVAILABLE:
        assert inm == expected
    else:
        assert inm is None


def test_unknown_condition_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="condition"):
        d.condition_holds("ANY_ETAG", ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE)  # type: ignore[arg-type]


etag_text = st.text(alphabet="abc0123-\"", max_size=4).map(ETagValue)
some_etag = st.one_of(st.just(ITEM_NOT_AVAILABLE), etag_text)


@given(condition=st.sampled_from(CONDITIONS), expected=some_etag, actual=some_etag)
def test_conditions_compare_etag_strings_by_value(
    condition: ETagConditionFlag, expected: ETagIfExists, actual: ETagIfExists
) -> None:
    # A copy of the same string (a different object) is the same ETag.
    copied = ETagValue("".join(str(actual))) if isinstance(actual, str) else actual
    assert d.condition_holds(condition, expected, copied) is holds(condition, expected, actual)
    assert d.condition_holds(ETAG_IS_THE_SAME, expected, actual) is not d.condition_holds(
        ETAG_HAS_CHANGED, expected, actual
    )


@given(
    condition=st.sampled_from(CONDITIONS),
    expected=some_etag,
    actual=some_etag,
    retrieve=st.sampled_from(RETRIEVES),
    value=st.sampled_from(VALUES),
)
def test_unsatisfied_commands_never_act(
    condition: ETagConditionFlag,
    expected: ETagIfExists,
    actual: ETagIfExists,
    retrieve: RetrieveValueFlag,
    value: Any,
) -> None:
    cmds: list[Any] = [
        (d.decide_set_if, SetItemIf(TARGET, value, DATA, expected, condition, retrieve, True)),
        (d.decide_setdefault_if, SetDefaultIf(TARGET, "v", DATA, expected, condition, retrieve)),
        (d.decide_discard_if, DiscardIf(TARGET, expected, condition)),
        (d.decide_get_if, GetItemIf(TARGET, expected, condition, retrieve)),
    ]
    for fn, cmd in cmds:
        if not holds(condition, expected, actual):
            assert fn(cmd, actual) == d.Decision(False, None, d.Outcome.CURRENT)


OPS_DIR = Path(persidict.ops.__file__).parent
FORBIDDEN_MODULES = {"os", "io", "socket", "time", "pathlib", "shutil", "tempfile", "threading", "random"}


@pytest.mark.parametrize("module", sorted(p.name for p in OPS_DIR.glob("*.py")))
def test_ops_import_no_backend_and_do_no_io(module: str) -> None:
    tree = ast.parse((OPS_DIR / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [("." * node.level) + (node.module or "")]
        else:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("open", "print"), f"{module} calls {node.func.id}()"
            continue
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{module} imports {name}"
            if "backends" in name:
                assert name.endswith("backends.base"), f"{module} imports the backend module {name}"


@given(st.integers(min_value=1, max_value=50))
def test_attempt_numbers_counts_up_to_the_limit_then_raises(limit: int) -> None:
    from persidict.errors import ConcurrencyConflictError
    from persidict.ops.decide import attempt_numbers

    seen: list[int] = []
    with pytest.raises(ConcurrencyConflictError) as info:
        for n in attempt_numbers(("k",), limit):
            seen.append(n)
    assert seen == list(range(1, limit + 1))
    assert info.value.attempts == limit and info.value.key == ("k",)


def test_attempt_numbers_without_a_limit_never_runs_out() -> None:
    from persidict.ops.decide import attempt_numbers

    numbers = attempt_numbers(("k",), None)
    assert [next(numbers) for _ in range(1000)][-1] == 1000
