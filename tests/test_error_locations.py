"""A CorruptValueError names where the bad bytes are: a real file path or object URL."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from persidict import ANY_ETAG, ITEM_NOT_AVAILABLE, FileDirDict, LocalDict, PersiDict
from persidict.backends.memory import MemoryBackend
from persidict.backends.s3 import forget_clients
from persidict.errors import CorruptValueError
from persidict.s3_dict import BasicS3Dict, S3Dict

from .s3_helpers import FAKE_ENV, UNSET_ENV

READS: dict[str, Callable[[PersiDict[Any]], object]] = {
    "getitem": lambda d: d["a"],
    "get_item_if": lambda d: d.get_item_if("a", ITEM_NOT_AVAILABLE, ANY_ETAG),
    "transform_item": lambda d: d.transform_item("a", lambda v: 1),
    "pop": lambda d: d.pop("a"),
}


def _named_place(e: CorruptValueError) -> str:
    m = re.search(r"stored at (.+?) \(\d+ bytes", str(e))
    assert m is not None, str(e)
    return m.group(1)


@pytest.mark.parametrize("read", list(READS))
def test_file_dir_dict_names_the_existing_file(read: str, tmp_path: Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=str(tmp_path / "d"))
    d["a"] = 1
    (path,) = glob.glob(str(tmp_path / "d" / "a_*.pkl"))
    Path(path).write_bytes(b"\x80\x04garbage")
    with pytest.raises(CorruptValueError) as e:
        READS[read](d)
    named = _named_place(e.value)
    assert named == path and os.path.isfile(named)


def test_nested_keys_name_the_file_in_its_folder(tmp_path: Path) -> None:
    d: FileDirDict[Any] = FileDirDict(base_dir=str(tmp_path / "d"), serialization_format="json")
    d["x", "a"] = 1
    (path,) = glob.glob(str(tmp_path / "d" / "x_*" / "a_*.json"))
    Path(path).write_bytes(b"{not json")
    sub = d.get_subdict("x")
    for read in READS.values():
        with pytest.raises(CorruptValueError) as e:
            read(sub)
        assert _named_place(e.value) == path


def test_memory_store_names_the_store_and_the_location() -> None:
    # A LocalDict never decodes (no CorruptValueError): a stored value of the wrong class names its place.
    backend = MemoryBackend()
    LocalDict(backend=backend)["a"] = "text"
    d: LocalDict[int] = LocalDict(backend=backend, base_class_for_values=int)
    ((loc, _),) = list(backend.list_stats(()))
    with pytest.raises(TypeError) as e:
        d.get_item_if("a", ITEM_NOT_AVAILABLE, ANY_ETAG)
    place = f"{backend.describe()}/{'/'.join(loc)}"
    assert f"at {place} is a str" in str(e.value) and ":" not in place


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Fake credentials and moto in-process; a raw client for checks."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        forget_clients()
        yield boto3.client("s3", region_name="us-east-1")
        forget_clients()


@pytest.mark.parametrize("cached", [False, True])
def test_s3_names_the_object_url(cached: bool, aws: Any, tmp_path: Path) -> None:
    d: BasicS3Dict[Any]
    if cached:
        d = S3Dict(bucket_name="test-bucket", root_prefix="p/q", base_dir=str(tmp_path / "cache"))
    else:
        d = BasicS3Dict(bucket_name="test-bucket", root_prefix="p/q")
    d["x", "a"] = 1
    aws.put_object(Bucket="test-bucket", Key="p/q/x/a.pkl", Body=b"\x80\x04garbage")
    for read in READS.values():
        with pytest.raises(CorruptValueError) as e:
            read(d.get_subdict("x"))
        named = _named_place(e.value)
        assert named.startswith("s3://test-bucket/p/q/x/a.pkl at http"), named
        assert ("(cached in " in named) is cached
    assert aws.get_object(Bucket="test-bucket", Key="p/q/x/a.pkl")["Body"].read() == b"\x80\x04garbage"


def test_where_of_each_backend(tmp_path: Path) -> None:
    from persidict.backends.files import FileBackend

    files = FileBackend(str(tmp_path))
    path = os.path.join(str(tmp_path), "a", "b.pkl")
    assert files.where(("a", "b.pkl")) == path == files.path(("a", "b.pkl"))
    mem = MemoryBackend()
    assert mem.where(("b.pkl",)) == f"memory@{id(mem):x}/b.pkl"
