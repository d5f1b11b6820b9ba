"""WriteOnceDict: the first write of a key wins; later writes are ignored (and spot-checked)."""

from __future__ import annotations

import math
import pickle
import random
import reprlib
from typing import Any

import attrs

from ..codecs import Codec, codec_for
from ..errors import MutationPolicyError
from ..flags import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    VALUE_NOT_RETRIEVED,
    ETagConditionFlag,
    ETagIfExists,
    ItemNotAvailableFlag,
    Joker,
    RetrieveValueFlag,
    TransformingFunction,
    ValueNotRetrievedFlag,
    ValueType,
)
from ..keys import NonEmptySafeStrTuple, SafeStrTuple
from ..ops.decide import wants_value
from ..persi_dict import PersiDict
from ..results import ConditionalOperationResult, OperationResult
from .base import WrapperDict, check_persidict

_short = reprlib.Repr()
_short.maxstring = 60
_short.maxother = 60


def _equal(a: object, b: object) -> bool:
    """``a == b`` as a bool; values whose ``==`` is not a bool (arrays) compare pickled."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except Exception:
        try:
            return pickle.dumps(a) == pickle.dumps(b)
        except Exception:
            return False


def values_match(stored: object, new: object, codec: Codec | None) -> bool:
    """Whether ``new`` is the value ``stored`` holds, allowing for the codec's round trip.

    A JSON store turns a tuple into a list, so ``new`` is also compared after
    being encoded and decoded by the store's codec. Values that ``==`` calls
    different although they are the same (``float("nan") != float("nan")``)
    match when the codec encodes them to the same bytes.
    """
    if _equal(stored, new):
        return True
    if codec is None:
        return False
    try:
        encoded = codec.encode(new)
        if _equal(stored, codec.decode(encoded)):
            return True
        return encoded == codec.encode(stored)
    except Exception:
        return False


def check_probability(p: object) -> float:
    """Validate ``p_consistency_checks``: a number in [0, 1]."""
    if isinstance(p, bool) or not isinstance(p, int | float) or math.isnan(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p_consistency_checks must be a number in [0, 1], not {p!r}")
    return float(p)


class WriteOnceDict(WrapperDict[ValueType]):
    """Wraps an append-only PersiDict: the first write of a key wins, later ones are ignored.

    Rewriting a key is not an error (content-addressed data is written again
    and again with the same value); the write is simply dropped. With
    probability ``p_consistency_checks`` a dropped write is compared with the
    stored value, and a mismatch raises ``MutationPolicyError("write-once")``
    naming the key. The first write is one atomic insert-if-absent on the
    wrapped dict, so concurrent first writers cannot both win.

    ``rng`` (a ``random.Random``) makes the spot checks reproducible; it is
    not part of ``get_params``. ``n_consistency_checks`` counts the checks made.
    """

    def __init__(
        self,
        *,
        wrapped_dict: PersiDict[ValueType],
        p_consistency_checks: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        wrapped = check_persidict("wrapped_dict", wrapped_dict)
        if not wrapped.append_only:
            raise ValueError(
                f"WriteOnceDict needs an append-only wrapped_dict; {type(wrapped).__name__} "
                "has append_only=False"
            )
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random or None, not {type(rng).__name__}")
        self._wrapped = wrapped
        self._p = check_probability(p_consistency_checks)
        self._rng = rng if rng is not None else random.Random()
        self.n_consistency_checks = 0
        try:
            self._codec: Codec | None = codec_for(wrapped.serialization_format)
        except (TypeError, ValueError):
            self._codec = None

    @property
    def p_consistency_checks(self) -> float:
        """The probability that an ignored rewrite is compared with the stored value."""
        return self._p

    @property
    def wrapped_dict(self) -> PersiDict[ValueType]:
        """The append-only dict that holds the items."""
        return self._wrapped

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted (``rng`` is not one: it holds no data)."""
        return {"p_consistency_checks": self._p, "wrapped_dict": self._wrapped}

    def _subdict(self, prefix: SafeStrTuple) -> WriteOnceDict[ValueType]:
        return WriteOnceDict(
            wrapped_dict=self._wrapped._subdict(prefix), p_consistency_checks=self._p, rng=self._rng
        )

    # ------------------------------------------------------------ checks

    def _draw(self) -> bool:
        """Whether this ignored write gets a consistency check."""
        p = self._p
        return p >= 1.0 or (p > 0.0 and self._rng.random() < p)

    def _verify(self, key: NonEmptySafeStrTuple, stored: object, new: object) -> None:
        self.n_consistency_checks += 1
        if not values_match(stored, new, self._codec):
            raise MutationPolicyError(
                "write-once",
                f"Key {key!r} of a WriteOnceDict already holds a different value: "
                f"stored {_short.repr(stored)}, attempted {_short.repr(new)}",
            )

    # ------------------------------------------------------------ writes

    def _set_item_if(
        self,
        key: NonEmptySafeStrTuple,
        value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        """A write that holds its condition inserts if absent, else is ignored (satisfied, not mutated)."""
        if isinstance(value, Joker):
            return self._wrapped._set_item_if(key, value, expected_etag, condition, retrieve)
        check = self._draw()
        res = self._wrapped._setdefault_if(
            key, value, expected_etag, condition, ALWAYS_RETRIEVE if check else retrieve
        )
        if not check or res.value_was_mutated:
            return res
        stored: ValueType | ItemNotAvailableFlag | ValueNotRetrievedFlag = res.new_value
        if res.condition_was_satisfied and res.actual_etag is not ITEM_NOT_AVAILABLE:
            self._verify(key, stored, value)
        if res.actual_etag is not ITEM_NOT_AVAILABLE and not wants_value(
            retrieve, expected_etag, res.actual_etag
        ):
            res = attrs.evolve(res, new_value=VALUE_NOT_RETRIEVED)
        return res

    def _set(self, key: NonEmptySafeStrTuple, value: Any) -> None:
        # A rewrite of a stored key (the common case for content-addressed
        # data) costs one existence check: no encoding, no write. The insert
        # itself stays one atomic insert-if-absent.
        if self._wrapped._contains(key):
            if not self._draw():
                return
            try:
                stored = self._wrapped._get(key)
            except KeyError:  # removed behind our back: insert below
                pass
            else:
                self._verify(key, stored, value)
                return
        self._set_item_if(key, value, ITEM_NOT_AVAILABLE, ANY_ETAG, NEVER_RETRIEVE)

    def _transform_item(
        self, key: NonEmptySafeStrTuple, transformer: TransformingFunction, max_attempts: int | None
    ) -> OperationResult[ValueType]:
        """The transformer's value is stored only if the key is absent; otherwise it is ignored."""

        def once(current: Any) -> Any:
            new = transformer(current)
            if current is ITEM_NOT_AVAILABLE or isinstance(new, Joker):
                return new
            if self._draw():
                self._verify(key, current, new)
            return KEEP_CURRENT

        return self._wrapped._transform_item(key, once, max_attempts)
