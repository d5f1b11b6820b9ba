"""FileDirDict (and S3Dict's cache folder) under hostile files, links and coarse timestamps.

1. Items are exactly the regular files whose every name carries this dict's
   digest suffix and its format's extension: foreign files, other digest
   lengths, hidden folders and links are invisible and survive ``clear()``.
2. No link inside a store is ever followed: not to read, write or delete.
3. ETags change on every write even where the file system keeps timestamps to
   the second and reuses inodes (a loop-mounted ext4 image made with
   ``mkfs.ext4 -I 128``; skipped, saying so, only where it cannot be mounted).
"""

from __future__ import annotations

import base64
import hashlib
import multiprocessing
import os
import pathlib
import pickle
import shutil
import subprocess
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from persidict import BackendError, BatchError, FileDirDict
from persidict.backends import files as files_module
from persidict.backends.files import FileNameTooLongError, PathCollisionError, UnsafeNameError
from persidict.flags import ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE, NEVER_RETRIEVE, ETagValue

_CTX = multiprocessing.get_context("spawn")


def suffixed(component: str, n: int = 4) -> str:
    """``component`` with the published layout's digest suffix (lowercase base32 of md5, first n chars)."""
    digest = base64.b32encode(hashlib.md5(component.encode("utf-8")).digest()).decode("ascii").lower()
    return f"{component}_{digest[:n]}"


def snapshot(folder: pathlib.Path) -> dict[str, Any]:
    """Every entry under ``folder`` (links not followed): path -> bytes, link target or "<dir>"."""
    out: dict[str, Any] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = "<dir>"
        else:
            out[rel] = p.read_bytes()
    return out


# ---------------------------------------------------------------- 1. what is an item


@pytest.mark.parametrize("digest_len", [4, 8])
def test_foreign_files_and_other_digest_lengths_are_invisible_and_survive_clear(
    tmp_path: pathlib.Path, digest_len: int
) -> None:
    store = tmp_path / "store"
    d: FileDirDict[int] = FileDirDict(base_dir=store, digest_len=digest_len, durable=False)
    d["a"] = 1
    d["sub", "b"] = 2
    other = 8 if digest_len == 4 else 4
    sub = store / suffixed("sub", digest_len)
    foreign = {
        "notes.pkl": pickle.dumps("notes"),  # no suffix
        "a.pkl": pickle.dumps("a, unsuffixed"),  # the unsuffixed name of a stored key
        f"{suffixed('x', other)}.pkl": pickle.dumps("another digest_len"),
        f"{suffixed('sub', digest_len)}/notes.pkl": pickle.dumps("nested, no suffix"),
        f"plain/{suffixed('c', digest_len)}.pkl": pickle.dumps("in a folder without suffix"),
        f"{suffixed('y', other)}/{suffixed('c', other)}.pkl": pickle.dumps("folder of another length"),
    }
    for rel, data in foreign.items():
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(data)
    assert sub.is_dir()

    ours = [("a",), ("sub", "b")]
    assert len(d) == 2
    assert sorted(d.keys()) == ours and sorted(tuple(k) for k in d) == ours
    assert sorted(k for k, _ in d.keys_and_timestamps()) == ours
    assert sorted(d.values()) == [1, 2] and sorted(d.items()) == [(("a",), 1), (("sub", "b"), 2)]
    assert {d.random_key() for _ in range(40)} == set(ours)
    assert sorted(d.newest_keys()) == sorted(d.oldest_keys()) == ours
    assert sorted(d.newest_values()) == sorted(d.oldest_values()) == [1, 2]
    assert list(d.subdicts()) == ["sub"] and list(d.get_subdict("sub").keys()) == [("b",)]
    assert len(d.get_subdict("plain")) == 0 and len(d.get_subdict("y")) == 0
    assert d.get("notes", "absent") == "absent" and d.get_many(["notes", "x", ("y", "c")]) == {}
    assert "notes" not in d and "x" not in d and ("plain", "c") not in d and ("y", "c") not in d
    with pytest.raises(KeyError):
        d["notes"]
    d["notes"] = 3  # the foreign notes.pkl is no second copy of this key
    assert len(d) == 3 and sorted(d.keys()) == [("a",), ("notes",), ("sub", "b")]

    d.clear()
    assert len(d) == 0 and list(d.keys()) == []
    for rel, data in foreign.items():
        assert (store / rel).read_bytes() == data, rel


@pytest.mark.parametrize("digest_len", [0, 4, 8])
def test_foreign_names_the_file_system_cannot_decode_are_invisible(
    tmp_path: pathlib.Path, digest_len: int
) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, digest_len=digest_len, durable=False)
    d["a"] = 1
    d["s", "b"] = 2
    root = os.fsencode(tmp_path)
    foreign = [b"x_\xff\xfe\xfdq.pkl", b"\xff_abcd.pkl", b"\xff_abcd/b_abcd.pkl", b"\xff.pkl"]
    for rel in foreign:
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"foreign")
    assert len(d) == 2 and sorted(d.keys()) == [("a",), ("s", "b")]
    d.clear()
    assert len(d) == 0
    for rel in foreign:
        with open(os.path.join(root, rel), "rb") as f:
            assert f.read() == b"foreign"


@pytest.mark.parametrize("digest_len", [0, 4])
def test_hidden_files_and_folders_are_never_items_nor_cleared(
    tmp_path: pathlib.Path, digest_len: int
) -> None:
    store = tmp_path / "store"
    d: FileDirDict[int] = FileDirDict(base_dir=store, digest_len=digest_len, durable=False)
    d["a"] = 1
    name = (lambda c: suffixed(c, digest_len)) if digest_len else (lambda c: c)
    hidden = {
        ".venv/lib/site.pkl": b"\x80\x04K\x01.",
        f".venv/{name('a')}.pkl": pickle.dumps("looks like an item, in a hidden folder"),
        f".venv/{name('lib')}/{name('x')}.pkl": pickle.dumps("deeper"),
        ".git/HEAD": b"ref: refs/heads/main\n",
        ".hidden.pkl": pickle.dumps("hidden file"),
    }
    for rel, data in hidden.items():
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(data)
    assert len(d) == 1 and list(d.keys()) == [("a",)]
    assert ".hidden" not in d and (".venv", "a") not in d
    with pytest.raises(KeyError):
        d[".venv", "a"]
    d.clear()
    assert len(d) == 0
    for rel, data in hidden.items():
        assert (store / rel).read_bytes() == data, rel
    assert d.remove_stale_temp_files(older_than=0) == 0


def test_with_digest_len_0_keys_starting_with_a_dot_are_refused(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, digest_len=0, durable=False)
    for key in [".x", (".cfg", "a"), ("a", ".b")]:
        with pytest.raises(ValueError, match=r"Key NonEmptySafeStrTuple\(.*starts with '\.'"):
            d[key] = 1
        with pytest.raises(ValueError, match="digest_len"):
            d.setdefault(key, 1)
        assert key not in d
    (tmp_path / ".x.pkl").write_bytes(pickle.dumps(5))  # a hidden file of someone else
    assert ".x" not in d and len(d) == 0
    with pytest.raises(KeyError):
        d[".x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".x.pkl"]


def test_an_update_with_a_refused_key_writes_nothing(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, digest_len=0, durable=False)
    with pytest.raises(ValueError, match="starts with"):
        d.update({"a": 1, ".hidden": 2, "b": 3})
    with pytest.raises(ValueError, match="NAME_MAX"):
        d.update({"a": 1, "x" * 253: 2, "b": 3})
    assert len(d) == 0 and list(tmp_path.iterdir()) == []


def test_with_a_suffix_keys_starting_with_a_dot_are_items(tmp_path: pathlib.Path) -> None:
    # The suffix proves the name ours: the key is stored, listed and read like any other.
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d[".x"] = 1
    d[".cfg", "a"] = 2
    assert (tmp_path / f"{suffixed('.x')}.pkl").is_file()
    assert sorted(d.keys()) == [(".cfg", "a"), (".x",)] and d[".x"] == 1 and d[".cfg", "a"] == 2
    d.clear()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("param", "bad"), [("base_dir", ""), ("base_dir", None), ("dir_name", "")])
def test_an_empty_or_missing_base_dir_is_refused_naming_the_parameter(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, bad: Any, param: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=param):
        FileDirDict(**{param: bad})
    assert list(tmp_path.iterdir()) == []


def test_base_dir_may_be_a_link_resolved_once_when_opened(tmp_path: pathlib.Path) -> None:
    real, elsewhere = tmp_path / "real", tmp_path / "elsewhere"
    real.mkdir()
    elsewhere.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    d: FileDirDict[int] = FileDirDict(base_dir=link, durable=False)
    assert d.base_dir == str(real) and d.get_params()["base_dir"] == str(real)
    d["a"] = 1
    d["s", "b"] = 2
    assert (real / f"{suffixed('a')}.pkl").is_file() and (
        real / suffixed("s") / f"{suffixed('b')}.pkl"
    ).is_file()
    link.unlink()
    link.symlink_to(elsewhere, target_is_directory=True)  # retargeted after the dict was opened
    d["c"] = 3
    assert sorted(d.keys()) == [("a",), ("c",), ("s", "b")]
    assert list(elsewhere.iterdir()) == []
    again: FileDirDict[int] = FileDirDict(**d.get_params())
    assert dict(again.items()) == {("a",): 1, ("c",): 3, ("s", "b"): 2}


# ---------------------------------------------------------------- 2. links are never followed


@pytest.fixture(params=["openat2", "walk"])
def planted(
    tmp_path: pathlib.Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> dict[str, pathlib.Path]:
    """A store with links planted inside, pointing outside: a file link and a folder link named like ours.

    Deep locations are opened with openat2 where Linux has it, else by a
    walk of descriptors: both ways are tried.
    """
    if request.param == "walk":
        monkeypatch.setattr(files_module, "_open_no_links", None)
    elif files_module._open_no_links is None:
        pytest.skip("no openat2 here: deep locations are opened by a walk of descriptors")
    store, outside = tmp_path / "store", tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.pkl").write_bytes(pickle.dumps("outside file"))
    (outside / "folder" / f"{suffixed('x')}.pkl").write_bytes(pickle.dumps("outside, in a folder"))
    store.mkdir()
    (store / f"{suffixed('k')}.pkl").symlink_to(outside / "secret.pkl")
    (store / suffixed("s")).symlink_to(outside / "folder", target_is_directory=True)
    (store / f"{suffixed('d')}.pkl").symlink_to(outside / "folder", target_is_directory=True)
    return {"store": store, "outside": outside}


WRITE_MODES = [
    pytest.param(False, True, id="locks"),
    pytest.param(True, True, id="durable-locks"),
    pytest.param(False, False, id="no-locks"),
]


@pytest.mark.parametrize(("durable", "use_locks"), WRITE_MODES)
def test_links_planted_in_the_store_are_not_read_listed_or_cleared(
    planted: dict[str, pathlib.Path], durable: bool, use_locks: bool
) -> None:
    store, outside = planted["store"], planted["outside"]
    before = snapshot(outside), snapshot(store)
    d: FileDirDict[Any] = FileDirDict(base_dir=store, durable=durable, use_locks=use_locks)
    d["real"] = 1
    for key in ["k", "d", ("s", "x")]:
        assert key not in d
        with pytest.raises(KeyError):
            d[key]
        assert d.get(key, "absent") == "absent"
        with pytest.raises(KeyError):
            d.etag(key)
        with pytest.raises(KeyError):
            d.timestamp(key)
    assert list(d.keys()) == [("real",)] and len(d) == 1
    assert len(d.get_subdict("s")) == 0 and list(d.get_subdict("s").items()) == []
    d.clear()
    assert len(d) == 0
    assert (snapshot(outside), snapshot(store)) == before


def test_links_to_items_of_the_same_store_are_no_items(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["real"] = 1
    d["sub", "b"] = 2
    (tmp_path / f"{suffixed('alias')}.pkl").symlink_to(tmp_path / f"{suffixed('real')}.pkl")
    (tmp_path / suffixed("other")).symlink_to(tmp_path / suffixed("sub"), target_is_directory=True)
    ours = [("real",), ("sub", "b")]
    assert sorted(d.keys()) == ours and len(d) == 2 and list(d.subdicts()) == ["sub"]
    assert "alias" not in d and ("other", "b") not in d and len(d.get_subdict("other")) == 0
    assert d.get_many(["alias", ("other", "b")]) == {}
    assert d.discard_many(["alias", ("other", "b")]) == 0
    d.clear()
    assert len(d) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{suffixed('alias')}.pkl", suffixed("other")]
    assert all((tmp_path / p).is_symlink() for p in os.listdir(tmp_path))


@pytest.mark.parametrize(("durable", "use_locks"), WRITE_MODES)
def test_deletes_never_go_through_links(
    planted: dict[str, pathlib.Path], durable: bool, use_locks: bool
) -> None:
    store, outside = planted["store"], planted["outside"]
    before = snapshot(outside), snapshot(store)
    d: FileDirDict[Any] = FileDirDict(base_dir=store, durable=durable, use_locks=use_locks)
    for key in ["k", "d", ("s", "x")]:
        with pytest.raises(KeyError):
            del d[key]
        assert d.discard(key) is False
        assert not d.discard_if(key, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME).value_was_mutated
    with pytest.raises(KeyError):
        del d.get_subdict("s")["x"]
    assert (snapshot(outside), snapshot(store)) == before


@pytest.mark.parametrize(("durable", "use_locks"), WRITE_MODES)
def test_writes_never_go_through_links(
    planted: dict[str, pathlib.Path], durable: bool, use_locks: bool
) -> None:
    store, outside = planted["store"], planted["outside"]
    before = snapshot(outside)
    d: FileDirDict[Any] = FileDirDict(base_dir=store, durable=durable, use_locks=use_locks)
    # A link named like an item is replaced by the item itself, never written through.
    d["k"] = "new"
    assert d["k"] == "new" and not (store / f"{suffixed('k')}.pkl").is_symlink()
    # A link where a key's folder should be is never entered: the write is refused.
    writes: list[Callable[[], object]] = [
        lambda: d.__setitem__(("s", "x"), "new"),
        lambda: d.get_subdict("s").__setitem__("x", "new"),
        lambda: d.setdefault_if(("s", "y"), "new", ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME),
        lambda: d.transform_item(("s", "x"), lambda v: "new"),
    ]
    for write in writes:
        with pytest.raises(BackendError, match="link"):
            write()
    assert snapshot(outside) == before
    assert (store / suffixed("s")).is_symlink()


@pytest.mark.parametrize(("durable", "use_locks"), WRITE_MODES)
def test_conditional_writes_over_a_link_named_like_an_item_create_the_item(
    planted: dict[str, pathlib.Path], durable: bool, use_locks: bool
) -> None:
    store, outside = planted["store"], planted["outside"]
    before = snapshot(outside)
    d: FileDirDict[Any] = FileDirDict(base_dir=store, durable=durable, use_locks=use_locks)
    r = d.setdefault_if("k", "mine", ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)  # the link is no item
    assert r.value_was_mutated and d["k"] == "mine"
    (store / f"{suffixed('k')}.pkl").unlink()
    (store / f"{suffixed('k')}.pkl").symlink_to(outside / "secret.pkl")
    assert d.transform_item("k", lambda v: [v]).new_value == [ITEM_NOT_AVAILABLE]
    assert snapshot(outside) == before


def test_a_fifo_named_like_an_item_is_no_item_and_does_not_block(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    os.mkfifo(tmp_path / f"{suffixed('f')}.pkl")
    got: list[Any] = []

    def read() -> None:
        got.append("f" in d)
        got.append(d.get("f", "absent"))
        got.append(len(d))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive(), "reading a FIFO named like an item blocked"
    assert got == [False, "absent", 0]


def test_s3dict_cache_folder_links_are_not_followed(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import mock_aws

    from persidict.backends.cached import pack
    from persidict.backends.s3 import forget_clients
    from persidict.s3_dict import S3Dict

    from .s3_helpers import FAKE_ENV, UNSET_ENV

    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    cache, outside = tmp_path / "cache", tmp_path / "outside"
    with mock_aws():
        forget_clients()
        try:
            import boto3

            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="links-bucket")
            d: S3Dict[Any] = S3Dict(bucket_name="links-bucket", base_dir=str(cache))
            d["k"] = "v"
            d["sub", "k"] = "w"
            bucket = cache / "links-bucket"
            file_entry = bucket / f"{suffixed('k', 8)}.pkl"
            folder = bucket / suffixed("sub", 8)
            assert file_entry.is_file() and (folder / f"{suffixed('k', 8)}.pkl").is_file()
            # Outside: entries that would be served (right ETag, wrong bytes) if a link were followed.
            (outside / "folder").mkdir(parents=True)
            (outside / "file.pkl").write_bytes(pack(d.etag("k"), pickle.dumps("evil")))
            (outside / "folder" / f"{suffixed('k', 8)}.pkl").write_bytes(
                pack(d.etag(("sub", "k")), pickle.dumps("evil"))
            )
            file_entry.unlink()
            file_entry.symlink_to(outside / "file.pkl")
            shutil.rmtree(folder)
            folder.symlink_to(outside / "folder", target_is_directory=True)
            before = snapshot(outside)
            assert d["k"] == "v" and d["sub", "k"] == "w"
            d["sub", "k"] = "w2"
            assert d["sub", "k"] == "w2"
            file_entry.unlink(missing_ok=True)
            file_entry.symlink_to(outside / "file.pkl")
            d["k"] = "v2"
            assert d["k"] == "v2"
            del d["sub", "k"]
            del d["k"]
            assert snapshot(outside) == before and folder.is_symlink()
            # The bucket's own folder replaced by a link: not followed either.
            d["k"] = "v3"
            shutil.rmtree(bucket)
            (outside / "bucket").mkdir()
            (outside / "bucket" / f"{suffixed('k', 8)}.pkl").write_bytes(
                pack(d.etag("k"), pickle.dumps("evil"))
            )
            bucket.symlink_to(outside / "bucket", target_is_directory=True)
            before = snapshot(outside)
            assert d["k"] == "v3"
            d["k"] = "v4"
            assert d["k"] == "v4"
            assert snapshot(outside) == before
        finally:
            forget_clients()


# ---------------------------------------------------------------- batches (issue 14 item 2)


def test_batches_run_on_a_small_pool_of_threads(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    assert d._default_workers() == files_module.BATCH_WORKERS == 4
    barrier = threading.Barrier(4, timeout=10)  # passed only if 4 items run at once
    for name in ("read", "write", "delete"):
        real = getattr(files_module.FileBackend, name)

        def meeting(self: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            barrier.wait()
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(files_module.FileBackend, name, meeting)
    keys = [f"k{i}" for i in range(8)] + [("s", f"k{i}") for i in range(8)]
    d.update({k: i for i, k in enumerate(keys)})
    assert d.get_many(keys) == {files_module_key(k): i for i, k in enumerate(keys)}
    assert d.discard_many(keys) == 16
    monkeypatch.undo()
    assert len(d) == 0


def files_module_key(k: str | tuple[str, ...]) -> tuple[str, ...]:
    """A key as get_many returns it."""
    return (k,) if isinstance(k, str) else k


def test_keys_that_cannot_be_stored_are_reported_each_and_nothing_is_written(tmp_path: pathlib.Path) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, digest_len=0, durable=False)
    too_long, hidden = "x" * 253, ".hidden"
    with pytest.raises(BatchError) as e:
        d.set_many({"a": 1, too_long: 2, "b": 3, hidden: 4, ("c", too_long): 5})
    assert e.value.keys == [(too_long,), (hidden,), ("c", too_long)]
    kinds = [type(x) for x in e.value.exceptions]
    assert kinds == [FileNameTooLongError, UnsafeNameError, FileNameTooLongError]
    assert all(repr(k) in str(x) for k, x in zip(e.value.keys, e.value.exceptions, strict=True))
    with pytest.raises(BatchError):
        d.update({"a": 1, too_long: 2, hidden: 4})
    with pytest.raises(FileNameTooLongError, match="NAME_MAX"):  # one such key: its own exception
        d.update({"a": 1, too_long: 2})
    assert list(tmp_path.iterdir()) == [] and len(d) == 0


@pytest.mark.parametrize("use_locks", [True, False])
def test_keys_blocked_on_disk_are_reported_each_and_the_others_written(
    tmp_path: pathlib.Path, use_locks: bool
) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, digest_len=0, durable=False, use_locks=use_locks)
    d["a"] = 0  # the file a.pkl: no folder "a.pkl" can hold keys
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "x.pkl").mkdir()  # a folder where the item ("f", "x") should be
    with pytest.raises(BatchError) as e:
        items = {("a.pkl", "x"): 1, "b": 2, ("f", "x"): 3, ("a.pkl", "y"): 4, ("f", "y"): 5}
        d.set_many(items, max_workers=2)
    assert e.value.keys == [("a.pkl", "x"), ("f", "x"), ("a.pkl", "y")]
    assert all(isinstance(x, PathCollisionError) for x in e.value.exceptions)
    assert dict(d.items()) == {("a",): 0, ("b",): 2, ("f", "y"): 5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pkl", "b.pkl", "f"]


# ---------------------------------------------------------------- 3. coarse timestamps


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)


def _mount_coarse_image(image: pathlib.Path, mount: pathlib.Path) -> str | None:
    """Make and loop-mount an ext4 image with 128-byte inodes at ``mount``; why it cannot be, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "mounting needs root"
    missing = [tool for tool in ("mkfs.ext4", "mount", "umount") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    made = _run("mkfs.ext4", "-q", "-F", "-I", "128", str(image))
    if made.returncode != 0:
        return f"mkfs.ext4 failed: {(made.stderr or made.stdout).strip()}"
    mounted = _run("mount", "-o", "loop", str(image), str(mount))
    if mounted.returncode != 0:
        return f"mount -o loop failed (no loop device?): {(mounted.stderr or mounted.stdout).strip()}"
    return None


@pytest.fixture(scope="module")
def coarse_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """A folder on a loop-mounted ext4 image with 128-byte inodes: timestamps to the second.

    Always unmounted and removed afterwards. Skipped, with the reason printed
    as a warning, only where the image cannot be made or mounted.
    """
    work = tmp_path_factory.mktemp("coarse")
    image, mount = work / "ext4-128.img", work / "mnt"
    mount.mkdir()
    try:
        why = _mount_coarse_image(image, mount)
        if why is not None:
            reason = (
                f"cannot mount an ext4 image made with mkfs.ext4 -I 128 here ({why}): "
                "the tests on 1-second timestamps are skipped"
            )
            warnings.warn(reason, pytest.PytestWarning, stacklevel=1)
            pytest.skip(reason)
        try:
            probe = mount / "probe"
            probe.write_bytes(b"x")
            os.utime(probe, ns=(1_700_000_000_123_456_789,) * 2)
            kept = os.stat(probe).st_mtime_ns
            assert kept == 1_700_000_000_000_000_000, "the image keeps sub-second mtimes"
            probe.unlink()
            yield mount
        finally:
            if _run("umount", str(mount)).returncode != 0:
                _run("umount", "-l", str(mount))
    finally:
        image.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)


def _same_second_inode_reuse(d: FileDirDict[bytes], key: str) -> list[tuple[tuple[int, int, int], str]]:
    """Same-size rewrites of ``key`` until one lands on an earlier one's inode within the same second.

    Returns [(mtime_ns, size, inode), etag] per write; the last one shares its triple with an earlier one.
    """
    path = os.path.join(d.base_dir, f"{suffixed(key)}.pkl")
    for _ in range(20):
        seen: list[tuple[tuple[int, int, int], str]] = []
        for i in range(8):
            d[key] = b"%04d" % i
            st = os.stat(path)
            triple = (st.st_mtime_ns, st.st_size, st.st_ino)
            seen.append((triple, d.etag(key)))
            if triple in [t for t, _ in seen[:-1]]:
                return seen
    raise AssertionError("no inode was reused within one second")


@pytest.mark.parametrize("durable", [False, True])
def test_etags_of_quick_same_size_rewrites_differ_on_second_timestamps(
    coarse_dir: pathlib.Path, durable: bool
) -> None:
    d: FileDirDict[bytes] = FileDirDict(base_dir=coarse_dir / f"etags-{durable}", durable=durable)
    seen = _same_second_inode_reuse(d, "k")
    etags = [e for _, e in seen]
    assert len(set(etags)) == len(etags), seen  # the old mtime:size:inode repeated here
    for stale in etags[:-1]:
        assert not d.set_item_if("k", b"late", ETagValue(stale), ETAG_IS_THE_SAME).condition_was_satisfied
    assert d["k"] == b"%04d" % (len(seen) - 1)
    assert os.getxattr(os.path.join(d.base_dir, f"{suffixed('k')}.pkl"), "user.persidict.etag")
    r = d.get_with_etag("k")
    assert r.actual_etag == etags[-1] == d.etag("k")


def test_etags_without_extended_attributes_fall_back_to_a_digest(
    coarse_dir: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files_module, "_getxattr", None)
    monkeypatch.setattr(files_module, "_setxattr", None)
    d: FileDirDict[bytes] = FileDirDict(base_dir=coarse_dir / "digest", durable=False)
    seen = _same_second_inode_reuse(d, "k")
    etags = [e for _, e in seen]
    assert len(set(etags)) == len(etags) and all(":#" in e for e in etags), seen
    assert not d.set_item_if("k", b"late", ETagValue(etags[0]), ETAG_IS_THE_SAME).condition_was_satisfied


def test_fine_timestamps_cost_no_token(tmp_path: pathlib.Path) -> None:
    # Where mtimes keep their nanoseconds (this test folder), ETags stay mtime:size:inode, no xattr written.
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["k"] = 1
    path = tmp_path / f"{suffixed('k')}.pkl"
    st = os.stat(path)
    if st.st_mtime_ns % 1_000_000 == 0:
        pytest.skip("this test folder keeps no sub-millisecond timestamps")
    assert d._files.coarse_timestamps is False
    assert d.etag("k") == f"{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"
    assert "user.persidict.etag" not in os.listxattr(path)


def test_fine_timestamps_etags_cost_no_read_of_the_value(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    d["k"] = 1
    d["s", "k"] = 2
    if d._files.coarse_timestamps:
        pytest.skip("this test folder keeps no sub-millisecond timestamps")

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("read the value (or its extended attributes) for an ETag")

    for name in ("_read_exactly", "_pread_all", "_getxattr", "_setxattr"):
        monkeypatch.setattr(files_module, name, forbidden)
    for key in ["k", ("s", "k")]:
        etag = d.etag(key)
        assert d.timestamp(key) > 0 and key in d
        r = d.set_item_if(key, 5, ETagValue(etag), ETAG_IS_THE_SAME, retrieve_value=NEVER_RETRIEVE)
        assert r.condition_was_satisfied
        r = d.set_item_if(key, 6, ETagValue(etag), ETAG_IS_THE_SAME, retrieve_value=NEVER_RETRIEVE)
        assert not r.condition_was_satisfied
        assert d.discard_if(key, d.etag(key), ETAG_IS_THE_SAME).value_was_mutated


@pytest.mark.parametrize(
    ("kept_ns", "coarse"),
    [
        (1, False),  # ext4 with 256-byte inodes, xfs, btrfs, tmpfs, APFS
        (100, False),  # NTFS
        (1_000, False),  # file systems and NFS servers keeping microseconds
        (1_000_000, True),  # milliseconds
        (10_000_000, True),  # exFAT
        (1_000_000_000, True),  # ext3, ext4 with 128-byte inodes, HFS+, many NFS exports
        (2_000_000_000, True),  # FAT
    ],
)
def test_the_stamp_tells_coarse_file_systems_from_fine_ones(kept_ns: int, coarse: bool) -> None:
    # Whatever the clock says, the stamp a write puts on its file survives any precision finer than a
    # millisecond, and becomes a whole millisecond on any coarser one: one fstat tells them apart.
    nows = [1_796_304_095_000_000_000 + d for d in (0, 1, 999, 1_000, 999_000, 999_999, 123_456_789)]
    for now in nows:
        stamped = files_module.stamp_time(now)
        assert 0 <= stamped - now < 2_000
        assert files_module.is_coarse(stamped - stamped % kept_ns) is coarse, (now, kept_ns)


def test_coarse_timestamps_are_detected_once_per_store(
    coarse_dir: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fine: FileDirDict[int] = FileDirDict(base_dir=tmp_path, durable=False)
    coarse: FileDirDict[int] = FileDirDict(base_dir=coarse_dir / "detect", durable=False)
    assert coarse._files.coarse_timestamps is None  # not known before the first write
    fstats: list[int] = []
    real_fstat = os.fstat

    def counting_fstat(fd: int) -> os.stat_result:
        fstats.append(fd)
        return real_fstat(fd)

    monkeypatch.setattr(os, "fstat", counting_fstat)
    for i in range(5):
        coarse["k"] = i
        coarse.get_subdict("s")["k"] = i  # a subdict shares its store's detection
    assert len(fstats) == 1  # the first write's, and no other: put() gathers no stat
    monkeypatch.undo()
    fine["k"] = 0
    assert coarse._files.coarse_timestamps is True and coarse.get_subdict("s")._files.coarse_timestamps
    if os.stat(tmp_path / f"{suffixed('k')}.pkl").st_mtime_ns % 1_000_000:
        assert fine._files.coarse_timestamps is False
    path = coarse_dir / "detect" / suffixed("s") / f"{suffixed('k')}.pkl"
    assert len(os.getxattr(path, "user.persidict.etag")) == 16


def _increment(params: dict[str, Any], start: Any, n: int) -> None:
    d: FileDirDict[int] = FileDirDict(**params)
    start.wait()
    for _ in range(n):
        d.transform_item("counter", lambda v: v + 1, n_retries=None)


def _increments_lose_nothing(folder: pathlib.Path, n_procs: int, n: int, durable: bool) -> None:
    d: FileDirDict[int] = FileDirDict(base_dir=folder, durable=durable)
    d["counter"] = 0
    start = _CTX.Event()
    procs = [_CTX.Process(target=_increment, args=(d.get_params(), start, n)) for _ in range(n_procs)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * n_procs
    assert d["counter"] == n_procs * n


def test_4_processes_200_increments_each_lose_nothing_on_second_timestamps(coarse_dir: pathlib.Path) -> None:
    # Without unique ETags there, a stale compare-and-swap succeeds: about 1 in 10 increments was lost.
    _increments_lose_nothing(coarse_dir / "increments", 4, 200, durable=False)


def test_durable_increments_lose_nothing_on_second_timestamps(coarse_dir: pathlib.Path) -> None:
    _increments_lose_nothing(coarse_dir / "increments-durable-small", 2, 30, durable=True)


@pytest.mark.slow
def test_4_processes_200_durable_increments_each_lose_nothing_on_second_timestamps(
    coarse_dir: pathlib.Path,
) -> None:
    _increments_lose_nothing(coarse_dir / "increments-durable", 4, 200, durable=True)


# Names dense in what makes a name unsafe: the unsafe names themselves, and text of their characters.
_NAMES = st.one_of(
    st.sampled_from(["", ".", "..", ".a", "a.", "a/b", "/", "a\0", "a", "é_b.pkl"]),
    st.text(st.sampled_from(["a", ".", "/", "\0", "_", "é"]), max_size=4),
)


@settings(max_examples=400, deadline=None)
@given(loc=st.lists(_NAMES, max_size=4).map(tuple), dot_names=st.booleans())
def test_a_reads_quick_name_check_refuses_exactly_the_unsafe_names(
    loc: tuple[str, ...], dot_names: bool
) -> None:
    # Reads look a location up with _relative's few string scans; writes refuse it by
    # _unsafe_name's per-name checks. Both must draw the same line.
    backend = files_module.FileBackend("/nonexistent-base", dot_names=dot_names)
    refused = not loc or backend._unsafe_name(loc) is not None
    assert (backend._relative(loc) is None) == refused
    if not refused:
        assert backend._base_head + (backend._relative(loc) or "") == backend.path(loc)
