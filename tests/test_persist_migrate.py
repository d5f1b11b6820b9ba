"""Opening a database written by PersistDict 0.2.14 (tests/fixtures/persistdict-0.2.14, see its README)."""

from __future__ import annotations

import datetime
import json
import logging
import pickle
import shutil
import zlib
from pathlib import Path
from typing import Any

import pytest

from persidict import PersistDict
from persidict.persist_dict import AlreadyInitializedError
from tests.lmdb_helpers import put_raw_record, raw_records, start_python

FIXTURE = Path(__file__).parent / "fixtures" / "persistdict-0.2.14"
OLD_DATABASES = (b"PersistDict_values", b"PersistDict_metadata", b"PersistDict_info")

# The ctime (= atime: PersistDict 0.2 never saved its atimes) of each item, in creation order,
# as naive local time in the fixture's metadata records: 2026-12-03 08:29:53.<microseconds>.
MICROSECONDS = [580196, 582036, 583129, 584132, 585092, 586033, 587028, 588336, 589340]


def _local(microsecond: int) -> float:
    return datetime.datetime(2026, 12, 3, 8, 29, 53, microsecond).timestamp()


@pytest.fixture
def expected() -> dict[str, Any]:
    with open(FIXTURE / "expected.pkl", "rb") as f:
        items: dict[str, Any] = pickle.load(f)
    return items


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A writable copy of the fixture's database (LMDB writes lock.mdb beside data.mdb)."""
    folder = tmp_path / "db"
    folder.mkdir()
    shutil.copyfile(FIXTURE / "data.mdb", folder / "data.mdb")
    return folder


def test_the_fixture_is_what_its_readme_says(expected: dict[str, Any]) -> None:
    assert len(expected) == 9
    assert any(len(k) == 600 for k in expected) and any("/" in k and " " in k for k in expected)
    assert any(not k.isascii() for k in expected)


def test_opens_with_all_nine_items_values_and_times(db: Path, expected: dict[str, Any]) -> None:
    d = PersistDict(database_path=db)
    assert list(d) == list(expected)  # creation order
    times = [d.metadata(k) for k in d]  # (before any value is read: reads are accesses)
    assert [t.ctime for t in times] == pytest.approx([_local(us) for us in MICROSECONDS], abs=1e-6)
    assert [t.atime for t in times] == [t.ctime for t in times]
    assert len(d) == 9 and dict(d.items()) == expected
    assert all(d[k] == v and type(d[k]) is type(v) for k, v in expected.items())


def test_migrated_items_behave_as_others(db: Path, expected: dict[str, Any]) -> None:
    d = PersistDict(database_path=db)
    del d["a"]
    d["b"] = "new b"
    d["new"] = 1
    assert d({"init": True}) is d  # (the fixture's d(...) was never called)
    d.close()
    again = PersistDict(database_path=db)  # the copy is made once: "a" stays deleted
    assert list(again) == [k for k in expected if k != "a"] + ["new", "init"]
    assert again["b"] == "new b" and again.metadata("b").ctime == pytest.approx(_local(MICROSECONDS[1]))
    with pytest.raises(AlreadyInitializedError):
        again(other=1)


def test_persistdicts_own_databases_are_left_untouched(db: Path) -> None:
    before = {name: raw_records(db, name) for name in OLD_DATABASES}
    d = PersistDict(database_path=db)
    d["a"] = "changed"
    d["new"] = 1
    d.close()
    assert {name: raw_records(db, name) for name in OLD_DATABASES} == before
    assert len(before[b"PersistDict_values"]) == 9


def test_an_old_call_marker_is_carried_over(db: Path) -> None:
    put_raw_record(db, b"already_called", zlib.compress(b"true\n...\n"), db=b"PersistDict_info")
    with pytest.raises(AlreadyInitializedError):
        PersistDict(database_path=db)(x=1)


def test_unreadable_old_records_are_skipped_and_logged(
    db: Path, expected: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    put_raw_record(db, b"orphan", pickle.dumps("a value without metadata"), db=b"PersistDict_values")
    put_raw_record(db, b"orphan", b"not zlib", db=b"PersistDict_metadata")
    put_raw_record(db, b"no value", zlib.compress(b"{fullkey: lost}"), db=b"PersistDict_metadata")
    caplog.set_level(logging.WARNING, logger="persidict")
    d = PersistDict(database_path=db)
    assert dict(d) == expected
    assert any("unreadable metadata" in r.getMessage() for r in caplog.records)


def test_two_processes_opening_it_at_once_copy_it_once(db: Path, expected: dict[str, Any]) -> None:
    procs = [
        start_python(
            f"""
            import json
            from persidict import PersistDict
            d = PersistDict(database_path={str(db)!r})
            print(json.dumps(list(d)))
            """
        )
        for _ in range(3)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert json.loads(out) == list(expected)
    d = PersistDict(database_path=db)
    assert list(d) == list(expected) and dict(d) == expected
