"""WriteOnceDict: the first write of a key wins; later writes are ignored (and spot-checked)."""

from __future__ import annotations

import math
import pickle
import random
import reprlib
from typing import Any, NoReturn

from ..codecs import Codec, codec_for
from ..errors import MutationPolicyError
from ..flags import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    NEVER_RETRIEVE,
    ETagConditionFlag,
    ETagIfExists,
    ItemNotAvailableFlag,
    Joker,
    KeepCurrentFlag,
    RetrieveValueFlag,
    TransformingFunction,
    ValueNotRetrievedFlag,
    ValueType,
)
from ..keys import NonEmptySafeStrTuple, SafeStrTuple
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
    """Validate ``p_consistency_checks``: a number in [0, 1] (None means 0.0)."""
    if p is None:
        return 0.0
    if isinstance(p, bool) or not isinstance(p, int | float) or math.isnan(p) or not 0.0 <= p <= 1.0:
        raise ValueError(f"p_consistency_checks must be a number in [0, 1], not {p!r}")
    return float(p)


def _default_wrapped_dict() -> PersiDict[Any]:
    """An append-only FileDirDict in FileDirDict's default folder."""
    from ..file_dir_dict import FileDirDict

    return FileDirDict(append_only=True)


def _no_conditional_writes(what: str) -> MutationPolicyError:
    """The error of a conditional write (``set_item_if``, ``transform_item``) on a WriteOnceDict."""
    return MutationPolicyError(
        "write-once",
        f"{what} is not allowed on a write-once dict (WriteOnceDict): a key is written once, "
        "with d[key] = value or setdefault_if()",
    )


class WriteOnceDict(WrapperDict[ValueType]):
    """Wraps an append-only PersiDict: the first write of a key wins, later ones are ignored.

    Rewriting a key is not an error (content-addressed data is written again
    and again with the same value); the write is simply dropped. With
    probability ``p_consistency_checks`` a dropped write is compared with the
    stored value, and a mismatch raises ``MutationPolicyError("write-once")``
    naming the key. The first write is one atomic insert-if-absent on the
    wrapped dict, so concurrent first writers cannot both win.

    Keys are inserted with ``d[key] = value`` (``update``, ``|=``) or
    ``setdefault``/``setdefault_if``. ``set_item_if`` always raises
    ``MutationPolicyError("write-once")``, and so does ``transform_item`` when
    the transformer returns a value (KEEP_CURRENT changes nothing).

    ``wrapped_dict`` defaults to ``FileDirDict(append_only=True)`` in
    FileDirDict's default folder; attributes WriteOnceDict does not define are
    read from it (``d.base_dir``). ``rng`` (a ``random.Random``) makes the
    spot checks reproducible; it is not part of ``get_params``. The counters
    ``consistency_checks_attempted``, ``_passed`` and ``_failed`` count the
    checks made.
    """

    def __init__(
        self,
        wrapped_dict: PersiDict[ValueType] | None = None,
        p_consistency_checks: float | KeepCurrentFlag | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if wrapped_dict is None:
            wrapped: PersiDict[Any] = _default_wrapped_dict()
        else:
            wrapped = check_persidict("wrapped_dict", wrapped_dict)
        if not wrapped.append_only:
            raise ValueError(
                f"WriteOnceDict needs an append-only wrapped_dict; {type(wrapped).__name__} "
                "has append_only=False"
            )
        if rng is not None and not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random or None, not {type(rng).__name__}")
        self._wrapped = wrapped
        self._p = 0.0
        self.p_consistency_checks = p_consistency_checks
        self._rng = rng if rng is not None else random.Random()
        self._checks_passed = 0
        self._checks_failed = 0
        self._checks_attempted = 0
        try:
            self._codec: Codec | None = codec_for(wrapped.serialization_format)
        except (TypeError, ValueError):
            self._codec = None

    def __getattr__(self, name: str) -> Any:
        """Attributes WriteOnceDict does not define are read from the wrapped dict (``d.base_dir``).

        Private and special names are never forwarded, so copying, pickling
        and introspection see the WriteOnceDict itself.
        """
        wrapped = None if name.startswith("_") else self.__dict__.get("_wrapped")
        if wrapped is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        try:
            return getattr(wrapped, name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}, "
                f"nor has its wrapped {type(wrapped).__name__}"
            ) from None

    @property
    def p_consistency_checks(self) -> float:
        """The probability that an ignored rewrite is compared with the stored value.

        Settable: a number in [0, 1] (ValueError otherwise), None for 0.0,
        KEEP_CURRENT to keep the current value.
        """
        return self._p

    @p_consistency_checks.setter
    def p_consistency_checks(self, p: float | KeepCurrentFlag | None) -> None:
        if p is not KEEP_CURRENT:
            self._p = check_probability(p)

    @property
    def consistency_checks_attempted(self) -> int:
        """How many ignored rewrites were compared with the stored value (counted before comparing)."""
        return self._checks_attempted

    @property
    def consistency_checks_passed(self) -> int:
        """How many consistency checks found the stored value."""
        return self._checks_passed

    @property
    def consistency_checks_failed(self) -> int:
        """How many consistency checks found a different value (and raised)."""
        return self._checks_failed

    @property
    def n_consistency_checks(self) -> int:
        """Same as ``consistency_checks_attempted`` (the older name)."""
        return self._checks_attempted

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
        self._checks_attempted += 1
        if values_match(stored, new, self._codec):
            self._checks_passed += 1
            return
        self._checks_failed += 1
        raise MutationPolicyError(
            "write-once",
            f"Key {key!r} of a WriteOnceDict already holds a different value: "
            f"stored {_short.repr(stored)}, attempted {_short.repr(new)}",
        )

    # ------------------------------------------------------------ writes

    def set_item_if(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Always ``MutationPolicyError("write-once")``, whatever the arguments; writes nothing.

        A key of a WriteOnceDict is written once: insert with ``d[key] = value``
        or ``setdefault_if``.
        """
        raise _no_conditional_writes("set_item_if")

    def _set_item_if(
        self,
        key: NonEmptySafeStrTuple,
        value: Any,
        expected_etag: ETagIfExists,
        condition: ETagConditionFlag,
        retrieve: RetrieveValueFlag,
    ) -> ConditionalOperationResult[ValueType]:
        """Refused like ``set_item_if``, so that wrappers around a WriteOnceDict keep the rule."""
        raise _no_conditional_writes(f"set_item_if (key {key!r})")

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
        self._insert(key, value)

    def _insert(self, key: NonEmptySafeStrTuple, value: Any) -> None:
        """One atomic insert-if-absent; a key found stored is spot-checked like a rewrite."""
        check = self._draw()
        res = self._wrapped._setdefault_if(
            key, value, ITEM_NOT_AVAILABLE, ANY_ETAG, ALWAYS_RETRIEVE if check else NEVER_RETRIEVE
        )
        stored = res.new_value
        if check and res.actual_etag is not ITEM_NOT_AVAILABLE and not isinstance(
            stored, ItemNotAvailableFlag | ValueNotRetrievedFlag
        ):
            self._verify(key, stored, value)

    def _transform_item(
        self, key: NonEmptySafeStrTuple, transformer: TransformingFunction, max_attempts: int | None
    ) -> OperationResult[ValueType]:
        """Only KEEP_CURRENT goes through: a value is refused like ``set_item_if``, nothing is written.

        DELETE_CURRENT is refused by the append-only rule.
        """

        def keep_only(current: Any) -> Any:
            new = transformer(current)
            if new is KEEP_CURRENT:
                return new
            if isinstance(new, Joker):
                self._forbid_delete(key)  # DELETE_CURRENT: always refused (append-only)
            raise _no_conditional_writes(f"transform_item to a value (key {key!r})")

        return self._wrapped._transform_item(key, keep_only, max_attempts)
