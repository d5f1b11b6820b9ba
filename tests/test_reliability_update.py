"""update() is all-or-nothing for bad input (issue 13, item 6): every value is serialised before the
first write, on every store and wrapper, so one value that cannot be stored changes nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from persidict import DELETE_CURRENT, PersiDict
from persidict.backends.s3 import forget_clients
from tests.compat_stores import APPEND_ONLY_KINDS, MUTABLE_KINDS, S3_KINDS, make_store


@pytest.fixture
def s3() -> Iterator[None]:
    """A fresh moto S3 (in process) for the S3 kinds."""
    with mock_aws():
        forget_clients()
        yield
        forget_clients()


@pytest.fixture(params=MUTABLE_KINDS + APPEND_ONLY_KINDS)
def d(request: pytest.FixtureRequest, tmp_path: Path) -> PersiDict[Any]:
    """A store or wrapper of each kind holding {"z": 0}."""
    if request.param in S3_KINDS:
        request.getfixturevalue("s3")
    store = make_store(request.param, tmp_path)
    store["z"] = 0
    return store


def _snapshot(d: PersiDict[Any]) -> dict[tuple[str, ...], tuple[Any, str]]:
    return {tuple(k): (v, d.etag(k)) for k, v in d.items()}


def test_a_value_that_cannot_be_serialised_midway_writes_nothing(d: PersiDict[Any]) -> None:
    before = _snapshot(d)
    unstorable = threading.Lock()  # neither pickled nor deep-copied
    with pytest.raises((TypeError, ValueError)) as e:
        d.update({"a": 1, "b": unstorable, "c": 3})
    assert "'b'" in str(e.value)  # the error names the key
    assert _snapshot(d) == before
    with pytest.raises((TypeError, ValueError)):
        d.update([("x", 1), ("y", [2, unstorable])], w=4)
    assert _snapshot(d) == before


def test_a_delete_joker_before_a_bad_value_deletes_nothing(tmp_path: Path) -> None:
    d = make_store("files", tmp_path)
    d["z"] = 0
    with pytest.raises((TypeError, ValueError)):
        d.update({"z": DELETE_CURRENT, "b": threading.Lock()})
    assert d["z"] == 0


def test_good_updates_still_write_everything(d: PersiDict[Any]) -> None:
    d.update({"a": 1, ("p", "q"): [2]}, c="three")
    assert d["a"] == 1 and d["p", "q"] == [2] and d["c"] == "three" and d["z"] == 0
