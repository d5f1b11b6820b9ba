"""LmdbDict under concurrency: processes, threads, fork, and a writer killed mid-transaction."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from persidict.flags import ITEM_NOT_AVAILABLE
from persidict.lmdb_dict import LmdbDict

from .lmdb_helpers import ROOT, run_python, stress_seconds


def _increment(v: Any) -> int:
    return 1 if v is ITEM_NOT_AVAILABLE else int(v) + 1


def _worker(d: LmdbDict[int], n: int) -> None:
    for _ in range(n):
        d.transform_item("counter", _increment, n_retries=None)


def test_four_forked_processes_increment_exactly(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path, durable=False)
    d["before"] = 1  # the environment is open (and used) in the parent before forking
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(d, 200)) for _ in range(4)]
    for p in procs:
        p.start()
    _worker(d, 0)
    assert d["before"] == 1  # the parent keeps working while children run
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert d["counter"] == 800


def test_spawned_processes_reopen_from_parameters(tmp_path: Path) -> None:
    d = LmdbDict[int](base_dir=tmp_path)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(d, 25)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert d["counter"] == 50


def _popen(code: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True, env=env
    )


def test_writer_killed_mid_transaction_leaves_every_committed_value(tmp_path: Path) -> None:
    proc = _popen(
        f"""
        import time
        from persidict.lmdb_dict import LmdbDict
        d = LmdbDict(base_dir={str(tmp_path)!r})
        for i in range(50):
            d["c", str(i)] = "x" * i
            print(i, flush=True)
        with d.transaction():
            for j in range(2000):
                d["t", str(j)] = "y" * 100
            print("in-transaction", flush=True)
            time.sleep(120)
        """
    )
    assert proc.stdout is not None
    committed = []
    for line in proc.stdout:
        if line.strip() == "in-transaction":
            break
        committed.append(int(line))
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    d = LmdbDict[str](base_dir=tmp_path)
    assert committed == list(range(50))
    sub = d.get_subdict("c")
    assert {k: sub[k] for k in sub} == {(str(i),): "x" * i for i in range(50)}
    assert len(d.get_subdict("t")) == 0
    d["after"] = "the writer lock was released"  # would hang if the dead writer's lock stuck
    assert d["after"].startswith("the writer")


def test_writer_killed_at_a_random_moment(tmp_path: Path) -> None:
    proc = _popen(
        f"""
        from persidict.lmdb_dict import LmdbDict
        d = LmdbDict(base_dir={str(tmp_path)!r}, map_size=128 * 1024)
        i = 0
        while True:
            d[str(i % 5000)] = [i] * (i % 300)
            print(i, flush=True)
            i += 1
        """
    )
    assert proc.stdout is not None
    last = -1
    for line in proc.stdout:
        last = int(line)
        if last >= 300:
            break
    proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read()
    proc.wait(30)
    if rest.strip():
        last = int(rest.split()[-1]) if rest.endswith("\n") else int(rest.split()[-2])
    d = LmdbDict[list[int]](base_dir=tmp_path)
    for i in range(last + 1):  # every acknowledged write is there with its value
        assert d[str(i)] == [i] * (i % 300)
    assert len(d) in (last + 1, last + 2)  # plus, perhaps, a write committed but not yet printed


_STRESS = """
import os, random, sys, threading, time, traceback
from persidict.errors import BackendError
from persidict.flags import ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE
from persidict.lmdb_dict import LmdbDict

base, seconds = sys.argv[1], float(sys.argv[2])
clock_skew = [0.0]
d = LmdbDict(base_dir=base, durable=False, map_size=256 * 1024, track_atime=True,
             atime_flush_reads=50)
cached = LmdbDict(base_dir=base, durable=False, cache_size=20)
expiring = LmdbDict(base_dir=base, durable=False, ttl=3600, purge_at_open=False)
errors = []
increments = [0] * 8
deadline = time.monotonic() + seconds


def inc(v):
    return 1 if v is ITEM_NOT_AVAILABLE else v + 1


def op(rng, n):
    key = ("k", str(rng.randrange(40)))
    r = rng.random()
    if r < 0.12:
        d[key] = rng.randrange(1000)
    elif r < 0.25:
        d.get(key)
    elif r < 0.3:
        d.discard(key)
    elif r < 0.35:
        _ = key in cached and cached.get(key)
    elif r < 0.42:
        try:
            etag = d.etag(key)
        except KeyError:
            etag = ITEM_NOT_AVAILABLE
        d.set_item_if(key, rng.randrange(1000), etag, ETAG_IS_THE_SAME)
    elif r < 0.47:
        d.setdefault_if(key, -1, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    elif r < 0.5:
        try:
            d.discard_if(key, d.etag(key), ETAG_IS_THE_SAME)
        except KeyError:
            pass
    elif r < 0.65:
        d.transform_item("counter", inc, n_retries=None)
        increments[n] += 1
    elif r < 0.7:
        sum(1 for _ in d.get_subdict("k").keys())
        len(expiring)
    elif r < 0.75:
        with d.transaction():
            d[key] = -2
            expiring[key] = -3  # another dict on the database: d's queued write goes first
            if d[key] != -3:
                raise AssertionError(f"read {d[key]!r} after queued writes of -2, -3")
            d.transform_item("counter", inc, n_retries=None)
            d.get_subdict("k")[str(rng.randrange(40))] = 7
        increments[n] += 1
    elif r < 0.8:
        d["big", str(rng.randrange(20))] = os.urandom(rng.randrange(20_000))
    elif r < 0.85:
        try:
            d.metadata(key)
        except KeyError:
            pass
        d.setdefault(key, 5)
    elif r < 0.9:
        list(d.items())[:3]
    elif r < 0.93:
        expiring.purge()
        d.flush()
    elif n == 0 and r < 0.95:
        pid = os.fork()
        if pid == 0:
            try:
                d.transform_item("counter", inc, n_retries=None)
                d.get(key)
                os._exit(0)
            except BaseException:
                traceback.print_exc()
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise AssertionError(f"forked child failed: {status}")
        increments[n] += 1
    else:
        d.get(key)


def run(n):
    rng = random.Random(n)
    try:
        while time.monotonic() < deadline:
            op(rng, n)
    except BaseException:
        errors.append(traceback.format_exc())


threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    print("\\n".join(errors))
    sys.exit(1)
assert d["counter"] == sum(increments), (d["counter"], increments)
assert d._lmdb.handle.map_size > 256 * 1024
print("ok", sum(increments), d._lmdb.handle.map_size)
"""


def _stress(tmp_path: Path, seconds: float) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", _STRESS, str(tmp_path), str(seconds)],
        capture_output=True, text=True, timeout=seconds + 120, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok ")


def test_eight_threads_mixing_every_operation_briefly(tmp_path: Path) -> None:
    _stress(tmp_path, 3.0)


@pytest.mark.slow
def test_eight_threads_mixing_every_operation(tmp_path: Path) -> None:
    _stress(tmp_path, stress_seconds(30.0, 5.0))


def test_fork_while_another_thread_holds_a_transaction(tmp_path: Path) -> None:
    run_python(
        f"""
        import os, threading, time
        import persidict.backends.lmdb_env as lmdb_env
        from persidict.errors import BackendError
        from persidict.lmdb_dict import LmdbDict
        lmdb_env._FORK_DRAIN_SECONDS = 1.0
        d = LmdbDict(base_dir={str(tmp_path)!r}, durable=False)
        d["a"] = 1

        def fork_and_read(expect_usable):
            pid = os.fork()
            if pid == 0:
                try:
                    value = d["a"]
                except BackendError as e:
                    os._exit(0 if not expect_usable and "forked" in str(e) else 2)
                os._exit(0 if expect_usable and value == 2 else 3)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, status

        # A batch that ends by itself: fork waits for it, and the child can use the database.
        inside = threading.Event()
        def short():
            with d.transaction():
                d["a"] = 2
                inside.set()
                time.sleep(0.3)
        t = threading.Thread(target=short)
        t.start()
        inside.wait()
        fork_and_read(expect_usable=True)
        t.join()

        # A batch that outlasts the wait: the parent keeps it, the child gets a clear error.
        inside, release = threading.Event(), threading.Event()
        def hold():
            with d.transaction():
                d["b"] = 3
                inside.set()
                release.wait()
        t = threading.Thread(target=hold)
        t.start()
        inside.wait()
        fork_and_read(expect_usable=False)
        release.set()
        t.join()
        assert d["a"] == 2 and d["b"] == 3
        """
    )
