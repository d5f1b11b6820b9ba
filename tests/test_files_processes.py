"""FileDirDict across processes: no lost update, one winner per insert, no torn value after SIGKILL."""

from __future__ import annotations

import multiprocessing
import os
import pathlib
import random
import signal
import time
from typing import Any

import pytest

from persidict.file_dir_dict import FileDirDict
from persidict.flags import ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE

SCALE = os.environ.get("PERSIDICT_STRESS_SCALE", "full")
_CTX = multiprocessing.get_context("spawn")
N_PROCS = 4


def _increment(params: dict[str, Any], start: Any, n: int) -> None:
    d: FileDirDict[int] = FileDirDict(**params)
    start.wait()
    for _ in range(n):
        d.transform_item("counter", lambda v: v + 1, n_retries=None)


def _insert(params: dict[str, Any], start: Any, me: int, n_keys: int, out: Any) -> None:
    d: FileDirDict[int] = FileDirDict(**params)
    start.wait()
    won = []
    for k in range(n_keys):
        r = d.setdefault_if(f"k{k}", me, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
        if r.value_was_mutated:
            won.append(k)
        else:
            assert r.actual_etag is not ITEM_NOT_AVAILABLE
    out.put((me, won))


def _run_all(procs: list[Any], start: Any) -> None:
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0] * len(procs)


@pytest.mark.parametrize("durable", [True, False])
def test_transform_item_across_processes_loses_nothing(tmp_path: pathlib.Path, durable: bool) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=durable)
    d["counter"] = 0
    start = _CTX.Event()
    procs = [_CTX.Process(target=_increment, args=(d.get_params(), start, 100)) for _ in range(N_PROCS)]
    _run_all(procs, start)
    assert d["counter"] == N_PROCS * 100


def test_insert_if_absent_across_processes_has_one_winner_per_key(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    start = _CTX.Event()
    out = _CTX.Queue()
    procs = [_CTX.Process(target=_insert, args=(d.get_params(), start, me, 50, out)) for me in range(N_PROCS)]
    _run_all(procs, start)
    results = [out.get(timeout=10) for _ in procs]
    winners: dict[int, int] = {}
    for me, won in results:
        for k in won:
            assert k not in winners, f"key k{k} won by {winners[k]} and {me}"
            winners[k] = me
    assert sorted(winners) == list(range(50))
    assert all(d[f"k{k}"] == me for k, me in winners.items())


# ---------------------------------------------------------------- crash

_MIB = 1 << 20
_N_CRASH_KEYS = 3


def _value(i: int) -> bytes:
    """A 1 MiB value whose every byte depends on ``i``: a torn mix is detectable."""
    return i.to_bytes(8, "big") + bytes([i % 251]) * (_MIB - 8)


def _check_value(v: bytes) -> int:
    assert len(v) == _MIB
    i = int.from_bytes(v[:8], "big")
    assert v == _value(i), "torn value"
    return i


def _writer(params: dict[str, Any], first: int, started: Any) -> None:
    d: FileDirDict[bytes] = FileDirDict(**params)
    i = first
    while True:
        d[f"k{i % _N_CRASH_KEYS}"] = _value(i)
        started.set()
        i += 1


def _crash_loop(tmp_path: pathlib.Path, kills: int, durable: bool) -> None:
    d: FileDirDict[bytes] = FileDirDict(base_dir=tmp_path, durable=durable)
    rng = random.Random(1234)
    latest = -1
    for kill in range(kills):
        started = _CTX.Event()
        p = _CTX.Process(target=_writer, args=(d.get_params(), (kill + 1) * 1_000_000, started))
        p.start()
        assert started.wait(120), "the writer never wrote"
        time.sleep(rng.uniform(0.0, 0.03))
        assert p.pid is not None
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
        assert p.exitcode == -signal.SIGKILL
        assert len(d) == _N_CRASH_KEYS  # temporary files left by the killed writer are not items
        newest = max(_check_value(d[f"k{k}"]) for k in range(_N_CRASH_KEYS))
        assert newest > latest
        latest = newest
    # What the killed writers left behind never shows up, and the store stays writable.
    d["after"] = _value(1)
    assert sorted(d.keys()) == sorted([(f"k{k}",) for k in range(_N_CRASH_KEYS)] + [("after",)])
    for k in d:
        _check_value(d[k])
    # Maintenance removes whatever temporary files the killed writers left, and no item.
    left = len(list(tmp_path.rglob("*.tmp#")))
    assert d.remove_stale_temp_files(older_than=0) == left
    assert not list(tmp_path.rglob("*.tmp#"))
    assert len(d) == _N_CRASH_KEYS + 1


def test_sigkill_never_leaves_a_torn_value_quick(tmp_path: pathlib.Path) -> None:
    _crash_loop(tmp_path, kills=3, durable=False)


@pytest.mark.slow
@pytest.mark.parametrize("durable", [True, False])
def test_sigkill_never_leaves_a_torn_value(tmp_path: pathlib.Path, durable: bool) -> None:
    _crash_loop(tmp_path, kills=10 if SCALE == "small" else 50, durable=durable)
