"""FileDirDict under adverse conditions.

Folders pruned by concurrent deletes while a write creates them; key components
too long for the filesystem's name limit; keys whose file and folder collide
(digest_len=0); fsync of newly created folders; cleanup of temporary files left
by killed writers.
"""

from __future__ import annotations

import errno
import multiprocessing
import os
import pathlib
import pickle
import random
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from persidict.errors import BackendError
from persidict.file_dir_dict import FileDirDict
from persidict.flags import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
)

SCALE = os.environ.get("PERSIDICT_STRESS_SCALE", "full")
_CTX = multiprocessing.get_context("spawn")


def tree(folder: pathlib.Path) -> list[str]:
    """Every file and folder under ``folder`` (folders end with '/'), sorted."""
    return sorted(str(p.relative_to(folder)) + ("/" if p.is_dir() else "") for p in folder.rglob("*"))


# ---------------------------------------------------------------- 1. concurrent prunes


def _prune_parent_once(fired: list[str]) -> Callable[..., None]:
    """An os.mkdir that first removes the (empty) parent folder, the first time it exists."""
    real_mkdir = os.mkdir

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        p = os.fspath(path)
        dir_fd = kwargs.get("dir_fd")
        parent = os.path.dirname(p) if dir_fd is None else os.readlink(f"/proc/self/fd/{dir_fd}")
        if not fired and os.path.basename(parent).startswith("a_") and os.path.isdir(parent):
            fired.append(parent)
            os.rmdir(parent)  # a concurrent delete's prune
        real_mkdir(p, *args, **kwargs)

    return mkdir


@pytest.mark.parametrize("use_locks", [True, False])
def test_write_survives_a_parent_pruned_while_its_folders_are_made(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, use_locks: bool
) -> None:
    # Another process deletes the last item of "a" and prunes the folder just
    # after this write created it and before it creates "a/b" in it.
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False, use_locks=use_locks)
    fired: list[str] = []
    monkeypatch.setattr(os, "mkdir", _prune_parent_once(fired))
    d["a", "b", "c"] = 1
    monkeypatch.undo()
    assert fired and d["a", "b", "c"] == 1


def test_write_survives_a_folder_that_exists_then_vanishes(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # mkdir says "exists" (another writer made it) and a delete prunes it
    # before the write looks again: os.makedirs(exist_ok=True) raised here.
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    real_mkdir = os.mkdir
    fired: list[bool] = []

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        p = os.fspath(path)
        if not fired and os.path.basename(p).startswith("b_"):
            fired.append(True)
            real_mkdir(p, *args, **kwargs)
            os.rmdir(p, dir_fd=kwargs.get("dir_fd"))
            raise FileExistsError(errno.EEXIST, "File exists", p)
        real_mkdir(p, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    d["a", "b", "c"] = 1
    monkeypatch.undo()
    assert fired and d["a", "b", "c"] == 1


@pytest.mark.parametrize(("durable", "use_locks"), [(False, True), (False, False), (True, True)])
def test_write_survives_its_new_folder_pruned_before_the_temp_file_is_made(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, durable: bool, use_locks: bool
) -> None:
    # (False, True) makes the temporary file through the folder's kept descriptor.
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=durable, use_locks=use_locks)
    real_open = os.open
    pruned: list[str] = []

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        p = os.fspath(path)
        dir_fd = kwargs.get("dir_fd")
        folder = os.path.dirname(p) if dir_fd is None else os.readlink(f"/proc/self/fd/{dir_fd}")
        if p.endswith(".tmp#") and os.path.isdir(folder) and not pruned:
            pruned.append(folder)
            os.rmdir(folder)  # a concurrent delete's prune, right after makedirs
        return real_open(p, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    d["a", "b"] = 1
    monkeypatch.undo()
    assert pruned and d["a", "b"] == 1


def test_a_folder_that_never_stays_is_a_bounded_error(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    real_open = os.open
    calls: list[int] = []

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        p = os.fspath(path)
        if p.endswith(".tmp#"):
            calls.append(1)
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", p)
        return real_open(p, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    with pytest.raises(FileNotFoundError, match="kept"):
        d["a", "b"] = 1
    assert 1 < len(calls) <= 1000


def _set_and_discard(params: dict[str, Any], seed: int, n: int, out: Any) -> None:
    rng = random.Random(seed)
    d: FileDirDict[int] = FileDirDict(**params)
    errors: list[str] = []
    for i in range(n):
        key = ("a", f"b{rng.randrange(2)}", "c")
        try:
            if rng.random() < 0.5:
                d[key] = i
            else:
                d.discard(key)
        except Exception as e:  # reported, not raised: the parent counts them
            errors.append(f"{type(e).__name__}: {e}")
    out.put(errors)


def _race_sets_and_discards(tmp_path: pathlib.Path, n_procs: int, n_ops: int, use_locks: bool = True) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False, use_locks=use_locks)
    out = _CTX.Queue()
    params = d.get_params()
    procs = [_CTX.Process(target=_set_and_discard, args=(params, s, n_ops, out)) for s in range(n_procs)]
    for p in procs:
        p.start()
    errors = [e for _ in procs for e in out.get(timeout=240)]
    for p in procs:
        p.join(60)
    assert errors == []
    assert [p.exitcode for p in procs] == [0] * n_procs
    # Whatever survived is readable, and no temporary file is left behind.
    for k in d:
        assert isinstance(d[k], int)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp#")]


@pytest.mark.parametrize("use_locks", [True, False])
def test_plain_writes_and_deletes_race_on_shared_folders(tmp_path: pathlib.Path, use_locks: bool) -> None:
    # Every delete prunes folders that other processes' writes are creating (and that writes
    # keep descriptors of, with or without locks). Before folder creation retried, this raised
    # in almost every run.
    _race_sets_and_discards(tmp_path, n_procs=4, n_ops=800, use_locks=use_locks)


@pytest.mark.slow
@pytest.mark.parametrize("use_locks", [True, False])
def test_plain_writes_and_deletes_race_on_shared_folders_long(
    tmp_path: pathlib.Path, use_locks: bool
) -> None:
    n_ops = 2000 if SCALE == "small" else 10_000
    _race_sets_and_discards(tmp_path, n_procs=6, n_ops=n_ops, use_locks=use_locks)


# ---------------------------------------------------------------- 2. name length


@pytest.mark.parametrize(("digest_len", "longest_file", "longest_folder"), [(4, 246, 250), (0, 251, 253)])
def test_longest_storable_components(
    tmp_path: pathlib.Path, digest_len: int, longest_file: int, longest_folder: int
) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False, digest_len=digest_len)
    d["f" * longest_file] = 1
    d["g" * longest_folder, "x"] = 2
    assert d["f" * longest_file] == 1 and d["g" * longest_folder, "x"] == 2
    assert sorted(d.keys()) == sorted([("f" * longest_file,), ("g" * longest_folder, "x")])


@pytest.mark.parametrize("durable", [True, False])
def test_temporary_names_are_short_and_name_host_and_process(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, durable: bool
) -> None:
    """Whatever the item's name, its temporary file is ".host.pid.token<counter>.tmp#"."""
    import socket

    from persidict.keys import replace_unsafe_chars

    renamed: list[str] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any, **kw: Any) -> None:
        renamed.append(os.path.basename(src))
        real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", spy)
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=durable)
    d["f" * 246] = 1
    d["short"] = 2
    host = replace_unsafe_chars(socket.gethostname() or "host", "_")[:40]
    assert len(renamed) == 2
    pattern = re.compile(rf"\.{re.escape(host)}\.{os.getpid()}\.[0-9a-f]{{9,24}}\.tmp#")
    for name in renamed:  # token (8 hex) and a hex counter; not the item's name
        assert pattern.fullmatch(name) and len(name) <= 82, name
    assert d["f" * 246] == 1 and d["short"] == 2


def _assert_absent(d: FileDirDict[Any], key: Any) -> None:
    assert key not in d
    assert d.get(key) is None
    assert d.get(key, 7) == 7
    with pytest.raises(KeyError):
        d[key]
    with pytest.raises(KeyError):
        d.timestamp(key)
    with pytest.raises(KeyError):
        d.etag(key)
    assert d.discard(key) is False
    with pytest.raises(KeyError):
        del d[key]
    r = d.get_item_if(key, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME, retrieve_value=ALWAYS_RETRIEVE)
    assert r.actual_etag is ITEM_NOT_AVAILABLE and r.condition_was_satisfied
    r = d.discard_if(key, ITEM_NOT_AVAILABLE, ANY_ETAG)
    assert r.actual_etag is ITEM_NOT_AVAILABLE and not r.value_was_mutated


@pytest.mark.parametrize("use_locks", [True, False])
@pytest.mark.parametrize(("shape", "digest_len"), [("file", 4), ("file", 0), ("folder", 4)])
def test_a_component_too_long_for_a_file_name_is_refused_before_any_write(
    tmp_path: pathlib.Path, digest_len: int, use_locks: bool, shape: str
) -> None:
    d: FileDirDict[int] = FileDirDict(
        base_dir=tmp_path, durable=False, digest_len=digest_len, use_locks=use_locks
    )
    d["other"] = 0
    before = tree(tmp_path)
    long = "z" * (251 if shape == "folder" else 252)  # (with digest_len=0 a folder name always fits)
    key = ("top", long) if shape == "file" else ("top", long, "x")
    writes: list[Callable[[], Any]] = [
        lambda: d.__setitem__(key, 1),
        lambda: d.setdefault(key, 1),
        lambda: d.set_item_if(key, 1, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME),
        lambda: d.set_item_if(key, 1, ITEM_NOT_AVAILABLE, ANY_ETAG),
        lambda: d.setdefault_if(key, 1, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME),
        lambda: d.transform_item(key, lambda v: 1),
    ]
    for write in writes:
        with pytest.raises(ValueError) as info:
            write()
        message = str(info.value)
        assert repr(long) in message and "255" in message and "top" in message
    assert tree(tmp_path) == before  # not even the folder "top" was made
    _assert_absent(d, key)
    assert sorted(d.keys()) == [("other",)]


def test_the_name_limit_is_the_folders_own(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_pathconf = os.pathconf

    def pathconf(path: Any, name: Any) -> int:
        return 100 if name == "PC_NAME_MAX" else real_pathconf(path, name)

    monkeypatch.setattr(os, "pathconf", pathconf)
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path / "store", durable=False)
    d["y" * 91] = 1  # 91 + "_xxxx.pkl" = 100 bytes
    with pytest.raises(ValueError, match="100"):
        d["y" * 92] = 1
    assert sorted(d.keys()) == [("y" * 91,)]


def test_the_name_limit_falls_back_to_255(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def pathconf(path: Any, name: Any) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(os, "pathconf", pathconf)
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["y" * 246] = 1
    with pytest.raises(ValueError, match="255"):
        d["y" * 247] = 1


def test_a_path_too_long_for_the_filesystem_is_refused(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    key = tuple(f"{i:02d}" + "p" * 198 for i in range(25))  # 25 x 205 bytes > 4096
    with pytest.raises(ValueError, match="PATH_MAX"):
        d[key] = 1
    assert tree(tmp_path) == []
    _assert_absent(d, key)


def test_a_subdict_under_a_too_long_prefix_refuses_writes_and_finds_nothing(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    sub = d.get_subdict("q" * 253)
    assert isinstance(sub, FileDirDict)
    with pytest.raises(ValueError, match="255"):
        sub["x"] = 1
    _assert_absent(sub, "x")
    assert list(sub) == [] and len(sub) == 0
    assert tree(tmp_path) == []


def test_the_name_too_long_error_pickles(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    with pytest.raises(ValueError) as info:
        d["w" * 253] = 1
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is type(info.value) and str(again) == str(info.value)


# ---------------------------------------------------------------- 3. file/folder collisions


@pytest.mark.parametrize("use_locks", [True, False])
def test_a_key_whose_folder_would_be_another_keys_file(tmp_path: pathlib.Path, use_locks: bool) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False, digest_len=0, use_locks=use_locks)
    d["a"] = 1
    before = tree(tmp_path)
    for write in (
        lambda: d.__setitem__(("a.pkl", "x"), 2),
        lambda: d.__setitem__(("a.pkl", "x", "y"), 2),
        lambda: d.setdefault_if(("a.pkl", "x"), 2, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME),
        lambda: d.transform_item(("a.pkl", "x"), lambda v: 2),
    ):
        with pytest.raises(BackendError) as info:
            write()
        assert not isinstance(info.value, OSError)
        message = str(info.value)
        assert "a.pkl" in message and "digest_len" in message and "file" in message
    assert tree(tmp_path) == before and d["a"] == 1
    _assert_absent(d, ("a.pkl", "x"))
    _assert_absent(d, ("a.pkl", "x", "y"))
    assert sorted(d.keys()) == [("a",)]


@pytest.mark.parametrize("use_locks", [True, False])
def test_a_key_whose_file_would_be_another_keys_folder(tmp_path: pathlib.Path, use_locks: bool) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False, digest_len=0, use_locks=use_locks)
    d["b.pkl", "x"] = 2
    before = tree(tmp_path)
    _assert_absent(d, "b")
    assert sorted(d.keys()) == [("b.pkl", "x")] and len(d) == 1
    assert [k for k, _ in d.keys_and_timestamps()] == [("b.pkl", "x")]
    for write in (
        lambda: d.__setitem__("b", 1),
        lambda: d.setdefault("b", 1),
        lambda: d.setdefault_if("b", 1, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME),
        lambda: d.set_item_if("b", 1, ITEM_NOT_AVAILABLE, ANY_ETAG),
        lambda: d.transform_item("b", lambda v: 1),
    ):
        with pytest.raises(BackendError) as info:
            write()
        assert not isinstance(info.value, OSError)
        message = str(info.value)
        assert "b.pkl" in message and "digest_len" in message and "folder" in message
    assert tree(tmp_path) == before
    assert d["b.pkl", "x"] == 2


def test_a_foreign_folder_where_a_file_should_be_is_not_an_item(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["k"] = 0
    name = d._layout.location(("k",))[0]
    (tmp_path / name).unlink()
    (tmp_path / name).mkdir()
    _assert_absent(d, "k")
    assert list(d) == []
    with pytest.raises(BackendError, match="folder"):
        d["k"] = 1
    assert (tmp_path / name).is_dir()


def test_a_symlinked_folder_named_like_an_item_is_not_listed(tmp_path: pathlib.Path) -> None:
    store = tmp_path / "store"
    d: FileDirDict[int] = FileDirDict(base_dir=store, durable=False, digest_len=0)
    (tmp_path / "elsewhere").mkdir()
    (store / "c.pkl").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    d["real"] = 1
    assert sorted(d.keys()) == [("real",)] and len(d) == 1
    assert [k for k, _ in d.keys_and_timestamps()] == [("real",)]
    assert "c" not in d and d.get("c") is None
    with pytest.raises(KeyError):
        d["c"]


# ---------------------------------------------------------------- 4. fsync of new folders


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch, base: pathlib.Path) -> list[str]:
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to name the fsynced descriptors")
    log: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: Any) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        log.append(os.path.relpath(path, base))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return log


@pytest.mark.parametrize("use_locks", [True, False])
def test_durable_write_fsyncs_the_parents_of_the_folders_it_made(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, use_locks: bool
) -> None:
    log = _record_fsyncs(monkeypatch, tmp_path)
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path / "new" / "store", use_locks=use_locks)
    assert set(log) == {".", "new"}  # "new" and "store" were made by the constructor
    a, b, _ = d._layout.location(("a", "b", "c"))
    log.clear()
    d["a", "b", "c"] = 1
    folders = [p for p in log if not p.endswith(".tmp#")]
    assert sorted(folders) == sorted(["new/store", f"new/store/{a}", f"new/store/{a}/{b}"])
    assert sum(p.endswith(".tmp#") for p in log) == 1
    log.clear()
    d["a", "b", "d"] = 2  # no folder made: no parent synced
    assert [p for p in log if not p.endswith(".tmp#")] == [f"new/store/{a}/{b}"]


def test_not_durable_fsyncs_nothing_even_when_making_folders(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _record_fsyncs(monkeypatch, tmp_path)
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path / "new", durable=False)
    d["a", "b", "c"] = 1
    assert log == []


# ---------------------------------------------------------------- 5. stale temporary files


def _plant(path: pathlib.Path, age: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"partial")
    t = time.time() - age
    os.utime(path, (t, t))


def test_remove_stale_temp_files(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["a"] = 1
    d["s", "k"] = 2
    a = d._layout.location(("a",))[0]
    s, k = d._layout.location(("s", "k"))
    x, y = d._layout.location(("x", "y"))
    _plant(tmp_path / f".{a}.host.12.0123abcd0.tmp#", 7200)
    _plant(tmp_path / s / f".{k}.host.12.0123abcd1.tmp#", 7200)
    _plant(tmp_path / x / f".{y}.other-host.99.fedcba982.tmp#", 4000)  # its folder then empty
    _plant(tmp_path / f".{a}.host.12.0123abcd3.tmp#", 10)  # a writer at work: kept
    _plant(tmp_path / "notes.tmp", 7200)  # foreign files: kept
    _plant(tmp_path / ".hidden", 7200)
    assert d.remove_stale_temp_files() == 3
    assert tree(tmp_path) == sorted(
        [f".{a}.host.12.0123abcd3.tmp#", ".hidden", a, "notes.tmp", f"{s}/", f"{s}/{k}"]
    )
    assert d.remove_stale_temp_files(older_than=0) == 1
    assert d.remove_stale_temp_files(older_than=0) == 0
    assert dict(d.items()) == {("a",): 1, ("s", "k"): 2}


def test_remove_stale_temp_files_of_a_subdict_stays_in_its_folder(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["s", "k"] = 1
    s, k = d._layout.location(("s", "k"))
    _plant(tmp_path / s / f".{k}.h.1.00000000f.tmp#", 7200)
    _plant(tmp_path / f".{s}.h.1.00000000e.tmp#", 7200)
    sub = d.get_subdict("s")
    assert isinstance(sub, FileDirDict)
    assert sub.remove_stale_temp_files() == 1
    assert (tmp_path / f".{s}.h.1.00000000e.tmp#").exists()
    assert sub["k"] == 1


def test_remove_stale_temp_files_checks_its_argument(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    for bad in (-1, float("nan")):
        with pytest.raises(ValueError):
            d.remove_stale_temp_files(older_than=bad)
    for wrong in ("1", None, True):
        with pytest.raises(TypeError):
            d.remove_stale_temp_files(older_than=wrong)  # type: ignore[arg-type]
    assert d.remove_stale_temp_files(older_than=1) == 0


def test_a_killed_writers_temp_file_is_removed(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer dies between writing its temporary file and the rename.
    d: FileDirDict[bytes] = FileDirDict(base_dir=tmp_path, durable=False)

    class Killed(BaseException):
        pass

    def killed(*args: Any, **kwargs: Any) -> None:
        raise Killed

    import persidict.backends.files as files

    monkeypatch.setattr(files, "_unlink_quietly", lambda path, **kw: None)  # as if SIGKILLed: no cleanup
    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(Killed):
        d["p", "q"] = b"v"
    monkeypatch.undo()
    left = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(left) == 1 and left[0].name.endswith(".tmp#")
    assert len(d) == 0
    assert d.remove_stale_temp_files(older_than=0) == 1
    assert tree(tmp_path) == []
