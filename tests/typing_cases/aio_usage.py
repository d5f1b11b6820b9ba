"""A user program of persidict.aio: types survive the async view under ``mypy --strict``.

Only type-checked (by the project's mypy run and by tests/test_aio_typing.py), never run.
"""

from __future__ import annotations

from typing import assert_type

from persidict import ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE, VALUE_NOT_RETRIEVED, ETagValue, FileDirDict, Joker
from persidict.aio import AsyncPersiDict
from persidict.flags import ItemNotAvailableFlag
from persidict.keys import NonEmptySafeStrTuple
from persidict.results import ConditionalOperationResult, OperationResult


async def counts(d: FileDirDict[int]) -> int:
    """Every operation keeps the value type of the dict it views."""
    ad = AsyncPersiDict(d)
    assert_type(ad, AsyncPersiDict[int])
    assert_type(await ad.get_item("a"), int)
    assert_type(await ad.get("a"), int | None)
    assert_type(await ad.get("a", 0), int)
    assert_type(await ad.get("a", "none"), int | str)
    assert_type(await ad.contains("a"), bool)
    assert_type(await ad.len(), int)
    await ad.set("a", 1)
    assert_type(await ad.pop("a"), int)
    assert_type(await ad.setdefault("a", 3), int)
    r = await ad.get_item_if("a", ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert_type(r, ConditionalOperationResult[int])
    if r.new_value is not ITEM_NOT_AVAILABLE and r.new_value is not VALUE_NOT_RETRIEVED:
        assert_type(r.new_value, int)
    assert_type(await ad.etag("a"), ETagValue)
    assert_type(await ad.timestamp("a"), float)
    async for k in ad:
        assert_type(k, NonEmptySafeStrTuple)
    async for key, value in ad.items():
        assert_type((key, value), tuple[NonEmptySafeStrTuple, int])
    async for value, ts in ad.values_and_timestamps():
        assert_type((value, ts), tuple[int, float])
    assert_type(await ad.get_many(["a"]), dict[tuple[str, ...], int])
    assert_type(await ad.get_many(["a"], with_etags=True), dict[tuple[str, ...], tuple[int, ETagValue]])
    assert_type(ad.get_subdict("p"), AsyncPersiDict[int])

    def inc(v: int | ItemNotAvailableFlag) -> int | Joker:
        return 1 if v is ITEM_NOT_AVAILABLE else v + 1

    async def ainc(v: int | ItemNotAvailableFlag) -> int | Joker:
        return 1 if v is ITEM_NOT_AVAILABLE else v + 1

    t = await ad.transform_item("a", inc)
    assert_type(t, OperationResult[int])
    t = await ad.transform_item("a", ainc)
    t = await ad.transform_item("a", lambda v: 1 if v is ITEM_NOT_AVAILABLE else v + 1)
    if t.new_value is ITEM_NOT_AVAILABLE:
        return 0
    async with AsyncPersiDict(d, max_workers=4) as scoped:
        assert_type(scoped, AsyncPersiDict[int])
    return t.new_value
