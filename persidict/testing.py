"""Model-based testing of any PersiDict, for this library and for yours.

:func:`persidict_state_machine` builds a `hypothesis
<https://hypothesis.readthedocs.io>`_ ``RuleBasedStateMachine`` that drives a
fresh store through random sequences of every public operation — the dict
API, ETags, every conditional operation with every condition, expected-ETag
kind and retrieve mode, jokers, ``transform_item``, timestamps, sampling,
ordering by time, subdicts — and checks every answer, field by field,
against a small reference model (key -> value, ETag, timestamp).

The model treats ETags as opaque: it learns each one from a result or from
``etag()``, then checks that every later report agrees, that a write yields
an ETag different from the key's previous one (when the store's
``capabilities.unique_etags`` is False, as for content-hash ETags, only
when the stored bytes differ), and that a stale or made-up ETag is compared
exactly like the store's contract says. It also honours the store's
``append_only``, ``base_class_for_values`` and text ``serialization_format``
(values it writes are chosen to fit; writes that must fail are checked to
fail and to change nothing).

Keys come from a tiny alphabet of one- and two-part keys, spelled as str,
tuple, list, SafeStrTuple or nested sequences, so collisions and subdict
overlaps happen all the time. Values are small ints, strings and lists.

Usage, e.g. in ``tests/test_my_store.py`` (``hypothesis`` must be
installed; it is a dev dependency of persidict)::

    from hypothesis import settings
    from persidict.testing import persidict_state_machine

    def make_store() -> MyStore:
        return MyStore(location=fresh_empty_location())

    def drop_store(d: MyStore) -> None:
        d.destroy()

    TestMyStore = persidict_state_machine(make_store, cleanup=drop_store).TestCase
    TestMyStore.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)

``factory`` is called once per generated example and must return an empty
store; ``cleanup`` (if given) is called with it when the example ends.
Pass ``null_store=True`` for a store that, like EmptyDict, accepts every
write and keeps nothing: its reads and deletes find nothing whatever the key
(no key check, no append-only refusal), and ``transform_item`` never calls
the transformer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from .errors import BatchError, MutationPolicyError
from .flags import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    VALUE_NOT_RETRIEVED,
    ETagConditionFlag,
    RetrieveValueFlag,
)
from .keys import NonEmptySafeStrTuple, SafeStrTuple
from .persi_dict import PersiDict
from .results import ConditionalOperationResult, OperationResult
from .wrappers.cached import AppendOnlyDictCached

__all__ = ["persidict_state_machine"]

Key = tuple[str, ...]
KeyPick = tuple[Key, int]

_PARTS = ("a", "b", "c")
_KEYS: list[Key] = [(p,) for p in _PARTS] + [(p, q) for p in _PARTS for q in _PARTS]
_VALUE_POOL: list[Any] = [0, 1, 2, 7, "x", "y", "xy", "", [], [0], [0, 1], ["x"], [1, "y"]]
_BOGUS_ETAG = "persidict.testing:bogus-etag"
_FORMS = ("str", "tuple", "list", "safe", "nonempty", "nested")
_ETAG_KINDS = ("absent", "current", "stale", "bogus")
_RETRIEVES = ("always", "never", "if_changed", "default", "legacy_true", "legacy_false")
_CONDITIONS: list[ETagConditionFlag] = [ANY_ETAG, ETAG_IS_THE_SAME, ETAG_HAS_CHANGED]
_BAD_KEYS: list[tuple[object, type[Exception]]] = [
    ("a/b", ValueError),
    ("", ValueError),
    ("..", ValueError),
    (".", ValueError),
    ("é", ValueError),
    ("x" * 254, ValueError),
    (("a", ""), ValueError),
    ((), ValueError),
    (5, TypeError),
    (b"a", TypeError),
    ({"a": 1}, TypeError),
    (("a", 5), TypeError),
]

_keys = st.tuples(st.sampled_from(_KEYS), st.integers(0, 255))
"""A key of the alphabet, and a number that usually picks a stored key instead."""
_forms = st.sampled_from(_FORMS)
_values = st.integers(0, len(_VALUE_POOL) - 1)
_etag_kinds = st.sampled_from(_ETAG_KINDS)
_stale_ix = st.integers(0, 1000)
_conditions = st.sampled_from(_CONDITIONS)
_retrieves = st.sampled_from(_RETRIEVES)
_prefixes = st.sampled_from([(), *[(p,) for p in _PARTS]])


def _spell(key: Key, form: str) -> Any:
    """One of the many ways a user may write ``key``."""
    if form == "str" and len(key) == 1:
        return key[0]
    if form == "list":
        return list(key)
    if form == "safe":
        return SafeStrTuple(key)
    if form == "nonempty":
        return NonEmptySafeStrTuple(key)
    if form == "nested":
        return [key[0], tuple(key[1:])] if len(key) > 1 else [[key[0]]]
    return tuple(key)


def _hashable_spelling(key: Key, form: str) -> Any:
    """A spelling usable as a dict key."""
    s = _spell(key, form)
    return tuple(key) if isinstance(s, list) else s


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same type (so 1 and True, or a sentinel and a value, differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _sig(value: Any) -> str:
    """A stand-in for a value's stored bytes (for content-hash ETags)."""
    return f"{type(value).__name__}:{value!r}"


def _retrieve_kwargs(choice: str) -> tuple[dict[str, Any], RetrieveValueFlag]:
    """The keyword arguments for a retrieve choice, and the mode they mean."""
    table: dict[str, tuple[dict[str, Any], RetrieveValueFlag]] = {
        "always": ({"retrieve_value": ALWAYS_RETRIEVE}, ALWAYS_RETRIEVE),
        "never": ({"retrieve_value": NEVER_RETRIEVE}, NEVER_RETRIEVE),
        "if_changed": ({"retrieve_value": IF_ETAG_CHANGED}, IF_ETAG_CHANGED),
        "default": ({}, IF_ETAG_CHANGED),
        "legacy_true": ({"always_retrieve_value": True}, ALWAYS_RETRIEVE),
        "legacy_false": ({"always_retrieve_value": False}, IF_ETAG_CHANGED),
    }
    return table[choice]


def _holds(condition: ETagConditionFlag, expected: Any, actual: Any) -> bool:
    """The ETag condition table, written independently of persidict.ops.decide."""
    if condition is ANY_ETAG:
        return True
    same = expected is actual or (
        isinstance(expected, str) and isinstance(actual, str) and expected == actual
    )
    return same if condition is ETAG_IS_THE_SAME else not same


@attrs.define
class _Entry:
    """What the model knows about one stored key."""

    value: Any
    etag: str | None = None
    """The current ETag once observed (None: written since, not yet seen)."""
    differ_from: str | None = None
    """An ETag the unobserved current one must differ from."""
    ts: float | None = None
    """The timestamp once observed (None: written since, not yet seen)."""
    ts_floor: float | None = None
    """A timestamp the unobserved one must not be below."""


@attrs.frozen
class _Config:
    factory: Callable[[], PersiDict[Any]]
    null_store: bool
    cleanup: Callable[[PersiDict[Any]], None] | None


class _Transformer:
    """A transform_item transformer that records what it was called with."""

    def __init__(self, kind: str, const: Any) -> None:
        self.kind = kind
        self.const = const
        self.calls: list[Any] = []

    def __call__(self, current: Any) -> Any:
        self.calls.append(current)
        if self.kind == "keep":
            return KEEP_CURRENT
        if self.kind == "delete":
            return DELETE_CURRENT
        if self.kind == "const" or current is ITEM_NOT_AVAILABLE:
            return self.const
        if isinstance(current, bool) or not isinstance(current, int | str | list):
            return self.const
        if isinstance(current, int):
            return current + 1
        if isinstance(current, str):
            return current + "!"
        return [*current, 0]


class PersiDictMachine(RuleBasedStateMachine):
    """Drives one fresh store against the reference model (see the module docstring)."""

    config: ClassVar[_Config]

    def __init__(self) -> None:
        super().__init__()
        self.d: PersiDict[Any] = self.config.factory()
        self.null = self.config.null_store
        self.model: dict[Key, _Entry] = {}
        self.seen_etags: list[str] = []
        caps = getattr(self.d, "capabilities", None)
        self.unique_etags = bool(getattr(caps, "unique_etags", True))
        self.append_only = bool(getattr(self.d, "append_only", False))
        # AppendOnlyDictCached refuses every discard_if, as the published wrapper does.
        self.refuses_discard_if = isinstance(self.d, AppendOnlyDictCached)
        base = getattr(self.d, "base_class_for_values", None)
        fmt = getattr(self.d, "serialization_format", "pkl")
        text_only = isinstance(fmt, str) and fmt not in ("pkl", "json")
        pool = [v for v in _VALUE_POOL if (base is None or isinstance(v, base))]
        if text_only:
            pool = [v for v in pool if isinstance(v, str)]
        assert pool, f"no test value fits base_class_for_values={base!r}, format={fmt!r}"
        self.pool = pool
        self.bad_values: list[Any] = [v for v in _VALUE_POOL if not any(_same(v, p) for p in pool)]
        existing = list(self.d.keys())
        assert not existing, f"the factory must return an empty store, got keys {existing!r}"

    def teardown(self) -> None:
        """Release the store."""
        if self.config.cleanup is not None:
            self.config.cleanup(self.d)

    # ------------------------------------------------------------ model helpers

    def pick(self, kp: KeyPick) -> Key:
        """The drawn key, or (two times in three) a stored one, so operations hit items."""
        key, n = kp
        if n % 3 and self.model:
            stored = sorted(self.model)
            return stored[n % len(stored)]
        return key

    def value(self, ix: int) -> Any:
        """A fresh copy of a pool value that this store accepts."""
        v = self.pool[ix % len(self.pool)]
        return list(v) if isinstance(v, list) else v

    def learn(self, key: Key, etag: Any, what: str) -> None:
        """Check a reported ETag of a stored key against what the model knows."""
        e = self.model[key]
        assert isinstance(etag, str), f"{what}: ETag of stored key {key} is {etag!r}, not a str"
        if e.etag is None:
            assert etag != e.differ_from, (
                f"{what}: key {key} was written but its ETag {etag!r} did not change"
            )
            e.etag = etag
            self.seen_etags.append(etag)
        else:
            assert etag == e.etag, f"{what}: ETag of {key} is {etag!r}, the model knows {e.etag!r}"

    def check_actual(self, key: Key, actual: Any, what: str) -> None:
        """An ``actual_etag``: the key's current ETag, or ITEM_NOT_AVAILABLE."""
        if key in self.model:
            self.learn(key, actual, what)
        else:
            assert actual is ITEM_NOT_AVAILABLE, f"{what}: absent key {key} has ETag {actual!r}"

    def current_etag(self, key: Key) -> Any:
        """The key's ETag (asking the store if not yet seen), or ITEM_NOT_AVAILABLE."""
        e = self.model.get(key)
        if e is None:
            return ITEM_NOT_AVAILABLE
        if e.etag is None:
            self.learn(key, self.d.etag(key), "etag()")
        return e.etag

    def wrote(self, key: Key, value: Any) -> None:
        """Record a write of ``value`` at ``key`` (nothing, on a null store)."""
        if self.null:
            return
        old = self.model.get(key)
        entry = _Entry(value=value)
        if old is not None:
            prev = old.etag
            if self.unique_etags or _sig(old.value) != _sig(value):
                entry.differ_from = prev
            entry.ts_floor = old.ts if old.ts is not None else old.ts_floor
        self.model[key] = entry

    def deleted(self, key: Key) -> None:
        """Record that ``key`` is gone."""
        self.model.pop(key, None)

    def check_value(self, got: Any, expected: Any, what: str) -> None:
        """A value, a sentinel, or VALUE_NOT_RETRIEVED, compared exactly."""
        if expected is ITEM_NOT_AVAILABLE or expected is VALUE_NOT_RETRIEVED:
            assert got is expected, f"{what}: got {got!r}, expected {expected!r}"
        else:
            assert _same(got, expected), f"{what}: got {got!r}, expected {expected!r}"

    def check_ts(self, key: Key, ts: Any, what: str) -> None:
        """A timestamp: unchanged unless written, never earlier than before a write."""
        assert isinstance(ts, float), f"{what}: timestamp of {key} is {ts!r}, not a float"
        e = self.model[key]
        if e.ts is not None:
            assert ts == e.ts, f"{what}: timestamp of unchanged key {key} moved from {e.ts} to {ts}"
        else:
            assert e.ts_floor is None or ts >= e.ts_floor, (
                f"{what}: a write moved the timestamp of {key} back from {e.ts_floor} to {ts}"
            )
            e.ts = ts

    def seen_value(self, key: Key, expected: Any, retrieve: RetrieveValueFlag) -> Any:
        """What a result reports for a key it did not change."""
        e = self.model.get(key)
        if e is None:
            return ITEM_NOT_AVAILABLE
        if retrieve is ALWAYS_RETRIEVE:
            return e.value
        if retrieve is NEVER_RETRIEVE:
            return VALUE_NOT_RETRIEVED
        return VALUE_NOT_RETRIEVED if _holds(ETAG_IS_THE_SAME, expected, e.etag) else e.value

    def expected_etag(self, key: Key, kind: str, ix: int) -> Any:
        """An expected ETag of the drawn kind."""
        if kind == "absent":
            return ITEM_NOT_AVAILABLE
        if kind == "current":
            return self.current_etag(key)
        if kind == "stale" and self.seen_etags:
            return self.seen_etags[ix % len(self.seen_etags)]
        return _BOGUS_ETAG

    def check_result(
        self,
        r: Any,
        what: str,
        *,
        satisfied: bool,
        actual: Any,
        resulting: Any,
        new_value: Any,
        mutated: bool,
    ) -> None:
        """Every field of a ConditionalOperationResult."""
        assert isinstance(r, ConditionalOperationResult), f"{what}: returned {r!r}"
        assert r.condition_was_satisfied is satisfied, (
            f"{what}: condition_was_satisfied={r.condition_was_satisfied!r}, expected {satisfied}"
        )
        assert r.actual_etag == actual, f"{what}: actual_etag={r.actual_etag!r}, expected {actual!r}"
        assert r.resulting_etag == resulting, (
            f"{what}: resulting_etag={r.resulting_etag!r}, expected {resulting!r}"
        )
        self.check_value(r.new_value, new_value, f"{what}: new_value")
        if resulting == actual:  # the same bytes rewritten under content-hash ETags: no change seen
            mutated = False
        assert r.value_was_mutated is mutated, (
            f"{what}: value_was_mutated={r.value_was_mutated!r}, expected {mutated}"
        )

    def expect_error(self, exc: type[Exception], fn: Callable[[], object], what: str) -> Exception:
        """Run ``fn``, which must raise ``exc``."""
        try:
            fn()
        except exc as e:
            return e
        raise AssertionError(f"{what}: expected {exc.__name__}, nothing was raised")

    def refused(self, fn: Callable[[], object], what: str) -> None:
        """Run ``fn``, which an append-only store must refuse."""
        e = self.expect_error(MutationPolicyError, fn, what)
        assert isinstance(e, MutationPolicyError) and isinstance(e, TypeError)

    def batch_refused(self, fn: Callable[[], object], keys: list[Key], what: str) -> None:
        """Run ``fn``, a batch whose ``keys`` an append-only store refuses (one error, or a BatchError)."""
        e = self.expect_error(Exception, fn, what)
        if len(keys) == 1:
            assert isinstance(e, MutationPolicyError), f"{what}: raised {e!r}"
            return
        assert isinstance(e, BatchError), f"{what}: raised {e!r}, not a BatchError"
        named = sorted(tuple(k) for k in e.keys if isinstance(k, tuple))
        assert named == sorted(keys), f"{what}: BatchError names {e.keys}"
        assert all(isinstance(x, MutationPolicyError) for x in e.exceptions), f"{what}: {e.exceptions!r}"

    def after_write(self, key: Key, value: Any, resulting: Any, what: str) -> Any:
        """Record a write reported by a result; return the expected resulting ETag."""
        if self.null:
            return ITEM_NOT_AVAILABLE
        self.wrote(key, value)
        self.learn(key, resulting, what)
        return self.model[key].etag

    def key_set(self, ks: Iterable[Any], what: str) -> set[Key]:
        """Keys returned by the store: NonEmptySafeStrTuples, no duplicates."""
        out: list[Key] = []
        for k in ks:
            assert isinstance(k, NonEmptySafeStrTuple), f"{what}: key {k!r} is not a NonEmptySafeStrTuple"
            out.append(tuple(k))
        assert len(out) == len(set(out)), f"{what}: duplicate keys in {out!r}"
        return set(out)

    # ------------------------------------------------------------ invariant

    @invariant()
    def keys_match(self) -> None:
        """The store holds exactly the model's keys."""
        got = self.key_set(self.d, "iter(d)")
        assert got == set(self.model), f"keys: store has {sorted(got)}, model has {sorted(self.model)}"

    # ------------------------------------------------------------ the dict API

    @rule(kp=_keys, form=_forms, ix=_values, joker=st.sampled_from(["value", "value", "keep", "delete"]))
    def set_item(self, kp: KeyPick, form: str, ix: int, joker: str) -> None:
        """``d[k] = v`` with values and jokers."""
        key = self.pick(kp)
        k = _spell(key, form)
        if joker == "keep":
            self.d[k] = KEEP_CURRENT
            return
        if joker == "delete":
            if self.append_only:
                self.refused(lambda: self.d.__setitem__(k, DELETE_CURRENT), "d[k] = DELETE_CURRENT")
                return
            self.d[k] = DELETE_CURRENT
            self.deleted(key)
            return
        v = self.value(ix)
        if self.append_only and key in self.model:
            self.refused(lambda: self.d.__setitem__(k, v), "overwrite of an append-only key")
            return
        self.d[k] = v
        self.wrote(key, v)

    @rule(kp=_keys, form=_forms)
    def get_item(self, kp: KeyPick, form: str) -> None:
        """``d[k]``, ``d.get(k)``, ``d.get(k, default)``, ``k in d``."""
        key = self.pick(kp)
        k = _spell(key, form)
        marker = object()
        e = self.model.get(key)
        if e is None:
            self.expect_error(KeyError, lambda: self.d[k], f"d[{key}] of an absent key")
            assert self.d.get(k) is None
            assert self.d.get(k, marker) is marker
            assert k not in self.d
        else:
            self.check_value(self.d[k], e.value, f"d[{key}]")
            self.check_value(self.d.get(k), e.value, f"d.get({key})")
            self.check_value(self.d.get(k, marker), e.value, f"d.get({key}, default)")
            assert k in self.d, f"{key} in d is False"

    @rule(kp=_keys, form=_forms)
    def del_item(self, kp: KeyPick, form: str) -> None:
        """``del d[k]``."""
        key = self.pick(kp)
        k = _spell(key, form)
        if self.null:  # nothing to delete, whatever the policy
            self.expect_error(KeyError, lambda: self.d.__delitem__(k), f"del d[{key}] of a null store")
        elif self.append_only:
            self.refused(lambda: self.d.__delitem__(k), "del d[k] on an append-only store")
        elif key in self.model:
            del self.d[k]
            self.deleted(key)
        else:
            self.expect_error(KeyError, lambda: self.d.__delitem__(k), f"del d[{key}] of an absent key")

    @rule(kp=_keys, form=_forms, use_alias=st.booleans())
    def discard(self, kp: KeyPick, form: str, use_alias: bool) -> None:
        """``discard`` and ``delete_if_exists``."""
        key = self.pick(kp)
        k = _spell(key, form)
        fn = self.d.delete_if_exists if use_alias else self.d.discard
        if self.append_only and not self.null:
            self.refused(lambda: fn(k), "discard on an append-only store")
            return
        got = fn(k)
        assert got is (key in self.model), f"discard({key}) returned {got!r}"
        self.deleted(key)

    @rule()
    def length(self) -> None:
        """``len(d)`` and ``bool(d)``."""
        assert len(self.d) == len(self.model), f"len(d)={len(self.d)}, model has {len(self.model)}"
        assert bool(self.d) is bool(self.model)

    @rule(view=st.sampled_from(["keys", "values", "items"]))
    def views(self, view: str) -> None:
        """``keys()``, ``values()``, ``items()``."""
        if view == "keys":
            got = self.key_set(self.d.keys(), "keys()")
            assert got == set(self.model), f"keys(): {sorted(got)}"
        elif view == "values":
            vals = sorted(_sig(v) for v in self.d.values())
            assert vals == sorted(_sig(e.value) for e in self.model.values()), f"values(): {vals}"
        else:
            items = list(self.d.items())
            got = self.key_set((k for k, _ in items), "items()")
            assert got == set(self.model), f"items() keys: {sorted(got)}"
            for k, v in items:
                self.check_value(v, self.model[tuple(k)].value, f"items()[{k}]")

    @rule(which=st.sampled_from(["keys", "values", "items", "timestamp"]), kp=_keys, form=_forms)
    def timestamps(self, which: str, kp: KeyPick, form: str) -> None:
        """``keys_and_timestamps`` / ``values_and_timestamps`` / ``items_and_timestamps`` / ``timestamp``."""
        key = self.pick(kp)
        if which == "timestamp":
            k = _spell(key, form)
            if key in self.model:
                self.check_ts(key, self.d.timestamp(k), f"timestamp({key})")
            else:
                self.expect_error(KeyError, lambda: self.d.timestamp(k), f"timestamp({key}) of an absent key")
        elif which == "keys":
            pairs = list(self.d.keys_and_timestamps())
            assert self.key_set((k for k, _ in pairs), "keys_and_timestamps()") == set(self.model)
            for k, t in pairs:
                self.check_ts(tuple(k), t, "keys_and_timestamps()")
        elif which == "values":
            vts = list(self.d.values_and_timestamps())
            assert sorted(_sig(v) for v, _ in vts) == sorted(_sig(e.value) for e in self.model.values())
            for _, t in vts:
                assert isinstance(t, float), f"values_and_timestamps(): timestamp {t!r}"
        else:
            triples = list(self.d.items_and_timestamps())
            assert self.key_set((k for k, _, _ in triples), "items_and_timestamps()") == set(self.model)
            for k, v, t in triples:
                self.check_value(v, self.model[tuple(k)].value, f"items_and_timestamps()[{k}]")
                self.check_ts(tuple(k), t, "items_and_timestamps()")

    @rule(kp=_keys, form=_forms, ix=_values)
    def setdefault(self, kp: KeyPick, form: str, ix: int) -> None:
        """``setdefault(k, default)``."""
        key = self.pick(kp)
        k = _spell(key, form)
        default = self.value(ix)
        e = self.model.get(key)
        if e is not None:
            self.check_value(self.d.setdefault(k, default), e.value, f"setdefault({key}) of a stored key")
            return
        got = self.d.setdefault(k, default)
        self.check_value(got, default, f"setdefault({key}) of an absent key")
        self.wrote(key, default)

    @rule(
        picks=st.lists(st.tuples(_keys, _forms, _values), max_size=4),
        how=st.sampled_from(["mapping", "pairs", "kwargs", "ior", "set_many", "set_many_pairs"]),
        joker=st.sampled_from([None, None, "keep", "delete"]),
        workers=st.sampled_from([None, 1, 3]),
    )
    def update(
        self, picks: list[tuple[KeyPick, str, int]], how: str, joker: str | None, workers: int | None
    ) -> None:
        """``update(mapping | pairs | **kwargs)``, ``d |= mapping``, ``set_many``: many writes at once.

        Every item is checked before the first write; a key given twice is
        written once, with its last value; on an append-only store, keys that
        exist fail (one MutationPolicyError, or a BatchError of them) and the
        others are written.
        """
        pairs = [(self.pick(kp), form, ix) for kp, form, ix in picks]
        if how == "kwargs":
            pairs = [(key, "str", ix) for key, _, ix in pairs if len(key) == 1]
        writes: list[tuple[Key, Any, Any]] = [
            (key, _hashable_spelling(key, form), self.value(ix)) for key, form, ix in pairs
        ]
        if joker is not None and writes:
            key, k, _ = writes[0]
            writes[0] = (key, k, KEEP_CURRENT if joker == "keep" else DELETE_CURRENT)
        if how not in ("pairs", "set_many_pairs"):
            # A mapping keeps one slot per distinct spelling: the first position, the last value.
            model_key = {k: key for key, k, _ in writes}
            mapping = {k: v for _, k, v in writes}
            writes = [(model_key[k], k, v) for k, v in mapping.items()]

        def call() -> None:
            if how == "pairs":
                self.d.update([(k, v) for _, k, v in writes])
            elif how == "kwargs":
                self.d.update(**{k: v for _, k, v in writes})
            elif how == "ior":
                self.d |= {k: v for _, k, v in writes}
            elif how == "set_many":
                self.d.set_many({k: v for _, k, v in writes}, max_workers=workers)
            elif how == "set_many_pairs":
                self.d.set_many([(k, v) for _, k, v in writes], max_workers=workers)
            else:
                self.d.update({k: v for _, k, v in writes})

        last: dict[Key, Any] = {}
        for key, _, v in writes:
            last.pop(key, None)
            last[key] = v
        if self.append_only and any(v is DELETE_CURRENT for _, _, v in writes):  # checked item by item
            self.refused(call, f"{how}() with DELETE_CURRENT on an append-only store")
            return
        failing = [key for key, v in last.items() if self.append_only and not self.null
                   and key in self.model and v is not KEEP_CURRENT]
        if failing:
            self.batch_refused(call, failing, f"{how}() overwriting append-only keys {failing}")
        else:
            call()
        for key, v in last.items():
            if v is DELETE_CURRENT:
                self.deleted(key)
            elif v is not KEEP_CURRENT and key not in failing:
                self.wrote(key, v)

    @rule(
        picks=st.lists(st.tuples(_keys, _forms), max_size=4),
        with_etags=st.booleans(),
        workers=st.sampled_from([None, 1, 3]),
    )
    def get_many(self, picks: list[tuple[KeyPick, str]], with_etags: bool, workers: int | None) -> None:
        """``get_many(keys)``: the values of the keys that exist (and their ETags)."""
        keys = [self.pick(kp) for kp, _ in picks]
        spelled = [_spell(key, form) for key, (_, form) in zip(keys, picks, strict=True)]
        got = self.d.get_many(spelled, with_etags=with_etags, max_workers=workers)
        what = f"get_many({keys})"
        assert isinstance(got, dict), f"{what} returned {got!r}"
        found = self.key_set(got, what)
        assert found == {k for k in keys if k in self.model}, f"{what}: found {sorted(found)}"
        for k, v in got.items():
            key = tuple(k)
            if with_etags:
                assert isinstance(v, tuple) and len(v) == 2, f"{what}[{key}] = {v!r}"
                self.learn(key, v[1], what)
                v = v[0]
            self.check_value(v, self.model[key].value, f"{what}[{key}]")

    @rule(
        picks=st.lists(st.tuples(_keys, _forms), max_size=4),
        workers=st.sampled_from([None, 1, 3]),
    )
    def discard_many(self, picks: list[tuple[KeyPick, str]], workers: int | None) -> None:
        """``discard_many(keys)``: deletes the keys that exist and counts them."""
        keys = [self.pick(kp) for kp, _ in picks]
        spelled = [_spell(key, form) for key, (_, form) in zip(keys, picks, strict=True)]
        if self.append_only and keys and not self.null:
            self.refused(lambda: self.d.discard_many(spelled, max_workers=workers), "discard_many, append")
            return
        n = self.d.discard_many(spelled, max_workers=workers)
        assert n == len({k for k in keys if k in self.model}), f"discard_many({keys}) returned {n}"
        for key in keys:
            self.deleted(key)

    @rule(kp=_keys, form=_forms, with_default=st.booleans())
    def pop(self, kp: KeyPick, form: str, with_default: bool) -> None:
        """``pop(k)`` and ``pop(k, default)``."""
        key = self.pick(kp)
        k = _spell(key, form)
        marker = object()
        if self.append_only and not self.null:
            self.refused(lambda: self.d.pop(k, marker), "pop on an append-only store")
            return
        e = self.model.get(key)
        if e is None:
            if with_default:
                assert self.d.pop(k, marker) is marker
            else:
                self.expect_error(KeyError, lambda: self.d.pop(k), f"pop({key}) of an absent key")
            return
        got = self.d.pop(k, marker) if with_default else self.d.pop(k)
        self.check_value(got, e.value, f"pop({key})")
        self.deleted(key)

    @rule()
    def popitem(self) -> None:
        """``popitem()``."""
        if self.append_only:
            self.refused(self.d.popitem, "popitem on an append-only store")
            return
        if not self.model:
            self.expect_error(KeyError, self.d.popitem, "popitem() of an empty store")
            return
        k, v = self.d.popitem()
        key = tuple(k)
        assert isinstance(k, NonEmptySafeStrTuple) and key in self.model, f"popitem() returned key {k!r}"
        self.check_value(v, self.model[key].value, f"popitem() value of {key}")
        self.deleted(key)

    @rule(go=st.integers(0, 3))
    def clear(self, go: int) -> None:
        """``clear()`` (drawn rarely, so stores get to fill up)."""
        if go:
            return
        if self.append_only:
            self.refused(self.d.clear, "clear on an append-only store")
            return
        self.d.clear()
        self.model.clear()

    @rule(extra=st.sampled_from(["none", "str_keys", "missing", "invalid", "different"]))
    def equality(self, extra: str) -> None:
        """``d == mapping`` compares items, whatever the spelling of the mapping's keys."""
        expected: dict[Any, Any] = {k: e.value for k, e in self.model.items()}
        if extra == "str_keys":
            expected = {k[0] if len(k) == 1 else k: v for k, v in expected.items()}
            assert self.d == expected, "d == {str key: value} is False"
        elif extra == "missing":
            expected[("zz",)] = 0
            assert self.d != expected
        elif extra == "invalid" and expected:
            first = next(iter(expected))
            expected["not/a key"] = expected.pop(first)
            assert self.d != expected and not (self.d == expected)  # noqa: SIM201 - both operators
        elif extra == "different" and expected:
            first = next(iter(expected))
            expected[first] = ("not", "a", "pool", "value")
            assert self.d != expected
        else:
            assert self.d == expected, "d == dict(model) is False"

    # ------------------------------------------------------------ ETags

    @rule(kp=_keys, form=_forms, both=st.booleans())
    def etag(self, kp: KeyPick, form: str, both: bool) -> None:
        """``etag(k)`` and ``get_with_etag(k)``."""
        key = self.pick(kp)
        k = _spell(key, form)
        e = self.model.get(key)
        if both:
            r = self.d.get_with_etag(k)
            what = f"get_with_etag({key})"
            self.check_actual(key, r.actual_etag, what)
            actual = self.current_etag(key)
            self.check_result(
                r, what, satisfied=True, actual=actual, resulting=actual,
                new_value=ITEM_NOT_AVAILABLE if e is None else e.value, mutated=False,
            )
        elif e is None:
            self.expect_error(KeyError, lambda: self.d.etag(k), f"etag({key}) of an absent key")
        else:
            self.learn(key, self.d.etag(k), f"etag({key})")

    # ------------------------------------------------------------ conditional operations

    @rule(kp=_keys, form=_forms, kind=_etag_kinds, six=_stale_ix, cond=_conditions, ret=_retrieves)
    def get_item_if(
        self, kp: KeyPick, form: str, kind: str, six: int, cond: ETagConditionFlag, ret: str
    ) -> None:
        """``get_item_if`` with every condition, expected-ETag kind and retrieve mode."""
        key = self.pick(kp)
        expected = self.expected_etag(key, kind, six)
        kwargs, mode = _retrieve_kwargs(ret)
        r = self.d.get_item_if(_spell(key, form), expected_etag=expected, condition=cond, **kwargs)
        what = f"get_item_if({key}, {expected!r}, {cond!r}, {ret})"
        assert isinstance(r, ConditionalOperationResult), f"{what}: returned {r!r}"
        self.check_actual(key, r.actual_etag, what)
        actual = self.current_etag(key)
        self.check_result(
            r, what,
            satisfied=_holds(cond, expected, actual),
            actual=actual,
            resulting=actual,
            new_value=self.seen_value(key, expected, mode),
            mutated=False,
        )

    @rule(
        kp=_keys, form=_forms, ix=_values,
        joker=st.sampled_from(["value", "value", "keep", "delete"]),
        kind=_etag_kinds, six=_stale_ix, cond=_conditions, ret=_retrieves,
    )
    def set_item_if(
        self,
        kp: KeyPick,
        form: str,
        ix: int,
        joker: str,
        kind: str,
        six: int,
        cond: ETagConditionFlag,
        ret: str,
    ) -> None:
        """``set_item_if`` with values, KEEP_CURRENT and DELETE_CURRENT."""
        key = self.pick(kp)
        expected = self.expected_etag(key, kind, six)
        kwargs, mode = _retrieve_kwargs(ret)
        value: Any = {"keep": KEEP_CURRENT, "delete": DELETE_CURRENT}.get(joker)
        if value is None:
            value = self.value(ix)
        k = _spell(key, form)
        what = f"set_item_if({key}, {value!r}, {expected!r}, {cond!r}, {ret})"

        def call() -> Any:
            return self.d.set_item_if(k, value=value, expected_etag=expected, condition=cond, **kwargs)

        if self.append_only and value is DELETE_CURRENT:
            self.refused(call, what)
            return
        actual = self.current_etag(key)
        satisfied = _holds(cond, expected, actual)
        if self.append_only and satisfied and joker == "value" and key in self.model:
            self.refused(call, what)
            return
        r = call()
        assert isinstance(r, ConditionalOperationResult), f"{what}: returned {r!r}"
        self.check_actual(key, r.actual_etag, what)
        if not satisfied or value is KEEP_CURRENT:
            self.check_result(
                r, what, satisfied=satisfied, actual=actual, resulting=actual,
                new_value=self.seen_value(key, expected, mode), mutated=False,
            )
        elif value is DELETE_CURRENT:
            present = key in self.model
            self.deleted(key)
            self.check_result(
                r, what, satisfied=True, actual=actual, resulting=ITEM_NOT_AVAILABLE,
                new_value=ITEM_NOT_AVAILABLE, mutated=present,
            )
        else:
            resulting = self.after_write(key, value, r.resulting_etag, what)
            self.check_result(
                r, what, satisfied=True, actual=actual, resulting=resulting,
                new_value=ITEM_NOT_AVAILABLE if self.null else value, mutated=not self.null,
            )

    @rule(
        kp=_keys, form=_forms, ix=_values, kind=_etag_kinds, six=_stale_ix, cond=_conditions, ret=_retrieves
    )
    def setdefault_if(
        self, kp: KeyPick, form: str, ix: int, kind: str, six: int, cond: ETagConditionFlag, ret: str
    ) -> None:
        """``setdefault_if``: insert only if the condition holds and the key is absent."""
        key = self.pick(kp)
        expected = self.expected_etag(key, kind, six)
        kwargs, mode = _retrieve_kwargs(ret)
        default = self.value(ix)
        what = f"setdefault_if({key}, {default!r}, {expected!r}, {cond!r}, {ret})"
        actual = self.current_etag(key)
        satisfied = _holds(cond, expected, actual)
        r = self.d.setdefault_if(
            _spell(key, form), default_value=default, expected_etag=expected, condition=cond, **kwargs
        )
        assert isinstance(r, ConditionalOperationResult), f"{what}: returned {r!r}"
        self.check_actual(key, r.actual_etag, what)
        if satisfied and key not in self.model:
            resulting = self.after_write(key, default, r.resulting_etag, what)
            self.check_result(
                r, what, satisfied=True, actual=actual, resulting=resulting,
                new_value=ITEM_NOT_AVAILABLE if self.null else default, mutated=not self.null,
            )
        else:
            self.check_result(
                r, what, satisfied=satisfied, actual=actual, resulting=actual,
                new_value=self.seen_value(key, expected, mode), mutated=False,
            )

    @rule(kp=_keys, form=_forms, kind=_etag_kinds, six=_stale_ix, cond=_conditions, alias=st.booleans())
    def discard_if(
        self, kp: KeyPick, form: str, kind: str, six: int, cond: ETagConditionFlag, alias: bool
    ) -> None:
        """``discard_if`` / ``discard_item_if``."""
        key = self.pick(kp)
        expected = self.expected_etag(key, kind, six)
        k = _spell(key, form)
        what = f"discard_if({key}, {expected!r}, {cond!r})"
        fn = self.d.discard_item_if if alias else self.d.discard_if

        def call() -> Any:
            return fn(k, expected_etag=expected, condition=cond)

        actual = self.current_etag(key)
        satisfied = _holds(cond, expected, actual)
        present = key in self.model
        if self.append_only and (self.refuses_discard_if or (satisfied and present)):
            self.refused(call, what)
            return
        r = call()
        assert isinstance(r, ConditionalOperationResult), f"{what}: returned {r!r}"
        self.check_actual(key, r.actual_etag, what)
        if satisfied:
            self.deleted(key)
            self.check_result(
                r, what, satisfied=True, actual=actual, resulting=ITEM_NOT_AVAILABLE,
                new_value=ITEM_NOT_AVAILABLE, mutated=present,
            )
        else:
            self.check_result(
                r, what, satisfied=False, actual=actual, resulting=actual,
                new_value=VALUE_NOT_RETRIEVED if present else ITEM_NOT_AVAILABLE, mutated=False,
            )

    @rule(
        kp=_keys, form=_forms, ix=_values,
        kind=st.sampled_from(["const", "derive", "derive", "keep", "delete"]),
        n_retries=st.sampled_from([None, 0, 6]),
    )
    def transform_item(self, kp: KeyPick, form: str, ix: int, kind: str, n_retries: int | None) -> None:
        """``transform_item`` with values, derived values, KEEP_CURRENT and DELETE_CURRENT."""
        key = self.pick(kp)
        t = _Transformer(kind, self.value(ix))
        k = _spell(key, form)
        e = self.model.get(key)
        current = ITEM_NOT_AVAILABLE if e is None else e.value
        what = f"transform_item({key}, {kind})"

        def call() -> Any:
            return self.d.transform_item(k, t, n_retries=n_retries)

        out = t(current)
        t.calls.clear()
        if self.null:  # nothing to transform: the transformer is not called
            r = call()
            assert r == OperationResult(ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE), f"{what}: returned {r!r}"
            assert not t.calls, f"{what}: a null store called the transformer"
            return
        if self.append_only and (kind == "delete" or (e is not None and kind in ("const", "derive"))):
            self.refused(call, what)
            return
        r = call()
        assert isinstance(r, OperationResult), f"{what}: returned {r!r}"
        assert t.calls, f"{what}: the transformer was never called"
        self.check_value(t.calls[-1], current, f"{what}: the transformer's argument")
        if kind == "keep":
            resulting: Any = ITEM_NOT_AVAILABLE if e is None else self.current_etag(key)
            new: Any = current
        elif kind == "delete" or self.null:
            self.deleted(key)
            resulting, new = ITEM_NOT_AVAILABLE, ITEM_NOT_AVAILABLE
        else:
            resulting, new = self.after_write(key, out, r.resulting_etag, what), out
        assert r.resulting_etag == resulting, (
            f"{what}: resulting_etag={r.resulting_etag!r}, expected {resulting!r}"
        )
        self.check_value(r.new_value, new, f"{what}: new_value")

    # ------------------------------------------------------------ sampling, ordering

    @rule()
    def random_key(self) -> None:
        """``random_key()``: None when empty, else a stored key."""
        k = self.d.random_key()
        if not self.model:
            assert k is None, f"random_key() of an empty store returned {k!r}"
        else:
            assert isinstance(k, NonEmptySafeStrTuple) and tuple(k) in self.model, f"random_key() = {k!r}"

    @rule(newest=st.booleans(), max_n=st.sampled_from([None, -1, 0, 1, 2, 5, 100]))
    def by_time(self, newest: bool, max_n: int | None) -> None:
        """``oldest_keys`` / ``newest_keys`` / ``oldest_values`` / ``newest_values`` with ``max_n``."""
        ts: dict[Key, float] = {}
        for k, t in self.d.keys_and_timestamps():
            self.check_ts(tuple(k), t, "keys_and_timestamps()")
            ts[tuple(k)] = t
        n = len(ts) if max_n is None else max(0, min(max_n, len(ts)))
        name = "newest" if newest else "oldest"
        got_keys = getattr(self.d, f"{name}_keys")(max_n)
        assert isinstance(got_keys, list), f"{name}_keys returned {got_keys!r}"
        ks = [tuple(k) for k in got_keys]
        assert len(ks) == n and len(set(ks)) == n and set(ks) <= set(ts), f"{name}_keys({max_n}) = {ks}"
        times = [ts[k] for k in ks]
        assert times == sorted(times, reverse=newest), f"{name}_keys({max_n}) not ordered by time: {times}"
        rest = [t for k, t in ts.items() if k not in set(ks)]
        if ks and rest:
            assert (min(times) >= max(rest)) if newest else (max(times) <= min(rest)), (
                f"{name}_keys({max_n}) skipped a {name}r key"
            )
        got_values = getattr(self.d, f"{name}_values")(max_n)
        assert isinstance(got_values, list) and len(got_values) == n, (
            f"{name}_values({max_n}) = {got_values!r}"
        )
        if n:
            edge = times[-1]
            candidates = [k for k, t in ts.items() if (t >= edge if newest else t <= edge)]
            pool = sorted(_sig(self.model[k].value) for k in candidates)
            for v in got_values:
                assert _sig(v) in pool, f"{name}_values({max_n}) returned {v!r}"
                pool.remove(_sig(v))

    # ------------------------------------------------------------ subdicts

    @rule(
        prefix=_prefixes, kp=_keys, form=_forms, ix=_values,
        op=st.sampled_from(["keys", "len", "get", "set", "discard", "etag", "set_if"]),
    )
    def subdict(self, prefix: Key, kp: KeyPick, form: str, ix: int, op: str) -> None:
        """A ``get_subdict`` view: reads, writes and deletes through it agree with the parent."""
        key = self.pick(kp)
        sub = self.d.get_subdict(prefix)
        assert isinstance(sub, PersiDict), f"get_subdict({prefix}) returned {sub!r}"
        n = len(prefix)
        inside = {k[n:]: e for k, e in self.model.items() if k[:n] == prefix and len(k) > n}
        sub_key = key[: 2 - n] if n else key
        full = prefix + sub_key
        k = _spell(sub_key, form)
        what = f"get_subdict({prefix}).{op}({sub_key})"
        if op == "keys":
            assert self.key_set(sub.keys(), what) == set(inside), what
        elif op == "len":
            assert len(sub) == len(inside), what
        elif op == "get":
            e = inside.get(sub_key)
            if e is None:
                self.expect_error(KeyError, lambda: sub[k], what)
            else:
                self.check_value(sub[k], e.value, what)
        elif op == "etag":
            if sub_key in inside:
                self.learn(full, sub.etag(k), what)
            else:
                self.expect_error(KeyError, lambda: sub.etag(k), what)
        elif op == "discard":
            if self.append_only and not self.null:
                self.refused(lambda: sub.discard(k), what)
                return
            assert sub.discard(k) is (sub_key in inside), what
            self.deleted(full)
        else:
            v = self.value(ix)
            if self.append_only and full in self.model:
                fn = (lambda: sub.__setitem__(k, v)) if op == "set" else (
                    lambda: sub.set_item_if(k, value=v, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG))
                self.refused(fn, what)
                return
            if op == "set":
                sub[k] = v
                self.wrote(full, v)
                return
            actual = self.current_etag(full)
            r = sub.set_item_if(k, value=v, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG)
            assert isinstance(r, ConditionalOperationResult), f"{what}: returned {r!r}"
            self.check_actual(full, r.actual_etag, what)
            resulting = self.after_write(full, v, r.resulting_etag, what)
            self.check_result(
                r, what, satisfied=True, actual=actual, resulting=resulting,
                new_value=ITEM_NOT_AVAILABLE if self.null else v, mutated=not self.null,
            )

    @rule()
    def subdicts(self) -> None:
        """``subdicts()``: one view per first part of a multi-part key."""
        subs = self.d.subdicts()
        firsts = {k[0] for k in self.model if len(k) > 1}
        assert isinstance(subs, dict) and set(subs) == firsts, f"subdicts() keys: {sorted(subs)}"
        for first, sub in subs.items():
            expected = {k[1:] for k in self.model if len(k) > 1 and k[0] == first}
            assert self.key_set(sub.keys(), f"subdicts()[{first!r}]") == expected

    # ------------------------------------------------------------ errors change nothing

    @rule(
        bad=st.sampled_from(
            [
                "key", "condition", "expected", "retrieve", "n_retries",
                "persidict", "flag", "joker_default", "type",
            ]
        ),
        bix=st.integers(0, len(_BAD_KEYS) - 1), kp=_keys, form=_forms, ix=_values,
    )
    def bad_call(self, bad: str, bix: int, kp: KeyPick, form: str, ix: int) -> None:
        """A bad key, flag or value raises a clear error and changes nothing."""
        key = self.pick(kp)
        d: Any = self.d  # deliberately called with wrong types
        k = _spell(key, form)
        v = self.value(ix)
        before = {kk: (e.value, self.current_etag(kk)) for kk, e in self.model.items()}
        if bad == "key":
            bad_key, exc = _BAD_KEYS[bix]
            self.expect_error(exc, lambda: d.__setitem__(bad_key, v), f"d[{bad_key!r}] = v")
            if self.null:  # reads of a null store find nothing, whatever the key
                self.expect_error(KeyError, lambda: d[bad_key], f"d[{bad_key!r}] of a null store")
                assert d.get(bad_key, v) is v and bad_key not in d
            else:
                self.expect_error(exc, lambda: d[bad_key], f"d[{bad_key!r}]")
            self.expect_error(
                exc,
                lambda: d.set_item_if(bad_key, value=v, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG),
                f"set_item_if({bad_key!r})",
            )
        elif bad == "condition":
            self.expect_error(TypeError, lambda: d.set_item_if(
                k, value=v, expected_etag=ITEM_NOT_AVAILABLE, condition="ANY_ETAG"), "condition='ANY_ETAG'")
        elif bad == "expected":
            self.expect_error(TypeError, lambda: d.set_item_if(
                k, value=v, expected_etag=5, condition=ANY_ETAG), "expected_etag=5")
        elif bad == "retrieve":
            self.expect_error(TypeError, lambda: d.get_item_if(
                k, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG, retrieve_value=True),
                "retrieve_value=True")
        elif bad == "n_retries":
            t = _Transformer("const", v)
            wrong, exc = [("2", TypeError), (1.5, TypeError), ([1], TypeError), (-1, ValueError)][ix % 4]
            self.expect_error(exc, lambda: d.transform_item(k, t, n_retries=wrong), f"n_retries={wrong!r}")
            assert not t.calls, f"transform_item(n_retries={wrong!r}) called the transformer"
        elif bad == "persidict":
            self.expect_error(TypeError, lambda: d.__setitem__(k, d), "storing a PersiDict")
        elif bad == "flag":
            flag = (ITEM_NOT_AVAILABLE, VALUE_NOT_RETRIEVED, ANY_ETAG, ALWAYS_RETRIEVE)[ix % 4]
            self.expect_error(TypeError, lambda: d.__setitem__(k, flag), f"storing the flag {flag!r}")
        elif bad == "joker_default":
            joker = KEEP_CURRENT if ix % 2 else DELETE_CURRENT
            if not self.null:  # a null store's setdefault returns the default unread
                self.expect_error(TypeError, lambda: d.setdefault(k, joker), "setdefault(k, joker)")
            self.expect_error(TypeError, lambda: d.setdefault_if(
                k, default_value=joker, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG),
                "setdefault_if(k, joker)")
        elif self.bad_values:
            wrong = self.bad_values[ix % len(self.bad_values)]
            self.expect_error(TypeError, lambda: d.__setitem__(k, wrong), f"storing {wrong!r}")
            self.expect_error(TypeError, lambda: d.set_item_if(
                k, value=wrong, expected_etag=ITEM_NOT_AVAILABLE, condition=ANY_ETAG),
                f"set_item_if({wrong!r})")
        for kk, (val, tag) in before.items():
            self.check_value(self.d[kk], val, f"after a bad {bad}: d[{kk}]")
            assert d.etag(kk) == tag, f"after a bad {bad}: the ETag of {kk} changed"


def persidict_state_machine(
    factory: Callable[[], PersiDict[Any]],
    *,
    null_store: bool = False,
    cleanup: Callable[[PersiDict[Any]], None] | None = None,
) -> type[RuleBasedStateMachine]:
    """A hypothesis state machine testing the stores ``factory()`` makes against the model.

    Args:
        factory: returns a fresh, empty store; called once per example.
        null_store: the store keeps nothing (like EmptyDict): every write is
            accepted and discarded, results report ITEM_NOT_AVAILABLE, reads
            and deletes find nothing whatever the key, and ``transform_item``
            never calls the transformer.
        cleanup: called with the store when an example ends.

    Returns:
        A ``RuleBasedStateMachine`` subclass; its ``.TestCase`` attribute is a
        ``unittest.TestCase`` that pytest collects (set ``.settings`` on it).
    """
    config = _Config(factory=factory, null_store=null_store, cleanup=cleanup)
    return type("PersiDictStateMachine", (PersiDictMachine,), {"config": config})
