"""FileDirDict: construction, parameters, layout, ETags, durability switches, hygiene of the folder."""

from __future__ import annotations

import base64
import hashlib
import os
import pathlib
import pickle
import threading
from typing import Any

import pytest

from persidict.file_dir_dict import FileDirDict
from persidict.flags import ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE

from .threads import run_in_threads


def suffixed(component: str, n: int = 4) -> str:
    """The published layout's encoding of one key component, computed independently."""
    digest = base64.b32encode(hashlib.md5(component.encode("utf-8")).digest()).decode("ascii").lower()
    return f"{component}_{digest[:n]}" if n else component


def files_under(folder: pathlib.Path) -> list[str]:
    """Relative paths of every file under ``folder``, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------- construction


def test_base_dir_is_created_and_accepts_pathlike(tmp_path: pathlib.Path) -> None:
    where = tmp_path / "a" / "b"
    d: FileDirDict[int] = FileDirDict(base_dir=where)
    assert where.is_dir()
    assert d.base_dir == str(where)
    d["x"] = 1
    assert FileDirDict(base_dir=str(where))["x"] == 1


def test_base_dir_that_is_a_file_is_rejected(tmp_path: pathlib.Path) -> None:
    f = tmp_path / "file"
    f.write_text("not a folder")
    with pytest.raises(ValueError, match="not a folder"):
        FileDirDict(base_dir=f)
    with pytest.raises(ValueError):
        FileDirDict(base_dir=f / "below")


def test_dir_name_is_the_older_spelling(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[Any] = FileDirDict(dir_name=str(tmp_path / "old"))
    assert d.base_dir == str(tmp_path / "old")
    same: FileDirDict[Any] = FileDirDict(base_dir=tmp_path / "old", dir_name=str(tmp_path / "old"))
    assert same.base_dir == d.base_dir
    with pytest.raises(ValueError, match="dir_name"):
        FileDirDict(base_dir=tmp_path / "one", dir_name=str(tmp_path / "two"))
    assert "dir_name" not in d.get_params()


def test_bad_parameters(tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError):
        FileDirDict(base_dir=tmp_path, durable="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        FileDirDict(base_dir=tmp_path, use_locks=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        FileDirDict(base_dir=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        FileDirDict(base_dir=tmp_path, digest_len=-1)
    with pytest.raises(ValueError):
        FileDirDict(base_dir=tmp_path, serialization_format="a/b")


def test_get_params_reopens_the_same_store(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    d: FileDirDict[Any] = FileDirDict(
        base_dir="rel", serialization_format="json", digest_len=6, durable=False
    )
    params = d.get_params()
    assert list(params) == sorted(params)
    assert params == {
        "append_only": False,
        "base_class_for_values": None,
        "base_dir": str(tmp_path / "rel"),
        "digest_len": 6,
        "durable": False,
        "serialization_format": "json",
        "use_locks": True,
    }
    d["k"] = {"a": 1}
    again: FileDirDict[Any] = FileDirDict(**params)
    assert again == d and again["k"] == {"a": 1}
    assert pickle.loads(pickle.dumps(d))["k"] == {"a": 1}


def test_subdict_is_a_file_dir_dict_on_the_subfolder(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, durable=False)
    sub = d.get_subdict(("users", "alice"))
    assert isinstance(sub, FileDirDict)
    expected = tmp_path / suffixed("users") / suffixed("alice")
    assert sub.base_dir == str(expected)
    assert not expected.exists()  # a view creates nothing until written to
    sub["profile"] = {"age": 30}
    assert d["users", "alice", "profile"] == {"age": 30}
    params = sub.get_params()
    assert params["base_dir"] == str(expected) and params["durable"] is False
    reopened: FileDirDict[Any] = FileDirDict(**params)
    assert list(reopened.keys()) == [("profile",)]
    assert len(d.get_subdict("users")) == 1


# ---------------------------------------------------------------- the old README


def test_old_readme_example_runs_as_written(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    # From the older persidict README (seed 003), verbatim but for indentation.
    from persidict import FileDirDict

    my_dictionary = FileDirDict(dir_name="my_folder")
    my_dictionary["Eliza"] = "MIT Eliza was a mock Rogerian psychotherapist."
    my_dictionary["Eliza", "year"] = 1965
    my_dictionary["Eliza", "authors"] = ["Joseph Weizenbaum", "George Bernard Shaw"]

    my_dictionary["Shoebox"] = "IBM Shoebox performed arithmetic on voice command."
    my_dictionary["Shoebox", "year"] = 1961
    my_dictionary["Shoebox", "authors"] = ["W.C. Dersch", "E.A. Quade"]

    for k in my_dictionary.keys():  # noqa: SIM118 - as in the README
        print(list(k), "==", my_dictionary[k])

    assert "Eliza" in my_dictionary, "Something is wrong"

    del my_dictionary
    new_dict = FileDirDict(dir_name="my_folder")
    print("len(new_dict) == ", len(new_dict))

    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "len(new_dict) ==  6"
    assert sorted(out[:-1]) == sorted(
        [
            "['Eliza'] == MIT Eliza was a mock Rogerian psychotherapist.",
            "['Eliza', 'year'] == 1965",
            "['Eliza', 'authors'] == ['Joseph Weizenbaum', 'George Bernard Shaw']",
            "['Shoebox'] == IBM Shoebox performed arithmetic on voice command.",
            "['Shoebox', 'year'] == 1961",
            "['Shoebox', 'authors'] == ['W.C. Dersch', 'E.A. Quade']",
        ]
    )
    assert files_under(tmp_path / "my_folder") == sorted(
        [
            f"{suffixed('Eliza')}.pkl",
            f"{suffixed('Eliza')}/{suffixed('year')}.pkl",
            f"{suffixed('Eliza')}/{suffixed('authors')}.pkl",
            f"{suffixed('Shoebox')}.pkl",
            f"{suffixed('Shoebox')}/{suffixed('year')}.pkl",
            f"{suffixed('Shoebox')}/{suffixed('authors')}.pkl",
        ]
    )


# ---------------------------------------------------------------- ETags and timestamps


def test_etag_changes_on_every_write_and_is_stable_otherwise(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[str] = FileDirDict(base_dir=tmp_path, durable=False)
    seen = set()
    for _ in range(200):
        d["k"] = "same bytes every time"
        e = d.etag("k")
        assert e not in seen
        seen.add(e)
        assert d.etag("k") == e  # stable while nobody writes
        r = d.get_with_etag("k")
        assert (r.new_value, r.actual_etag, r.resulting_etag) == ("same bytes every time", e, e)
    st = os.stat(tmp_path / f"{suffixed('k')}.pkl")
    assert d.etag("k") == f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
    assert d.timestamp("k") == st.st_mtime_ns / 1e9


def test_stale_etag_is_refused(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["k"] = 1
    old = d.etag("k")
    d["k"] = 1
    r = d.set_item_if("k", 2, old, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and d["k"] == 1
    r = d.set_item_if("k", 2, d.etag("k"), ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and d["k"] == 2


# ---------------------------------------------------------------- durability and locks


@pytest.mark.parametrize("durable", [True, False])
def test_durable_fsyncs_file_and_folder(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=durable)
    d["a", "b"] = 0
    calls: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: Any) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    d["a", "b"] = 1
    assert len(calls) == (2 if durable else 0)
    calls.clear()
    del d["a", "b"]
    assert len(calls) == (1 if durable else 0)
    assert d.durable is durable and d.get_params()["durable"] is durable


@pytest.mark.parametrize("use_locks", [True, False])
def test_capabilities_follow_use_locks(tmp_path: pathlib.Path, use_locks: bool) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, use_locks=use_locks)
    assert d.capabilities.atomic_preconditions is use_locks
    assert d.capabilities.unique_etags is True
    assert d.use_locks is use_locks


@pytest.mark.parametrize("use_locks", [True, False])
def test_insert_if_absent_has_one_winner_among_threads(tmp_path: pathlib.Path, use_locks: bool) -> None:
    # Without locks, create-if-absent still goes through link(): atomic on a local disk.
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False, use_locks=use_locks)
    winners: list[tuple[int, int]] = []
    barrier = threading.Barrier(8)

    def racer(me: int) -> None:
        barrier.wait()
        for k in range(30):
            r = d.setdefault_if(f"k{k}", me, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
            if r.value_was_mutated:
                winners.append((k, me))

    run_in_threads(8, racer)
    assert sorted(k for k, _ in winners) == list(range(30))
    assert all(d[f"k{k}"] == me for k, me in winners)


def test_transform_item_is_atomic_across_threads(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["n"] = 0

    def work(_: int) -> None:
        for _ in range(50):
            d.transform_item("n", lambda v: v + 1, n_retries=None)

    run_in_threads(4, work)
    assert d["n"] == 200


def test_plain_writes_do_not_slip_between_check_and_swap(tmp_path: pathlib.Path) -> None:
    # Plain writes take the folder lock too: a CAS that read the old version fails.
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["k"] = 0
    e = d.etag("k")
    d["k"] = 5
    assert not d.set_item_if("k", 1, e, ETAG_IS_THE_SAME).condition_was_satisfied
    assert d["k"] == 5


# ---------------------------------------------------------------- hygiene of the folder


def test_temporary_and_foreign_files_are_invisible(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["a"] = 1
    d["f", "b"] = 2
    sub = tmp_path / suffixed("f")
    # A temporary file left by a killed writer, and files of other programs.
    (tmp_path / f".{suffixed('a')}.pkl.host.123.abcd0.tmp#").write_bytes(b"partial")
    (sub / f".{suffixed('c')}.pkl.host.9.ffff1.tmp#").write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("not an item")
    (tmp_path / "bad name!.pkl").write_bytes(pickle.dumps(0))
    (sub / "README").write_text("hello")
    assert len(d) == 2
    assert sorted(d.keys()) == [("a",), ("f", "b")]
    assert sorted(k for k, _ in d.keys_and_timestamps()) == [("a",), ("f", "b")]
    d.clear()
    assert len(d) == 0
    assert (tmp_path / "notes.txt").exists() and (sub / "README").exists()
    assert (tmp_path / "bad name!.pkl").exists()


def test_a_temporary_file_never_looks_like_an_item_even_for_format_tmp(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d: FileDirDict[str] = FileDirDict(base_dir=tmp_path, serialization_format="tmp", durable=False)
    made: list[str] = []
    real_replace = os.replace

    def spying_replace(src: Any, dst: Any, **dir_fds: Any) -> None:
        made.append(os.path.basename(src))
        assert len(d) == 0  # the temporary file is there, yet no item is seen
        real_replace(src, dst, **dir_fds)

    monkeypatch.setattr(os, "replace", spying_replace)
    d["k"] = "v"
    monkeypatch.undo()
    assert made and not made[0].endswith(".tmp") and made[0].startswith(".")
    assert len(d) == 1


def test_folders_left_empty_by_deletes_are_removed(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["a", "b", "c"] = 1
    d["a", "x"] = 2
    del d["a", "b", "c"]
    assert files_under(tmp_path) == [f"{suffixed('a')}/{suffixed('x')}.pkl"]
    assert not (tmp_path / suffixed("a") / suffixed("b")).exists()
    d.discard(("a", "x"))
    assert list(tmp_path.iterdir()) == []  # base_dir itself stays
    assert tmp_path.is_dir()
    d["a", "b", "c"] = 3  # and folders come back on the next write
    assert d["a", "b", "c"] == 3


def test_subdict_still_works_after_its_folder_was_pruned(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["s", "k"] = 1
    sub = d.get_subdict("s")
    assert isinstance(sub, FileDirDict)
    del d["s", "k"]
    assert not os.path.exists(sub.base_dir)
    assert len(sub) == 0 and list(sub) == [] and "k" not in sub
    sub["k"] = 2
    assert d["s", "k"] == 2


@pytest.mark.parametrize(
    "bad", ["..", ".", "../x", "a/b", "/etc/passwd", ("..", "x"), ("a", ".."), "a\\b", "a\x00b", "~/x"]
)
def test_keys_cannot_escape_base_dir(tmp_path: pathlib.Path, bad: Any) -> None:
    base = tmp_path / "base"
    d: FileDirDict[int] = FileDirDict(base_dir=base, digest_len=0, durable=False)
    with pytest.raises((ValueError, TypeError)):
        d[bad] = 1
    assert list(tmp_path.iterdir()) == [base] and list(base.iterdir()) == []


@pytest.mark.parametrize("digest_len", [0, 4])
def test_odd_but_valid_keys_stay_inside_base_dir(tmp_path: pathlib.Path, digest_len: int) -> None:
    base = tmp_path / "base"
    d: FileDirDict[int] = FileDirDict(base_dir=base, digest_len=digest_len, durable=False)
    keys = [("...",), (".x", "..y"), ("~",), ("-", "="), ("a.pkl",), ("x" * 200,), ("y" * 240, "z" * 240)]
    if not digest_len:  # no suffix proves a name starting with "." ours: such keys are refused
        for k in [k for k in keys if any(c.startswith(".") for c in k)]:
            with pytest.raises(ValueError, match=r"starts with '\.'"):
                d[k] = 0
            keys.remove(k)
    for i, k in enumerate(keys):
        d[k] = i
    for p in base.rglob("*"):
        assert os.path.realpath(p).startswith(str(base) + os.sep)
    assert list(tmp_path.iterdir()) == [base]
    assert sorted(d.keys()) == sorted(keys)
    assert [d[k] for k in keys] == list(range(len(keys)))


def test_listings_see_every_key_once_across_walk_chunks(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The walk hands out a folder's files in chunks; subfolders interrupt them.
    import persidict.backends.files as files_module

    monkeypatch.setattr(files_module, "_WALK_CHUNK", 3)
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path / "d", durable=False)
    expected: dict[tuple[str, ...], int] = {}
    for i in range(11):
        expected[(f"k{i}",)] = i
        expected[("sub", f"s{i}")] = 100 + i
        expected[("sub", "deeper", f"t{i}")] = 200 + i
    for k, v in expected.items():
        d[k] = v
    (tmp_path / "d" / "foreign.txt").write_text("not an item")
    fresh: FileDirDict[int] = FileDirDict(base_dir=tmp_path / "d", durable=False)  # a cold first pass
    for store in (fresh, d):
        assert sorted(tuple(k) for k in store) == sorted(expected)
        assert len(store) == len(expected)
        assert dict(store.items()) == expected
        assert len(store.oldest_keys()) == len(expected)
    # Files added since a listing, between known ones: chunks of known and new names mixed.
    other: FileDirDict[int] = FileDirDict(base_dir=tmp_path / "d", durable=False)
    for i in range(11, 30):
        expected[(f"k{i}",)] = i
        other[f"k{i}"] = i
    (tmp_path / "d" / "k99.txt").write_text("not an item either")
    for store in (fresh, d):
        assert sorted(tuple(k) for k in store) == sorted(expected)
        assert len(store) == len(expected)


@pytest.mark.parametrize("use_locks", [True, False])
def test_writes_follow_a_folder_removed_and_made_again(tmp_path: pathlib.Path, use_locks: bool) -> None:
    # Writes keep a descriptor of each folder (with or without locks); a folder pruned by a
    # delete and made again is a new folder, which later writes must land in.
    d1: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False, use_locks=use_locks)
    d2: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False, use_locks=use_locks)
    d1["a", "b"] = 1
    del d2["a", "b"]  # prunes the folder of ("a", ...)
    assert not (tmp_path / suffixed("a")).exists()
    d1["a", "c"] = 2
    assert d2["a", "c"] == 2
    assert files_under(tmp_path) == [f"{suffixed('a')}/{suffixed('c')}.pkl"]
    (tmp_path / suffixed("a") / f"{suffixed('c')}.pkl").unlink()
    (tmp_path / suffixed("a")).rmdir()  # removed behind the dicts' backs
    (tmp_path / suffixed("a")).mkdir()
    d1["a", "d"] = 3
    assert files_under(tmp_path) == [f"{suffixed('a')}/{suffixed('d')}.pkl"]
    assert d2["a", "d"] == 3


@pytest.mark.parametrize("durable", [False, True])
def test_writes_follow_a_base_folder_renamed_away_and_replaced(tmp_path: pathlib.Path, durable: bool) -> None:
    base = tmp_path / "store"
    d: FileDirDict[int] = FileDirDict(base_dir=base, durable=durable)
    d["a"] = 1
    d["sub", "b"] = 2
    base.rename(tmp_path / "old")  # rotated away, e.g. by a cache cleaner
    base.mkdir()
    d["a"] = 3
    d["sub", "b"] = 4
    assert files_under(base) == sorted([f"{suffixed('a')}.pkl", f"{suffixed('sub')}/{suffixed('b')}.pkl"])
    assert dict(FileDirDict(base_dir=tmp_path / "old").items()) == {("a",): 1, ("sub", "b"): 2}
    assert dict(d.items()) == {("a",): 3, ("sub", "b"): 4}
    r = d.discard_if("a", d.etag("a"), ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and r.resulting_etag is ITEM_NOT_AVAILABLE
    assert "a" not in d and FileDirDict(base_dir=tmp_path / "old")["a"] == 1


def test_str_keys_on_the_write_fast_path_keep_every_rule(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=tmp_path, durable=False)
    d["a"] = 1
    d["a"] = 2  # the str is cached beside its tuple: both name one item
    assert d[("a",)] == 2 and d["a"] == 2 and len(d) == 1
    d[("a",)] = 3
    assert d["a"] == 3
    with pytest.raises(ValueError, match="Invalid key component"):
        d["a b"] = 1
    with pytest.raises(TypeError, match=r"NonEmptySafeStrTuple\('lock'\)"):
        d["lock"] = threading.Lock()
    with pytest.raises(ValueError, match="NAME_MAX"):
        d["x" * 250] = 1
    typed: FileDirDict[int] = FileDirDict(base_dir=tmp_path / "t", durable=False, base_class_for_values=int)
    with pytest.raises(TypeError, match="instance of int"):
        typed["s"] = "str"  # type: ignore[assignment]
    assert "lock" not in d and "s" not in typed and len(d) == 1


def test_threads_listing_one_dict_while_its_name_caches_overflow(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persidict.keys import Layout

    monkeypatch.setattr(Layout, "_DECODED_LIMIT", 40)  # other threads clear the caches mid-listing
    import persidict.backends.files as files_module

    monkeypatch.setattr(files_module, "_WALK_CHUNK", 7)
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    expected = {(f"k{i}",) for i in range(150)} | {("s", f"t{i}") for i in range(50)}
    for k in expected:
        d[k] = 1
    fresh: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    seen: list[set[tuple[str, ...]]] = []

    def listing(_: int) -> None:
        for _ in range(5):
            seen.append({tuple(k) for k in fresh})

    run_in_threads(4, listing)
    assert len(seen) == 20 and all(s == expected for s in seen)
