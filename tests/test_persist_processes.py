"""PersistDict across processes: two live instances see each other's writes, deletes, expiry; d(...) once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persidict import PersistDict
from persidict.persist_dict import AlreadyInitializedError
from tests.lmdb_helpers import ROOT, Clock, start_python

DAY = 86400.0

_SERVER = """
    import json, sys
    from persidict import PersistDict
    from tests.lmdb_helpers import Clock

    clock = Clock(float(sys.argv[2]))
    d = PersistDict(database_path=sys.argv[1], expiration_days=1, clock=clock, background_thread="disabled")
    for line in sys.stdin:
        op, *args = json.loads(line)
        if op == "set":
            d[args[0]] = args[1]; out = None
        elif op == "get":
            out = d.get(args[0], "<absent>")
        elif op == "del":
            del d[args[0]]; out = None
        elif op == "keys":
            out = list(d.keys())
        elif op == "clock":
            clock.now = args[0]; out = None
        elif op == "flush":
            d.flush(); out = None
        print(json.dumps(out), flush=True)
"""


class Other:
    """A PersistDict in another process, driven one command at a time."""

    def __init__(self, db: Path, now: float) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(_SERVER), str(db), repr(now)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )

    def __call__(self, op: str, *args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps([op, *args]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the other process died ({self.proc.wait()})"
        return json.loads(line)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Other]:
    o = Other(tmp_path / "db", 1_000_000.0)
    yield o
    o.close()


def test_two_processes_see_each_others_writes_and_deletes(tmp_path: Path, other: Other) -> None:
    clock = Clock(1_000_000.0)
    d = PersistDict(database_path=tmp_path / "db", expiration_days=1, clock=clock, caching=True)
    d["x"] = 1
    assert other("get", "x") == 1 and other("keys") == ["x"]
    assert d["x"] == 1  # (now cached here)
    other("set", "x", 2)
    other("set", "y / é", 3)
    assert d["x"] == 2 and list(d) == ["x", "y / é"]
    other("del", "x")
    assert "x" not in d and list(d) == ["y / é"]
    d["z"] = 4
    assert other("keys") == ["y / é", "z"] and other("get", "z") == 4


def test_two_processes_see_each_others_expiry(tmp_path: Path, other: Other) -> None:
    clock = Clock(1_000_000.0)
    d = PersistDict(
        database_path=tmp_path / "db", expiration_days=1, clock=clock, background_thread="disabled"
    )
    d.update({"read there": 1, "idle": 2})
    clock.now += 0.8 * DAY
    other("clock", clock.now)
    assert other("get", "read there") == 1
    other("flush")  # (else its access time is written within 5 s, or when it closes)
    clock.now += 0.7 * DAY  # 1.5 days after the writes, 0.7 after the other's read
    other("clock", clock.now)
    assert list(d) == ["read there"] and "idle" not in d
    assert other("keys") == ["read there"] and other("get", "idle") == "<absent>"
    d["new"] = 5
    assert other("keys") == ["read there", "new"]


def test_call_applies_once_across_processes(tmp_path: Path) -> None:
    db = tmp_path / "db"
    procs = [
        start_python(
            f"""
            from persidict import PersistDict
            from persidict.persist_dict import AlreadyInitializedError
            d = PersistDict(database_path={str(db)!r})
            try:
                d(key_{i}={i}, shared={i})
            except AlreadyInitializedError:
                print("refused")
            else:
                print("applied")
            """
        )
        for i in range(4)
    ]
    outcomes = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outcomes.append(out.strip())
    assert sorted(outcomes) == ["applied", "refused", "refused", "refused"]
    winner = outcomes.index("applied")
    assert dict(PersistDict(database_path=db)) == {f"key_{winner}": winner, "shared": winner}
    with pytest.raises(AlreadyInitializedError):
        PersistDict(database_path=db)(late=1)
