"""PersistDict: PersistDict's API over LmdbDict (issue 16), in one process.

The examples of PersistDict's README (seed 004) run with only the import line
changed; keys of every kind round-trip in creation order; serializers,
caching, expiry, the one-time ``d(...)`` and the settings behave as the
README section "For PersistDict users" says.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import pickle
import sys
import textwrap
import time
import types
from pathlib import Path
from typing import Any, assert_type

import pytest

from persidict import PersistDict
from persidict.errors import CorruptValueError
from persidict.persist_dict import AlreadyInitializedError, ItemTimes, KeySerializerMismatchError
from tests.lmdb_helpers import Clock, stress_seconds
from tests.threads import run_in_threads

DAY = 86400.0


def _run_example(code: str, db: Path) -> dict[str, Any]:
    """Run an example of PersistDict's README with the import line changed and ``/path/to/db`` -> ``db``.

    (The README's later examples go on from the first, whose import line they share.)
    """
    code = textwrap.dedent(code)
    if "from PersistDict import PersistDict" not in code:
        code = "from PersistDict import PersistDict\n" + code
    code = code.replace("from PersistDict import PersistDict", "from persidict import PersistDict")
    namespace: dict[str, Any] = {}
    exec(compile(code.replace("/path/to/db", str(db)), "<seed 004 example>", "exec"), namespace)
    return namespace


@pytest.fixture
def dill_like(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """``dill`` if installed, else a stand-in with its ``dumps``/``loads`` (pickle bytes behind a tag)."""
    try:
        import dill  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        dill = types.ModuleType("dill")
        dill.dumps = lambda obj: b"DILL" + pickle.dumps(obj)  # type: ignore[attr-defined]
        dill.loads = lambda data: pickle.loads(data[4:]) if data[:4] == b"DILL" else 1 / 0  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "dill", dill)
    return dill  # type: ignore[no-any-return]


# ---------------------------------------------------------------- seed 004's examples


def test_readme_basic_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ns = _run_example(
        '''
        from PersistDict import PersistDict

        # Create a persistent dictionary
        d = PersistDict(
            database_path="/path/to/db",  # Path to the database directory
            expiration_days=30,           # Optional: entries older than this will be removed
            verbose=False,                # Optional: enable debug logging
            background_thread=True,       # Optional: run initialization tasks in background
        )

        # Use it like a regular dictionary
        d["key"] = "value"
        print(d["key"])         # "value"
        print("key" in d)       # True
        print(len(d))           # 1

        # Dictionary-style initialization (only available once)
        d = d(a=1, b="string", c=[1, 2, 3])

        # Supports standard dictionary methods
        for key in d.keys():
            print(key)

        for value in d.values():
            print(value)

        for key, value in d.items():
            print(f"{key}: {value}")

        # Delete items
        del d["a"]
        after_del = dict(d)

        # Clear the entire dictionary
        d.clear()
        ''',
        tmp_path / "db",
    )
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "value", "True", "1",
        "key", "a", "b", "c",
        "value", "1", "string", "[1, 2, 3]",
        "key: value", "a: 1", "b: string", "c: [1, 2, 3]",
    ]
    assert ns["after_del"] == {"key": "value", "b": "string", "c": [1, 2, 3]}
    assert len(ns["d"]) == 0
    assert len(PersistDict(database_path=tmp_path / "db")) == 0


def test_readme_custom_serialization(tmp_path: Path, dill_like: types.ModuleType) -> None:
    ns = _run_example(
        '''
        import json
        import pickle
        import dill

        # Custom serializers for encryption, compression, etc.
        d = PersistDict(
            database_path="/path/to/db",
            key_serializer=json.dumps,       # Custom key serializer
            key_unserializer=json.loads,     # Custom key deserializer
            value_serializer=dill.dumps,     # Custom value serializer
            value_unserializer=dill.loads,   # Custom value deserializer
            key_size_limit=511,              # Maximum key size before hashing
            caching=True,                    # Enable/disable LRU caching
            background_timeout=30,           # Maximum time for background operations
        )
        ''',
        tmp_path / "db",
    )
    d = ns["d"]
    d["x y/z é"] = {"n": [1, 2]}
    assert d["x y/z é"] == {"n": [1, 2]}
    assert (d.key_serializer, d.key_unserializer) == (json.dumps, json.loads)
    assert (d.value_serializer, d.value_unserializer) == (dill_like.dumps, dill_like.loads)
    assert (d.key_size_limit, d.caching, d.background_timeout) == (511, True, 30.0)


def test_readme_shared_database_access(tmp_path: Path) -> None:
    ns = _run_example(
        '''
        # Create two instances pointing to the same database
        d1 = PersistDict(database_path="/path/to/db")
        d2 = PersistDict(database_path="/path/to/db")

        # Changes in one instance are visible in the other
        d1["shared_key"] = "shared_value"
        assert d2["shared_key"] == "shared_value"
        assert list(d1.keys()) == list(d2.keys())
        ''',
        tmp_path / "db",
    )
    assert list(ns["d2"].keys()) == ["shared_key"]


def test_readme_background_thread_control(tmp_path: Path) -> None:
    ns = _run_example(
        '''
        # Run in background (default)
        d1 = PersistDict(database_path="/path/to/db", background_thread=True)

        # Run in foreground (blocking)
        d2 = PersistDict(database_path="/path/to/db", background_thread=False)

        # Skip initialization tasks entirely
        d3 = PersistDict(database_path="/path/to/db", background_thread="disabled")
        ''',
        tmp_path / "db",
    )
    assert [ns[n].background_thread for n in ("d1", "d2", "d3")] == [True, False, "disabled"]


def test_readme_named_instances_log_and_print_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="persidict")
    ns = _run_example(
        '''
        d = PersistDict(
            database_path="/path/to/db",
            name="cache_db",    # Name for identifying this instance in logs
            verbose=True        # Enable logging
        )
        ''',
        tmp_path / "db",
    )
    d = ns["d"]
    d(a=1)
    assert d.name == "cache_db" and d.verbose is True
    assert capsys.readouterr() == ("", "")
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("persidict")]
    assert any("cache_db" in m and "initialised" in m for m in messages)


def test_not_verbose_logs_at_debug_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="persidict")
    d = PersistDict(database_path=tmp_path / "db")
    d(a=1)
    assert [r for r in caplog.records if r.name.startswith("persidict")] == []


# ---------------------------------------------------------------- keys

KEYS_OF_EVERY_KIND = [
    "plain",
    "with spaces and\ttabs\nnewlines",
    "a/b/c",
    "/leading/slash/",
    "..",
    ".",
    "back\\slash",
    "unicode é ü 日本 🙂",
    "\x00nul",
    "\ud800 lone surrogate",
    "#hash",
    "x" * 10_000,
    "y" * 511,
    "ÿ" * 300,
]


def test_keys_of_every_kind_round_trip_in_creation_order(tmp_path: Path) -> None:
    d = PersistDict(database_path=tmp_path / "db")
    for i, key in enumerate(KEYS_OF_EVERY_KIND):
        d[key] = i
    assert list(d.keys()) == KEYS_OF_EVERY_KIND
    assert [d[k] for k in KEYS_OF_EVERY_KIND] == list(range(len(KEYS_OF_EVERY_KIND)))
    assert all(k in d for k in KEYS_OF_EVERY_KIND)
    d.close()
    again = PersistDict(database_path=tmp_path / "db")
    assert list(again) == KEYS_OF_EVERY_KIND
    assert dict(again) == {k: i for i, k in enumerate(KEYS_OF_EVERY_KIND)}


def test_overwrite_keeps_the_place_and_recreation_goes_last(tmp_path: Path) -> None:
    d = PersistDict(database_path=tmp_path / "db")
    for k in ("c", "a", "b"):
        d[k] = 0
    d["c"] = 1
    assert list(d) == ["c", "a", "b"]
    del d["c"]
    d["c"] = 2
    assert list(d) == ["a", "b", "c"]
    d.update({"a": 3, "z": 4})
    assert list(d.items()) == [("a", 3), ("b", 0), ("c", 2), ("z", 4)]
    assert list(reversed(d)) == ["z", "c", "b", "a"]


@pytest.mark.parametrize(
    "operation",
    [
        lambda d, k: d.__setitem__(k, 1),
        lambda d, k: d[k],
        lambda d, k: k in d,
        lambda d, k: d.__delitem__(k),
        lambda d, k: d.get(k),
        lambda d, k: d.metadata(k),
    ],
)
def test_bad_keys_are_refused_clearly(tmp_path: Path, operation: Any) -> None:
    d = PersistDict(database_path=tmp_path / "db")
    with pytest.raises(ValueError, match="empty string"):
        operation(d, "")
    for bad in (1, b"bytes", ("a", "b"), None):
        with pytest.raises(TypeError, match="PersistDict keys are str"):
            operation(d, bad)
    assert len(d) == 0


def test_str_subclass_keys_are_stored_as_str(tmp_path: Path) -> None:
    class Name(str):
        pass

    d = PersistDict(database_path=tmp_path / "db")
    d[Name("n")] = 1
    assert d["n"] == 1
    assert [type(k) for k in d] == [str]


# ---------------------------------------------------------------- serializers


def _encrypt(key: str) -> bytes:
    return base64.b64encode(bytes(b ^ 0x5A for b in key.encode()))


def _decrypt(data: bytes) -> str:
    return bytes(b ^ 0x5A for b in base64.b64decode(data)).decode()


def test_serializers_across_reopen(tmp_path: Path) -> None:
    settings: dict[str, Any] = {
        "database_path": tmp_path / "db",
        "key_serializer": json.dumps,
        "key_unserializer": json.loads,
        "value_serializer": lambda v: b"custom:" + json.dumps(v).encode(),
        "value_unserializer": lambda b: json.loads(b.removeprefix(b"custom:")),
    }
    d = PersistDict(**settings)
    d["k 1"] = [1, "x"]
    d["ключ"] = {"a": None}
    d.close()
    again = PersistDict(**settings)
    assert dict(again) == {"k 1": [1, "x"], "ключ": {"a": None}}
    assert list(again) == ["k 1", "ключ"]


def test_keys_are_stored_through_the_key_serializer(tmp_path: Path) -> None:
    d = PersistDict(database_path=tmp_path / "db", key_serializer=_encrypt, key_unserializer=_decrypt)
    d["top secret key"] = 1
    d.close()
    assert b"top secret key" not in (tmp_path / "db" / "data.mdb").read_bytes()
    again = PersistDict(database_path=tmp_path / "db", key_serializer=_encrypt, key_unserializer=_decrypt)
    assert list(again) == ["top secret key"]


def test_reopening_with_other_key_serializers_raises_and_loses_nothing(tmp_path: Path) -> None:
    d = PersistDict(database_path=tmp_path / "db", key_serializer=json.dumps, key_unserializer=json.loads)
    d["123"] = "a str key that json reads back as an int"
    d["k"] = 2
    d.close()
    with pytest.raises(KeySerializerMismatchError, match="key serializers"):
        PersistDict(database_path=tmp_path / "db")  # the default: keys stored as they are
    with pytest.raises(KeySerializerMismatchError):
        PersistDict(database_path=tmp_path / "db", key_serializer=_encrypt, key_unserializer=_decrypt)
    again = PersistDict(database_path=tmp_path / "db", key_serializer=json.dumps, key_unserializer=json.loads)
    assert dict(again) == {"123": "a str key that json reads back as an int", "k": 2}


def test_reading_values_with_other_value_serializers_names_the_key(tmp_path: Path) -> None:
    d = PersistDict(database_path=tmp_path / "db")
    d["k"] = 1
    d.close()
    other = PersistDict(
        database_path=tmp_path / "db",
        value_serializer=lambda v: json.dumps(v).encode(),
        value_unserializer=json.loads,
    )
    with pytest.raises(CorruptValueError, match="'k'"):
        other["k"]


def test_serializer_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both key_serializer and key_unserializer"):
        PersistDict(database_path=tmp_path / "db", key_serializer=json.dumps)
    with pytest.raises(ValueError, match="both value_serializer and value_unserializer"):
        PersistDict(database_path=tmp_path / "db", value_unserializer=json.loads)
    with pytest.raises(TypeError, match="callable"):
        PersistDict(database_path=tmp_path / "db", value_serializer=1, value_unserializer=1)  # type: ignore[arg-type]
    d = PersistDict(
        database_path=tmp_path / "db", value_serializer=json.dumps, value_unserializer=json.loads  # type: ignore[arg-type]
    )
    with pytest.raises(TypeError, match="must return bytes"):
        d["k"] = 1
    plain = PersistDict(database_path=tmp_path / "db2")
    with pytest.raises(Exception, match="lambda") as info:
        plain["f"] = lambda: 0
    assert any("'f'" in note for note in getattr(info.value, "__notes__", []))
    assert "f" not in plain


# ---------------------------------------------------------------- a correct MutableMapping


def test_dict_methods_act_on_the_store(tmp_path: Path) -> None:
    d = PersistDict(database_path=tmp_path / "db")
    other = PersistDict(database_path=tmp_path / "db")
    d.update({"a": 1}, b=2)
    d.update([("c", 3)])
    assert other.get("a") == 1 and other.get("zz", "default") == "default"
    assert other.setdefault("a", 9) == 1 and other.setdefault("d", 4) == 4
    assert d == {"a": 1, "b": 2, "c": 3, "d": 4} and d == other and d != {"a": 1}
    assert d.pop("b") == 2 and d.pop("b", None) is None
    with pytest.raises(KeyError):
        d.pop("b")
    assert other.popitem() == ("d", 4)
    assert d.copy() == {"a": 1, "c": 3}
    d |= {"e": 5}
    assert list(other.keys()) == ["a", "c", "e"] and list(other.values()) == [1, 3, 5]
    assert repr(other) == repr({"a": 1, "c": 3, "e": 5}) == str(other)
    assert bool(other) and len(other) == 3
    other.clear()
    assert not d and len(d) == 0 and repr(d) == "{}"
    with pytest.raises(KeyError):
        d.popitem()
    with pytest.raises(KeyError):
        del d["a"]


def test_a_failed_update_stores_nothing(tmp_path: Path) -> None:
    d = PersistDict(database_path=tmp_path / "db")
    with pytest.raises(ValueError, match="empty string"):
        d.update({"a": 1, "": 2})
    with pytest.raises(Exception, match="lambda"):
        d.update({"a": 1, "b": lambda: 0})
    assert len(d) == 0


def test_cache_is_never_stale(tmp_path: Path) -> None:
    d1 = PersistDict(database_path=tmp_path / "db", caching=True)
    d2 = PersistDict(database_path=tmp_path / "db", caching=True)
    d1["k"] = [1]
    assert d1["k"] == [1] and d2["k"] == [1]
    d2["k"] = [2]
    assert d1["k"] == [2]
    del d2["k"]
    assert "k" not in d1 and d1.get("k") is None


# ---------------------------------------------------------------- d(...) once


def test_call_initialises_once(tmp_path: Path) -> None:
    d = PersistDict(database_path=tmp_path / "db")
    assert d({"a": 1}, b=2) is d
    assert dict(d) == {"a": 1, "b": 2}
    with pytest.raises(AlreadyInitializedError, match="already initialised"):
        d(c=3)
    assert isinstance(AlreadyInitializedError(), RuntimeError)
    assert "c" not in d
    d.close()
    with pytest.raises(AlreadyInitializedError):
        PersistDict(database_path=tmp_path / "db")(c=3)
    PersistDict(database_path=tmp_path / "db").clear()  # (clearing the items does not make it available)
    with pytest.raises(AlreadyInitializedError):
        PersistDict(database_path=tmp_path / "db")(c=3)


# ---------------------------------------------------------------- settings


def test_settings_are_readable(tmp_path: Path) -> None:
    d = PersistDict(database_path=str(tmp_path / "my_cache"))
    assert d.database_path == tmp_path / "my_cache"
    assert d.name == "my_cache"
    assert (d.expiration_days, d.verbose, d.background_thread, d.caching) == (None, False, True, True)
    assert (d.key_serializer, d.value_serializer, d.key_size_limit) == (None, None, 511)
    assert d.background_timeout >= 5
    short = PersistDict(database_path=tmp_path / "db", background_timeout=1, expiration_days=2.5, name="n")
    assert (short.background_timeout, short.expiration_days, short.name) == (5.0, 2.5, "n")


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"expiration_days": 0}, ValueError),
        ({"expiration_days": -1}, ValueError),
        ({"expiration_days": float("inf")}, ValueError),
        ({"expiration_days": "30"}, TypeError),
        ({"background_thread": "yes"}, ValueError),
        ({"background_thread": 1}, ValueError),
        ({"verbose": 1}, TypeError),
        ({"caching": None}, TypeError),
        ({"key_size_limit": 0}, ValueError),
        ({"key_size_limit": True}, ValueError),
        ({"background_timeout": 0}, ValueError),
        ({"background_timeout": "5"}, TypeError),
        ({"name": 3}, TypeError),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        PersistDict(database_path=tmp_path / "db", **kwargs)


def test_the_value_type_is_a_type_parameter(tmp_path: Path) -> None:
    d: PersistDict[int] = PersistDict(database_path=tmp_path / "db")
    d["a"] = 1
    assert_type(d["a"], int)
    assert_type(d.get("a"), int | None)
    assert_type(list(d.items()), list[tuple[str, int]])
    untyped = PersistDict(database_path=tmp_path / "db")
    assert_type(untyped, PersistDict[Any])


def test_pickled_dict_reopens_the_database(tmp_path: Path) -> None:
    d = PersistDict(database_path=tmp_path / "db", key_serializer=json.dumps, key_unserializer=json.loads)
    d["a"] = 1
    copy = pickle.loads(pickle.dumps(d))
    assert copy == {"a": 1} and copy.key_serializer is json.dumps


def test_close(tmp_path: Path) -> None:
    with PersistDict(database_path=tmp_path / "db") as d:
        d["a"] = 1
    assert d.closed
    with pytest.raises(ValueError, match="closed"):
        d["a"]
    d.close()  # (again: nothing)


# ---------------------------------------------------------------- times and expiry


def test_ctime_and_atime(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    d = PersistDict(database_path=tmp_path / "db", clock=clock)
    d["k"] = 1
    assert d.metadata("k") == ItemTimes(ctime=1_000_000.0, atime=1_000_000.0)
    clock.now += 10
    d["k"] = 2  # a write is an access; the creation time stays
    assert d.metadata("k") == ItemTimes(ctime=1_000_000.0, atime=1_000_010.0)
    clock.now += 10
    assert d["k"] == 2
    assert d.metadata("k").atime == 1_000_020.0
    d.close()  # saves the access time
    again = PersistDict(database_path=tmp_path / "db", clock=clock)
    assert again.metadata("k") == ItemTimes(ctime=1_000_000.0, atime=1_000_020.0)
    with pytest.raises(KeyError):
        again.metadata("absent")


def test_expiry_counts_from_the_last_read_or_write(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    d = PersistDict(database_path=tmp_path / "db", expiration_days=1, clock=clock)
    d["read"] = 1
    d["written"] = 2
    d["idle"] = 3
    clock.now += 0.8 * DAY
    assert d["read"] == 1
    d["written"] = 20
    clock.now += 0.5 * DAY  # 1.3 days after creation
    assert list(d) == ["read", "written"] and len(d) == 2
    assert "idle" not in d and d.get("idle") is None
    with pytest.raises(KeyError):
        d["idle"]
    with pytest.raises(KeyError):
        del d["idle"]
    clock.now += 0.6 * DAY  # 1.1 days after the last access of both
    assert list(d) == [] and dict(d) == {}


def test_an_expired_key_written_again_is_new(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    d = PersistDict(database_path=tmp_path / "db", expiration_days=1, clock=clock)
    d["old"] = 1
    d["other"] = 2
    clock.now += 0.9 * DAY
    d["other"] = 3
    clock.now += 0.2 * DAY
    d["old"] = 4
    assert list(d) == ["other", "old"]
    assert d.metadata("old").ctime == clock.now


def test_purge_deletes_expired_items(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    d = PersistDict(
        database_path=tmp_path / "db", expiration_days=1, clock=clock, background_thread="disabled"
    )
    d.update({"a": 1, "b": 2})
    clock.now += 2 * DAY
    d["c"] = 3
    assert d.purge() == 2
    forever = PersistDict(database_path=tmp_path / "db", clock=clock)  # no expiry: sees what is stored
    assert list(forever) == ["c"]


@pytest.mark.parametrize("background_thread", [True, False])
def test_opening_purges_expired_items(tmp_path: Path, background_thread: bool) -> None:
    clock = Clock(1_000_000.0)
    PersistDict(database_path=tmp_path / "db", clock=clock).update({"a": 1, "b": 2})
    clock.now += 2 * DAY
    d = PersistDict(
        database_path=tmp_path / "db", expiration_days=1, clock=clock, background_thread=background_thread
    )
    d.close()  # (waits for the background thread)
    assert list(PersistDict(database_path=tmp_path / "db", clock=clock)) == []


def test_disabled_background_thread_keeps_expired_items_stored(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    PersistDict(database_path=tmp_path / "db", clock=clock)["a"] = 1
    clock.now += 2 * DAY
    d = PersistDict(
        database_path=tmp_path / "db", expiration_days=1, clock=clock, background_thread="disabled"
    )
    assert "a" not in d
    d.close()
    assert list(PersistDict(database_path=tmp_path / "db", clock=clock)) == ["a"]


def test_expiration_days_as_timedelta(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)
    d = PersistDict(database_path=tmp_path / "db", expiration_days=datetime.timedelta(hours=1), clock=clock)
    d["a"] = 1
    clock.now += 3601
    assert "a" not in d


# ---------------------------------------------------------------- threads


def _hammer(tmp_path: Path, seconds: float) -> None:
    d = PersistDict(database_path=tmp_path / "db")
    deadline = time.monotonic() + seconds

    def work(i: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            key = f"key {n % 20} / thread {i % 2}"
            d[key] = (i, n)
            value = d.get(key)
            assert value is None or value[1] >= 0
            assert isinstance(key in d, bool)
            assert 0 <= len(d) <= 40
            n += 1
        assert n > 0

    run_in_threads(5, work)  # (a hang fails on pytest's timeout)
    assert len(d) == 40 and all(isinstance(v, tuple) for v in d.values())


def test_five_threads_set_get_contains_len(tmp_path: Path) -> None:
    _hammer(tmp_path, stress_seconds(2.0, 1.0))


@pytest.mark.slow
def test_five_threads_for_ten_seconds(tmp_path: Path) -> None:
    _hammer(tmp_path, stress_seconds(10.0, 3.0))
