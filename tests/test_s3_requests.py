"""The fewest requests per operation, counted with botocore event hooks, for BasicS3Dict and S3Dict."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from persidict import (
    ALWAYS_RETRIEVE,
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    IF_ETAG_CHANGED,
    ITEM_NOT_AVAILABLE,
    VALUE_NOT_RETRIEVED,
)
from persidict.backends.s3 import forget_clients
from persidict.s3_dict import BasicS3Dict, S3Dict

from .s3_helpers import FAKE_ENV, UNSET_ENV, RequestLog, client_of, log_requests

BUCKET = "count-bucket"


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Fake credentials, moto in-process; a raw client."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        forget_clients()
        yield boto3.client("s3", region_name="us-east-1")
        forget_clients()


@pytest.fixture(params=["BasicS3Dict", "S3Dict"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[BasicS3Dict[Any], RequestLog]:
    """A store with a request log on its client; the log starts empty."""
    d: BasicS3Dict[Any]
    if request.param == "S3Dict":
        d = S3Dict(bucket_name=BUCKET, base_dir=str(tmp_path), root_prefix="r")
    else:
        d = BasicS3Dict(bucket_name=BUCKET, root_prefix="r")
    return d, log_requests(client_of(d))


def test_plain_operations(store: tuple[BasicS3Dict[Any], RequestLog]) -> None:
    d, log = store
    d["k"] = 1
    assert log.take() == {"PutObject": 1}
    assert d["k"] == 1
    assert log.take() == {"GetObject": 1}
    assert ("k",) in d
    assert log.take() == {"HeadObject": 1}
    # A HEAD's 404 reads the same for a missing key and a missing bucket: only then, one HeadBucket.
    assert ("nope",) not in d
    assert log.take() == {"HeadObject": 1, "HeadBucket": 1}
    with pytest.raises(KeyError):
        d["nope"]
    assert log.take() == {"GetObject": 1}
    d.timestamp("k")
    d.etag("k")
    assert log.take() == {"HeadObject": 2}
    assert len(d) == 1
    assert log.take() == {"ListObjectsV2": 1}
    assert [k for k in d] == [("k",)]
    assert log.take() == {"ListObjectsV2": 1}
    d.clear()
    assert log.take() == {"ListObjectsV2": 1, "DeleteObjects": 1}


def test_conditional_read_sends_if_none_match(store: tuple[BasicS3Dict[Any], RequestLog]) -> None:
    d, log = store
    d["k"] = "v"
    etag = d.etag("k")
    log.clear()
    r = d.get_item_if("k", etag, ETAG_HAS_CHANGED, retrieve_value=IF_ETAG_CHANGED)
    assert not r.condition_was_satisfied and r.new_value is VALUE_NOT_RETRIEVED and r.actual_etag == etag
    assert log.sent == [("GetObject", etag, None)] and log.statuses == [("GetObject", 304)]
    log.clear()
    r = d.get_item_if("k", etag, ETAG_IS_THE_SAME, retrieve_value=ALWAYS_RETRIEVE)
    assert r.condition_was_satisfied and r.new_value == "v"
    assert log.take() == {"GetObject": 1}


def test_insert_if_absent_is_one_conditional_put(store: tuple[BasicS3Dict[Any], RequestLog]) -> None:
    d, log = store
    r = d.setdefault_if("k", 1, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert r.value_was_mutated and r.condition_was_satisfied
    assert log.sent == [("PutObject", "*", None)]
    log.clear()
    r = d.set_item_if("j", 2, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert r.value_was_mutated and log.sent == [("PutObject", "*", None)]
    log.clear()
    # Already there: the failed PUT, then one read for the result.
    r = d.setdefault_if("k", 5, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and not r.value_was_mutated and r.new_value == 1
    assert log.counts() == {"PutObject": 1, "GetObject": 1} and d["k"] == 1


def test_append_only_write_is_one_conditional_put(tmp_path: Path) -> None:
    stores: tuple[BasicS3Dict[Any], ...] = (
        BasicS3Dict(bucket_name=BUCKET, append_only=True),
        S3Dict(bucket_name=BUCKET, append_only=True, base_dir=str(tmp_path)),
    )
    for d in stores:
        log = log_requests(client_of(d))
        d["k" + type(d).__name__] = 1
        assert log.sent == [("PutObject", "*", None)]


def test_compare_and_swap_is_one_conditional_put(
    store: tuple[BasicS3Dict[Any], RequestLog],
) -> None:
    d, log = store
    d["k"] = 1
    etag = d.etag("k")
    log.clear()
    r = d.set_item_if("k", 2, etag, ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and r.value_was_mutated
    assert log.sent == [("PutObject", None, etag)]
    assert r.actual_etag == etag and r.resulting_etag == d.etag("k") != etag and r.new_value == 2
    log.clear()
    # Stale: the refused PUT (412), then the observation that reports the current state.
    r = d.set_item_if("k", 3, etag, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and not r.value_was_mutated and r.new_value == 2
    assert [op for op, _, _ in log.sent] == ["PutObject", "GetObject"] and d["k"] == 2
    assert log.statuses[0] == ("PutObject", 412)
    log.clear()
    # DELETE_CURRENT pinned to the current ETag: one conditional DELETE.
    d["gone"] = 0
    current = d.etag("gone")
    log.clear()
    r = d.set_item_if("gone", DELETE_CURRENT, current, ETAG_IS_THE_SAME)
    assert r.value_was_mutated and r.new_value is ITEM_NOT_AVAILABLE
    assert log.sent == [("DeleteObject", None, current)] and ("gone",) not in d
    log.clear()
    current = d.etag("k")
    log.clear()
    r = d.discard_if("k", current, ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and ("k",) not in d
    assert log.sent[:2] == [("HeadObject", None, None), ("DeleteObject", None, current)]


def test_set_item_if_any_etag_observes_then_puts(store: tuple[BasicS3Dict[Any], RequestLog]) -> None:
    d, log = store
    d["k"] = 0
    log.clear()
    r = d.set_item_if("k", 1, ITEM_NOT_AVAILABLE, ANY_ETAG)  # reports the ETag it replaced
    assert r.value_was_mutated and log.sent == [("HeadObject", None, None), ("PutObject", None, None)]
    log.clear()
    # An absent key: its HEAD's 404 is told from a missing bucket by one HeadBucket.
    r = d.set_item_if("new", 1, ITEM_NOT_AVAILABLE, ANY_ETAG)
    assert r.value_was_mutated and [op for op, _, _ in log.sent] == ["HeadObject", "HeadBucket", "PutObject"]


def test_transform_item_is_one_get_and_one_conditional_put(
    store: tuple[BasicS3Dict[Any], RequestLog],
) -> None:
    d, log = store
    d["n"] = 1
    etag = d.etag("n")
    log.clear()
    r = d.transform_item("n", lambda v: v + 1)
    assert r.new_value == 2 and d["n"] == 2
    cached_etag = None if type(d) is BasicS3Dict else etag  # S3Dict revalidates its cached copy
    assert log.sent[:2] == [("GetObject", cached_etag, None), ("PutObject", None, etag)]
    log.clear()
    d.transform_item("absent", lambda v: 0)
    assert log.sent == [("GetObject", None, None), ("PutObject", "*", None)]


def test_s3dict_read_of_a_cached_value_is_one_conditional_get(tmp_path: Path, aws: Any) -> None:
    d: S3Dict[Any] = S3Dict(bucket_name=BUCKET, base_dir=str(tmp_path))
    log = log_requests(client_of(d))
    d["k"] = "v"
    assert log.counts() == {"PutObject": 1}  # the returned ETag is recorded: no HEAD
    log.clear()
    for _ in range(3):
        assert d["k"] == "v"
    assert log.counts() == {"GetObject": 3} and {s for _, s in log.statuses} == {304}
    assert all(inm is not None for _, inm, _ in log.sent)
    aws.put_object(Bucket=BUCKET, Key="k2.pkl", Body=pickle.dumps("hi"))
    log.clear()
    assert d["k2"] == "hi" and d["k2"] == "hi"
    assert log.statuses == [("GetObject", 200), ("GetObject", 304)]


def test_s3dict_compare_and_swap_is_one_put_and_its_cache_follows_another_writer(
    tmp_path: Path, aws: Any
) -> None:
    d: S3Dict[Any] = S3Dict(bucket_name=BUCKET, base_dir=str(tmp_path), root_prefix="r")
    log = log_requests(client_of(d))
    d["k"] = 1
    etag = d.etag("k")
    log.clear()
    r = d.set_item_if("k", 2, etag, ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and log.sent == [("PutObject", None, etag)]  # as BasicS3Dict: 1 request
    log.clear()
    assert d["k"] == 2 and log.statuses == [("GetObject", 304)]  # the cache holds 2 under the new ETag
    # Another writer replaces the object between our calls: the cached ETag is stale now.
    aws.put_object(Bucket=BUCKET, Key="r/k.pkl", Body=pickle.dumps(3))
    log.clear()
    r = d.set_item_if("k", 4, r.resulting_etag, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and r.new_value == 3
    assert [op for op, _, _ in log.sent] == ["PutObject", "GetObject"]
    assert log.statuses[0] == ("PutObject", 412)
    log.clear()
    assert d["k"] == 3 and log.statuses == [("GetObject", 304)]  # the refreshed copy is served
    # Swapping on the other writer's ETag: one PUT again, and the cache follows it.
    theirs = r.actual_etag
    log.clear()
    r = d.set_item_if("k", 5, theirs, ETAG_IS_THE_SAME)
    assert r.condition_was_satisfied and log.sent == [("PutObject", None, theirs)]
    assert pickle.loads(aws.get_object(Bucket=BUCKET, Key="r/k.pkl")["Body"].read()) == 5
    log.clear()
    assert d["k"] == 5 and log.statuses == [("GetObject", 304)]
    # The other writer deletes it: a swap is refused and the cached copy is not served.
    aws.delete_object(Bucket=BUCKET, Key="r/k.pkl")
    log.clear()
    r = d.set_item_if("k", 6, r.resulting_etag, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and r.new_value is ITEM_NOT_AVAILABLE and "k" not in d
