"""persidict.aio: the async view's API, cancellation, the event loop left free, closing."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from persidict import (
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    ConcurrencyConflictError,
    ETagValue,
    FileDirDict,
    LmdbDict,
    LocalDict,
    MutationPolicyError,
    PersiDict,
)
from persidict.aio import AsyncPersiDict
from persidict.backends import folder_locks
from persidict.testing_aio import LoopThreadGuard


@pytest.fixture
def files(tmp_path: Path) -> FileDirDict[Any]:
    return FileDirDict(base_dir=str(tmp_path / "d"))


def _threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("persidict-aio"))


def _inc(v: Any) -> Any:
    return 1 if v is ITEM_NOT_AVAILABLE else v + 1


async def _ainc(v: Any) -> Any:
    await asyncio.sleep(0)
    return 1 if v is ITEM_NOT_AVAILABLE else v + 1


# ---------------------------------------------------------------- the API mirrors the sync one


def test_every_operation_gives_the_sync_result(files: FileDirDict[Any]) -> None:
    async def main() -> None:
        async with AsyncPersiDict(files) as ad:
            await ad.set("a", 1)
            await ad.set(("x", "y"), [2])
            assert await ad.get_item("a") == 1 and await ad.get("zz") is None and await ad.get("zz", 5) == 5
            assert await ad.contains("a") and not await ad.contains("zz")
            assert await ad.len() == 2 and not await ad.is_empty()
            assert {tuple(k) async for k in ad} == {("a",), ("x", "y")}
            assert sorted([v async for v in ad.values()], key=repr) == sorted([1, [2]], key=repr)
            assert {tuple(k): v async for k, v in ad.items()} == {("a",): 1, ("x", "y"): [2]}
            assert await ad.timestamp("a") == files.timestamp("a")
            assert [tuple(k) async for k, _ in ad.keys_and_timestamps()] != []
            e = await ad.etag("a")
            r = await ad.set_item_if("a", 10, e, ETAG_IS_THE_SAME)
            assert r == files.get_with_etag("a") or r.condition_was_satisfied
            stale = await ad.set_item_if("a", 11, e, ETAG_IS_THE_SAME)
            assert not stale.condition_was_satisfied and files["a"] == 10
            assert (await ad.get_with_etag("a")) == files.get_with_etag("a")
            assert (await ad.get_item_if("a", e, ETAG_IS_THE_SAME)).condition_was_satisfied is False
            assert (await ad.setdefault_if("n", 3, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)).new_value == 3
            bogus = ETagValue("bogus")
            assert not (await ad.discard_if("n", bogus, ETAG_IS_THE_SAME)).condition_was_satisfied
            assert (await ad.discard_item_if("n", ITEM_NOT_AVAILABLE, ANY_ETAG)).value_was_mutated
            assert await ad.setdefault("s", 4) == 4 and await ad.setdefault("s", 5) == 4
            assert await ad.pop("s") == 4 and await ad.pop("s", None) is None
            with pytest.raises(KeyError):
                await ad.pop("s")
            with pytest.raises(KeyError):
                await ad.get_item("s")
            with pytest.raises(KeyError):
                await ad.delete("s")
            await ad.update({"u": 1}, v=2)
            await ad.set_many([("w", 1), ("u", DELETE_CURRENT)])
            assert await ad.get_many(["v", "w", "none"]) == {("v",): 2, ("w",): 1}
            got = await ad.get_many(["v"], with_etags=True)
            assert got[("v",)] == (2, files.etag("v"))
            assert await ad.discard_many(["v", "w", "none"]) == 2
            assert await ad.discard("a") and not await ad.delete_if_exists("a")
            sub = ad.get_subdict("x")
            assert await sub.get_item("y") == [2]
            await sub.set("z", 3)
            assert files["x", "z"] == 3
            assert list(await ad.subdicts()) == ["x"]
            assert await ad.oldest_keys(1) == files.oldest_keys(1)
            assert await ad.newest_values() == files.newest_values()
            assert await ad.random_key() is not None
            assert await ad.equals(files) and await ad.equals(ad)
            k, _ = await ad.popitem()
            assert k not in files
            await ad.clear()
            assert await ad.len() == 0 and await ad.is_empty()
            assert repr(ad) == f"AsyncPersiDict({files!r})"

    asyncio.run(main())


def _returns(value: Any) -> Callable[[Any], Coroutine[Any, Any, Any]]:
    async def transformer(current: Any) -> Any:
        return value

    return transformer


def test_a_view_is_never_a_value_of_any_store(files: FileDirDict[Any]) -> None:
    # The core refuses it (not pickle, by accident): the same TypeError on every store and path.
    view = AsyncPersiDict(files)
    for d in (files, LocalDict()):
        with pytest.raises(TypeError, match="view of a PersiDict"):
            d["k"] = view
        with pytest.raises(TypeError, match="view of a PersiDict"):
            d.update({"k": view})
        assert "k" not in d


def test_errors_are_the_sync_errors() -> None:
    async def main() -> None:
        ad = AsyncPersiDict(LocalDict(append_only=True), inline=False)
        await ad.set("a", 1)
        with pytest.raises(MutationPolicyError):
            await ad.set("a", 2)
        with pytest.raises(MutationPolicyError):
            await ad.transform_item("a", _ainc)
        with pytest.raises(ValueError):
            await ad.get_item("a/b")
        for store_the_view in (
            lambda: ad.set("b", ad),
            lambda: ad.setdefault("b", ad),
            lambda: ad.update({"b": ad}),
            lambda: ad.set_item_if("b", ad, ITEM_NOT_AVAILABLE, ANY_ETAG),
            lambda: ad.transform_item("b", _returns(ad)),
        ):
            with pytest.raises(TypeError, match="view of a PersiDict"):
                await store_the_view()
        assert not await ad.contains("b")
        with pytest.raises(TypeError):
            await ad.set_item_if("b", 1, 5, ANY_ETAG)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="callable"):
            await ad.transform_item("b", 5)  # type: ignore[call-overload]
        with pytest.raises(ValueError):
            await ad.transform_item("a/b", 5)  # type: ignore[call-overload]
        with pytest.raises(ValueError):
            await ad.transform_item("b", _ainc, n_retries=-1)
        await ad.aclose()

    asyncio.run(main())


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(TypeError):
        AsyncPersiDict({})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AsyncPersiDict(LocalDict(), max_workers=0)
    with pytest.raises(TypeError):
        AsyncPersiDict(LocalDict(), max_workers="4")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        AsyncPersiDict(LocalDict(), inline="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AsyncPersiDict(LocalDict(), max_workers=2, executor=ThreadPoolExecutor(1))
    with pytest.raises(TypeError):
        AsyncPersiDict(AsyncPersiDict(LocalDict()))  # type: ignore[arg-type]


# ---------------------------------------------------------------- transform_item


@pytest.mark.parametrize("transformer", [_inc, _ainc], ids=["sync", "async"])
def test_concurrent_transforms_lose_nothing(files: FileDirDict[Any], transformer: Any) -> None:
    async def main() -> None:
        async with AsyncPersiDict(files, max_workers=4) as ad:
            calls = [ad.transform_item("c", transformer, n_retries=None) for _ in range(40)]
            results = await asyncio.gather(*calls)
        assert sorted(r.new_value for r in results if isinstance(r.new_value, int)) == list(range(1, 41))
        assert files["c"] == 40

    asyncio.run(main())


def test_async_transform_jokers_and_results(files: FileDirDict[Any]) -> None:
    async def keep(v: Any) -> Any:
        return KEEP_CURRENT

    async def delete(v: Any) -> Any:
        return DELETE_CURRENT

    async def main() -> None:
        ad = AsyncPersiDict(files)
        r = await ad.transform_item("k", _ainc)
        assert r.new_value == 1 and r.resulting_etag == files.etag("k")
        r = await ad.transform_item("k", keep)
        assert r.new_value == 1 and r.resulting_etag == files.etag("k")
        r = await ad.transform_item("k", delete)
        assert r.new_value is ITEM_NOT_AVAILABLE and "k" not in files
        r = await ad.transform_item("k", keep)
        assert r.new_value is ITEM_NOT_AVAILABLE and r.resulting_etag is ITEM_NOT_AVAILABLE
        await ad.aclose()

    asyncio.run(main())


def test_async_transform_gives_up_after_its_retries(files: FileDirDict[Any]) -> None:
    calls = 0

    async def main() -> None:
        ad = AsyncPersiDict(files)

        async def meddle(v: Any) -> Any:
            nonlocal calls
            calls += 1
            await ad.set("k", calls * 100)  # someone else writes in between, every time
            return 1

        await ad.set("k", 0)
        with pytest.raises(ConcurrencyConflictError):
            await ad.transform_item("k", meddle, n_retries=2)
        assert calls == 3 and files["k"] == 300
        await ad.aclose()

    asyncio.run(main())


def test_a_sync_transformer_returning_an_awaitable_is_refused(files: FileDirDict[Any]) -> None:
    async def main() -> None:
        ad = AsyncPersiDict(files)
        with pytest.raises(TypeError, match="async def"):
            await ad.transform_item("k", lambda v: _ainc(v))
        assert "k" not in files
        await ad.aclose()

    asyncio.run(main())


# ---------------------------------------------------------------- cancellation


@pytest.fixture
def slow_locks(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Every folder lock, once taken, is held 0.3 s; the event is set while one is held."""
    held = threading.Event()
    for name in ("acquire", "hold_locked"):
        take = getattr(folder_locks, name)

        def slow(folder: str, *args: Any, _take: Any = take) -> Any:
            lock = _take(folder, *args)
            held.set()
            time.sleep(0.3)
            return lock

        monkeypatch.setattr(folder_locks, name, slow)
    yield held


async def _until(event: threading.Event) -> None:
    async with asyncio.timeout(60):
        while not event.is_set():
            await asyncio.sleep(0.001)


def _lock_is_free(d: FileDirDict[Any], key: str) -> bool:
    """Whether another thread can take the key's lock now (a conditional write completes)."""
    done = threading.Event()

    def write() -> None:
        d.set_item_if(key, "other", ITEM_NOT_AVAILABLE, ANY_ETAG)
        done.set()

    threading.Thread(target=write, daemon=True).start()
    return done.wait(timeout=30)


_WRITES = ["set", "set_item_if", "setdefault_if", "discard_if", "transform_sync", "transform_async"]


@pytest.mark.parametrize("op", _WRITES)
def test_a_write_cancelled_while_it_runs_completes_then_cancels(
    files: FileDirDict[Any], slow_locks: threading.Event, op: str
) -> None:
    files["k"] = "old"
    etag = files.etag("k")
    slow_locks.clear()
    key = "j" if op == "setdefault_if" else "k"
    expected = {"set": "new", "set_item_if": "new", "setdefault_if": "x", "discard_if": None,
                "transform_sync": "old!", "transform_async": "old!"}[op]

    async def bang(v: Any) -> Any:
        return v + "!"

    async def main() -> None:
        ad = AsyncPersiDict(files)
        calls: dict[str, Callable[[], Coroutine[Any, Any, Any]]] = {
            "set": lambda: ad.set("k", "new"),
            "set_item_if": lambda: ad.set_item_if("k", "new", etag, ETAG_IS_THE_SAME),
            "setdefault_if": lambda: ad.setdefault_if("j", "x", ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME),
            "discard_if": lambda: ad.discard_if("k", etag, ETAG_IS_THE_SAME),
            "transform_sync": lambda: ad.transform_item("k", lambda v: v + "!"),
            "transform_async": lambda: ad.transform_item("k", bang),
        }
        task = asyncio.create_task(calls[op]())
        await _until(slow_locks)  # the write holds the item's lock now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The cancellation arrived after the write: complete, never half-done.
        assert files.get(key) == expected
        await ad.aclose()

    asyncio.run(main())
    assert _lock_is_free(files, key), "the cancelled write left the item's lock held"
    assert sorted(p.name for p in Path(files.base_dir).iterdir() if p.name.startswith(".")) == []


def test_a_write_cancelled_before_it_starts_never_runs(files: FileDirDict[Any]) -> None:
    release = threading.Event()

    async def main() -> None:
        ad = AsyncPersiDict(files, max_workers=1)
        blocker = asyncio.create_task(ad.transform_item("b", lambda v: release.wait(30) and 1))
        await asyncio.sleep(0.01)
        queued = asyncio.create_task(ad.set("k", "new"))
        cond = asyncio.create_task(ad.setdefault_if("j", 1, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME))
        await asyncio.sleep(0.01)
        queued.cancel()
        cond.cancel()
        for t in (queued, cond):
            with pytest.raises(asyncio.CancelledError):
                await t
        release.set()
        await blocker
        await ad.aclose()  # waits for anything still running: nothing more is
        assert "k" not in files and "j" not in files and files["b"] == 1

    asyncio.run(main())


def test_an_async_transform_cancelled_in_its_transformer_writes_nothing(files: FileDirDict[Any]) -> None:
    inside = asyncio.Event()

    async def main() -> None:
        async def slow(v: Any) -> Any:
            inside.set()
            await asyncio.sleep(30)
            return 1

        ad = AsyncPersiDict(files)
        task = asyncio.create_task(ad.transform_item("k", slow))
        await inside.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert "k" not in files
        await ad.aclose()

    asyncio.run(main())


def test_timeouts_cancel_reads_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    d: LocalDict[Any] = LocalDict()
    d["k"] = 1
    get = d.get
    gate = threading.Event()

    def stuck_get(*args: Any) -> Any:
        gate.wait(30)
        return get(*args)

    monkeypatch.setattr(d, "get", stuck_get)

    async def main() -> None:
        ad = AsyncPersiDict(d, inline=False)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await ad.get("k")
        assert not gate.is_set()  # the read was abandoned while its thread still waits
        gate.set()
        await ad.aclose()

    asyncio.run(main())


# ---------------------------------------------------------------- the event loop stays free


def _workload_store(kind: str, tmp_path: Path) -> PersiDict[Any]:
    if kind == "files":
        return FileDirDict(base_dir=str(tmp_path / "f"))
    if kind == "lmdb":
        return LmdbDict(base_dir=str(tmp_path / "l"))
    from persidict.s3_dict import BasicS3Dict

    from .s3_helpers import SERVER_CREDENTIALS, moto_endpoint

    params: dict[str, Any] = {"endpoint_url": moto_endpoint(), **SERVER_CREDENTIALS}
    return BasicS3Dict(bucket_name="aio-loop", root_prefix=uuid.uuid4().hex, **params)


async def _workload(ad: AsyncPersiDict[Any]) -> None:
    await asyncio.gather(*(ad.set(f"k{i}", i) for i in range(20)))
    await asyncio.gather(*(ad.transform_item(f"k{i}", _ainc if i % 2 else _inc) for i in range(20)))
    assert len([k async for k in ad]) == await ad.len() == 20
    await ad.get_many([f"k{i}" for i in range(20)])
    async for _ in ad.items_and_timestamps():
        pass
    await ad.set_item_if("k0", 0, ITEM_NOT_AVAILABLE, ANY_ETAG)
    await ad.discard_many([f"k{i}" for i in range(20)])


@pytest.mark.parametrize("kind", ["files", "lmdb", "s3"])
def test_no_store_code_runs_on_the_loop(kind: str, tmp_path: Path) -> None:
    """Deterministic: a profiler hook on the loop's thread sees no backend, interpreter or codec call."""
    d = _workload_store(kind, tmp_path)
    guard = LoopThreadGuard()

    async def main() -> None:
        async with AsyncPersiDict(d) as ad:
            sys.setprofile(guard)
            try:
                await _workload(ad)
            finally:
                sys.setprofile(None)

    asyncio.run(main(), debug=True)
    assert guard.calls == []


def test_the_guard_sees_a_store_call_on_the_loop(files: FileDirDict[Any]) -> None:
    """The check above can fail: an inline view runs FileDirDict's I/O on the loop."""
    guard = LoopThreadGuard()

    async def main() -> None:
        ad = AsyncPersiDict(files, inline=True)
        sys.setprofile(guard)
        try:
            await ad.set("k", 1)
        finally:
            sys.setprofile(None)

    asyncio.run(main())
    assert any("backends" in c for c in guard.calls)


STORE_CALL = 0.6
"""Seconds every backend call takes in the debug-mode test: a step that long is a store call."""


class _SlowCallbacks(logging.Handler):
    """asyncio's debug-mode reports of slow loop steps: how long each took."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seconds: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        m = re.match(r"Executing .* took (\d+\.\d+) seconds", record.getMessage())
        if m:
            self.seconds.append(float(m[1]))


@pytest.mark.parametrize("inline", [False, True], ids=["threads", "inline_must_be_caught"])
def test_debug_mode_sees_no_slow_step_while_store_calls_take_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    """Every backend call takes STORE_CALL seconds. asyncio's debug mode reports the loop's slow
    steps: with the threaded view none lasts a store call (a busy machine may stall a step for a
    fraction of that), while an inline view (the control) shows store calls on the loop."""
    d: FileDirDict[Any] = FileDirDict(base_dir=str(tmp_path))
    backend = d._backend
    for name in ("read", "write", "stat"):
        original = getattr(backend, name)

        def slow(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            time.sleep(STORE_CALL)
            return _original(*args, **kwargs)

        monkeypatch.setattr(backend, name, slow)
    handler = _SlowCallbacks()
    logging.getLogger("asyncio").addHandler(handler)

    async def main() -> None:
        asyncio.get_running_loop().slow_callback_duration = STORE_CALL / 2
        ad = AsyncPersiDict(d, inline=inline)
        await asyncio.gather(ad.set("a", 1), ad.set("b", 2))
        await asyncio.gather(ad.get("a"), ad.contains("b"), ad.transform_item("a", _ainc))
        await ad.aclose()

    try:
        asyncio.run(main(), debug=True)
    finally:
        logging.getLogger("asyncio").removeHandler(handler)
    blocked = [t for t in handler.seconds if t >= STORE_CALL * 0.9]
    if inline:
        assert blocked
    else:
        assert blocked == [], f"loop steps of {handler.seconds} s"


# ---------------------------------------------------------------- loops and closing


def test_one_view_serves_successive_loops_and_a_running_loop(files: FileDirDict[Any]) -> None:
    ad = AsyncPersiDict(files)  # built outside any loop

    async def write(v: int) -> None:
        await ad.set("k", v)

    asyncio.run(write(1))
    asyncio.run(write(2))  # a new loop: the same threads serve it
    assert files["k"] == 2

    async def inside_a_running_loop() -> int:
        # As in Jupyter: the loop runs already; the view only awaits.
        return int(await ad.get_item("k"))

    assert asyncio.run(inside_a_running_loop()) == 2
    asyncio.run(ad.aclose())


def test_aclose_releases_the_threads_and_refuses_later_calls(files: FileDirDict[Any]) -> None:
    before = _threads()

    async def main() -> None:
        async with AsyncPersiDict(files, max_workers=3) as ad:
            await asyncio.gather(*(ad.set(f"k{i}", i) for i in range(10)))
            assert _threads() > before
            sub = ad.get_subdict("s")
        assert ad.closed and sub.closed
        with pytest.raises(RuntimeError, match="closed"):
            await ad.get("k1")
        await ad.aclose()  # idempotent

    asyncio.run(main())
    assert _threads() == before
    assert files["k9"] == 9


def test_a_shared_executor_is_not_shut_down(files: FileDirDict[Any]) -> None:
    with ThreadPoolExecutor(2) as pool:

        async def main() -> None:
            async with AsyncPersiDict(files, executor=pool) as ad:
                await ad.set("k", 1)
            assert pool.submit(lambda: 5).result() == 5

        asyncio.run(main())


def test_wrappers_are_reachable(tmp_path: Path) -> None:
    from persidict import OverlappingMultiDict, WriteOnceDict

    inner: FileDirDict[Any] = FileDirDict(base_dir=str(tmp_path / "w"), append_only=True)
    once: WriteOnceDict[Any] = WriteOnceDict(wrapped_dict=inner)
    shared = {"base_dir": str(tmp_path / "m")}
    multi = OverlappingMultiDict(dict_type=FileDirDict, shared_subdicts_params=shared, json={}, pkl={})

    async def main() -> None:
        ad = AsyncPersiDict(once)
        await ad.set("k", 1)
        await ad.set("k", 1)  # a rewrite of the same value is ignored, as in the sync wrapper
        with pytest.raises(MutationPolicyError):
            await ad.set_item_if("k", 2, ITEM_NOT_AVAILABLE, ANY_ETAG)
        assert await ad.get_item("k") == 1
        js, pk = AsyncPersiDict(multi.json), AsyncPersiDict(multi.pkl)
        await js.set("a", {"x": 1})
        await pk.set("a", {1, 2})
        assert await js.get_item("a") == {"x": 1} and await pk.get_item("a") == {1, 2}
        for view in (ad, js, pk):
            await view.aclose()

    asyncio.run(main())


def test_an_inline_view_refuses_calls_once_closed() -> None:
    async def main() -> None:
        ad = AsyncPersiDict(LocalDict())
        await ad.set("k", 1)
        await ad.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await ad.get("k")

    asyncio.run(main())


def test_in_memory_stores_run_inline_unless_told() -> None:
    assert AsyncPersiDict(LocalDict()).inline
    assert not AsyncPersiDict(LocalDict(), inline=False).inline
    assert not AsyncPersiDict(FileDirDict(base_dir="unused-folder")).inline
