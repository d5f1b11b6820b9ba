"""Batch operations on BasicS3Dict and S3Dict (issue 14): results, request counts, the pool, failures, caches.

Most tests talk HTTP to the moto server on 127.0.0.1 (tests/s3_helpers.py);
those counting requests of large batches run against in-process moto.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from persidict import (
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    BackendError,
    BatchError,
    ProgressEvent,
)
from persidict.backends.s3 import BATCH_WORKERS, POOL_CONNECTIONS, forget_clients
from persidict.keys import to_key
from persidict.s3_dict import BasicS3Dict, S3Dict

from .s3_helpers import (
    FAKE_ENV,
    SERVER_CREDENTIALS,
    UNSET_ENV,
    Concurrency,
    FailKeys,
    FaultInjector,
    RefuseDeletes,
    client_of,
    error_response,
    log_requests,
    moto_endpoint,
)

BUCKET = "batch-bucket"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fake credentials, no AWS setup of the developer's; fresh shared clients."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    forget_clients()
    yield
    forget_clients()


def _params(bucket: str = BUCKET, **more: Any) -> dict[str, Any]:
    """A fresh prefix of ``bucket`` on the moto server."""
    return {
        "bucket_name": bucket,
        "root_prefix": f"t/{uuid.uuid4().hex}",
        "endpoint_url": moto_endpoint(),
        **SERVER_CREDENTIALS,
        **more,
    }


def _make(kind: str, tmp_path: Path, **params: Any) -> BasicS3Dict[Any]:
    if kind == "S3Dict":
        return S3Dict(base_dir=str(tmp_path / uuid.uuid4().hex), **params)
    return BasicS3Dict(**params)


@pytest.fixture(params=["BasicS3Dict", "S3Dict"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which S3 dict."""
    return str(request.param)


@pytest.fixture
def store(kind: str, tmp_path: Path) -> BasicS3Dict[Any]:
    """A dict on a fresh prefix of the moto server's bucket."""
    return _make(kind, tmp_path, **_params())


@pytest.fixture
def aws() -> Iterator[Any]:
    """In-process moto; a raw client."""
    with mock_aws():
        forget_clients()
        yield boto3.client("s3", region_name="us-east-1")
        forget_clients()


def _object_keys(d: BasicS3Dict[Any], keys: list[Any]) -> list[str]:
    """The S3 object keys of ``keys`` in ``d`` (pickle format)."""
    return [d.root_prefix + "/".join(to_key(k)) + ".pkl" for k in keys]


def _stored(d: BasicS3Dict[Any]) -> set[str]:
    """The object keys under ``d``'s prefix, straight from S3."""
    pages = client_of(d).get_paginator("list_objects_v2").paginate(Bucket=d.bucket_name, Prefix=d.root_prefix)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


# ---------------------------------------------------------------- results


def test_batch_results_equal_single_results(store: BasicS3Dict[Any]) -> None:
    items: dict[Any, Any] = {f"k{i}": {"i": i} for i in range(30)}
    items.update({("sub", f"n{i}"): [i] for i in range(10)})
    items[("sub", "deeper", "x")] = "x"
    store.set_many(items)
    keys = [*items, "missing", ("sub", "missing")]
    assert store.get_many(keys, with_etags=True) == {to_key(k): (store[k], store.etag(k)) for k in items}
    assert store.get_many(keys) == {to_key(k): v for k, v in items.items()}
    assert store.discard_many(keys) == len(items)
    assert len(store) == 0 and store.get_many(keys) == {}
    assert store.discard_many(keys) == 0


def test_update_and_set_many_overwrite_and_delete(store: BasicS3Dict[Any]) -> None:
    from persidict import DELETE_CURRENT, KEEP_CURRENT

    store.update({f"k{i}": i for i in range(20)})
    store.set_many([("k0", "new"), ("k1", DELETE_CURRENT), ("k2", KEEP_CURRENT), ("k0", "newer")])
    assert store["k0"] == "newer" and "k1" not in store and store["k2"] == 2
    assert store.get_many([f"k{i}" for i in range(20)]) == {
        to_key(f"k{i}"): ("newer" if i == 0 else i) for i in range(20) if i != 1
    }


def test_subdicts_batch_within_their_prefix(store: BasicS3Dict[Any]) -> None:
    sub = store.get_subdict("folder")
    sub.set_many({"a": 1, ("b", "c"): 2})
    store["a"] = "outside"
    assert store.get_many([("folder", "a"), ("folder", "b", "c"), "a"]) == {
        ("folder", "a"): 1,
        ("folder", "b", "c"): 2,
        ("a",): "outside",
    }
    assert sub.discard_many(["a", ("b", "c"), "zz"]) == 2
    assert store["a"] == "outside" and len(sub) == 0


def test_progress_callback_sees_every_item(store: BasicS3Dict[Any]) -> None:
    keys = [f"k{i}" for i in range(25)]
    for op in ("set_many", "get_many", "discard_many"):
        events: list[ProgressEvent] = []
        if op == "set_many":
            store.set_many({k: k for k in keys}, progress=events.append)
        elif op == "get_many":
            store.get_many([*keys, "absent"], progress=events.append)
        else:
            store.discard_many(keys, progress=events.append)
        expected = {to_key(k) for k in keys} | ({to_key("absent")} if op == "get_many" else set())
        assert {e.key for e in events} == expected and len(events) == len(expected), op
        assert sorted(e.done for e in events) == list(range(1, len(expected) + 1))
        assert all(e.ok and e.total == len(expected) for e in events)


# ---------------------------------------------------------------- request counts


def test_discard_many_of_500_stored_keys_is_two_requests(aws: Any, tmp_path: Path) -> None:
    stores: list[BasicS3Dict[Any]] = [
        BasicS3Dict(bucket_name=BUCKET, root_prefix="b"),
        S3Dict(bucket_name=BUCKET, root_prefix="c", base_dir=str(tmp_path)),
    ]
    for d in stores:
        d.set_many({f"k{i}": i for i in range(500)})
        log = log_requests(client_of(d))
        assert d.discard_many([f"k{i}" for i in range(500)]) == 500
        assert log.take() == {"ListObjectsV2": 1, "DeleteObjects": 1}
        assert len(d) == 0


def test_discard_many_counts_only_the_keys_that_existed(aws: Any) -> None:
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=BUCKET, root_prefix="r")
    d.set_many({f"k{i:03}": i for i in range(0, 300, 2)})
    d["other"] = "kept"
    log = log_requests(client_of(d))
    assert d.discard_many([f"k{i:03}" for i in range(300)]) == 150
    assert log.take() == {"ListObjectsV2": 1, "DeleteObjects": 1}
    assert _stored(d) == {"r/other.pkl"}
    log.clear()
    # Nothing there: the listing alone, no DeleteObjects.
    assert d.discard_many([f"k{i:03}" for i in range(300)]) == 0
    assert log.take() == {"ListObjectsV2": 1}


def test_discard_many_sends_a_deleteobjects_per_thousand_keys(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persidict.backends import s3

    monkeypatch.setattr(s3, "DELETE_BATCH", 10)  # S3's 1,000, scaled down
    monkeypatch.setattr(s3, "LIST_PAGE", 10)
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=BUCKET, root_prefix="big")
    d.set_many({f"k{i:02}": i for i in range(25)})
    log = log_requests(client_of(d))
    assert d.discard_many([f"k{i:02}" for i in range(27)]) == 25
    assert log.take() == {"ListObjectsV2": 3, "DeleteObjects": 3}
    assert len(d) == 0


@pytest.mark.slow
def test_discard_many_of_more_than_a_thousand_keys(aws: Any) -> None:
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=BUCKET, root_prefix="big")
    raw = client_of(d)
    for i in range(1_200):
        raw.put_object(Bucket=BUCKET, Key=f"big/k{i:04}.pkl", Body=b"\x80\x04K\x01.")
    log = log_requests(raw)
    assert d.discard_many([f"k{i:04}" for i in range(1_250)]) == 1_200
    assert log.take() == {"ListObjectsV2": 2, "DeleteObjects": 2}
    assert len(d) == 0


def test_discard_many_of_keys_scattered_among_many_objects_asks_head_beyond_a_few_pages(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from persidict.backends import s3

    monkeypatch.setattr(s3, "LIST_PAGE", 10)  # S3's 1,000 and one page per 100 keys, scaled down
    monkeypatch.setattr(s3, "KEYS_PER_LIST_PAGE", 1)
    d: BasicS3Dict[Any] = BasicS3Dict(bucket_name=BUCKET, root_prefix="s")
    d.set_many({f"m{i:02}": i for i in range(60)})  # between "a" and "z"
    d["a"] = 1
    d["z"] = 2
    log = log_requests(client_of(d))
    assert d.discard_many(["a", "z", "zz"]) == 2
    # 1 + 3 pages for 3 keys, then HEADs beyond them (a 404 is an absent key: the listing saw the bucket).
    assert log.take() == {"ListObjectsV2": 4, "HeadObject": 2, "DeleteObjects": 1}
    assert "a" not in d and "z" not in d and len(d) == 60
    # Keys dense enough in their span are found by listing pages alone.
    log.clear()
    assert d.discard_many([f"m{i:02}" for i in range(0, 30, 3)]) == 10
    assert log.take() == {"ListObjectsV2": 3, "DeleteObjects": 1}


def test_batch_reads_and_writes_are_one_request_per_key(store: BasicS3Dict[Any]) -> None:
    log = log_requests(client_of(store))
    store.set_many({f"k{i}": i for i in range(40)})
    assert log.take() == {"PutObject": 40}
    store.get_many([f"k{i}" for i in range(50)])
    assert log.take() == {"GetObject": 50}


# ---------------------------------------------------------------- the pool


def test_the_shared_client_pool_matches_the_default_concurrency(store: BasicS3Dict[Any]) -> None:
    assert client_of(store).meta.config.max_pool_connections == POOL_CONNECTIONS >= BATCH_WORKERS
    assert store._default_workers() == BATCH_WORKERS == 16
    peak = Concurrency().install(client_of(store))
    store.set_many({f"k{i}": i for i in range(60)})
    assert 1 < peak.peak <= BATCH_WORKERS
    peak.peak = 0
    store.get_many([f"k{i}" for i in range(60)], max_workers=4)
    assert 1 < peak.peak <= 4


def test_a_users_config_keeps_our_pool_and_fail_fast_defaults_unless_it_sets_them() -> None:
    from persidict.backends.s3 import CONNECT_TIMEOUT, MAX_ATTEMPTS, READ_TIMEOUT, ClientSpec

    cfg = ClientSpec(client_config=Config(read_timeout=60, signature_version="s3v4")).config()
    pool_and_timeouts = (cfg.max_pool_connections, cfg.connect_timeout, cfg.read_timeout)
    assert pool_and_timeouts == (POOL_CONNECTIONS, CONNECT_TIMEOUT, 60)
    assert cfg.retries == {"mode": "standard", "total_max_attempts": MAX_ATTEMPTS}
    assert cfg.signature_version == "s3v4"
    cfg = ClientSpec(client_config=Config(max_pool_connections=8), checksum="when_required").config()
    pool_and_timeouts = (cfg.max_pool_connections, cfg.connect_timeout, cfg.read_timeout)
    assert pool_and_timeouts == (8, CONNECT_TIMEOUT, READ_TIMEOUT)
    assert cfg.request_checksum_calculation == "when_required"


def test_a_smaller_pool_of_the_users_config_bounds_the_concurrency(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = _make(kind, tmp_path, **_params(client_config=Config(max_pool_connections=3)))
    assert client_of(d).meta.config.max_pool_connections == 3
    assert d._default_workers() == 3
    peak = Concurrency().install(client_of(d))
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        d.set_many({f"k{i}": i for i in range(40)}, max_workers=32)
        assert len(d.get_many([f"k{i}" for i in range(40)], max_workers=32)) == 40
    assert 1 < peak.peak <= 3
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_a_larger_pool_allows_more_workers(kind: str, tmp_path: Path) -> None:
    d = _make(kind, tmp_path, **_params(client_config=Config(max_pool_connections=64)))
    assert d._default_workers() == BATCH_WORKERS
    peak = Concurrency(linger=0.15).install(client_of(d))
    d.set_many({f"k{i}": i for i in range(80)}, max_workers=40)
    assert BATCH_WORKERS < peak.peak <= 40


# ---------------------------------------------------------------- partial failures


def test_failed_writes_name_exactly_the_failed_keys_and_the_others_are_written(
    store: BasicS3Dict[Any],
) -> None:
    keys = [f"k{i}" for i in range(30)]
    bad = ["k3", "k17", "k29"]
    fault = FailKeys("PutObject", _object_keys(store, bad)).install(client_of(store))
    events: list[ProgressEvent] = []
    with pytest.raises(BatchError) as caught:
        store.set_many({k: k for k in keys}, progress=events.append)
    assert sorted(caught.value.keys) == sorted(to_key(k) for k in bad)  # type: ignore[type-var]
    assert all(isinstance(e, BackendError) for e in caught.value.exceptions)
    assert {e.key for e in events if not e.ok} == {to_key(k) for k in bad} and len(events) == 30
    assert sorted(fault.failed) == sorted(_object_keys(store, bad))
    fault.remove(client_of(store))
    assert _stored(store) == set(_object_keys(store, [k for k in keys if k not in bad]))
    # One failed key: its own exception, naming it.
    FailKeys("PutObject", _object_keys(store, ["k3"])).install(client_of(store))
    with pytest.raises(BackendError) as one:
        store.set_many({"k3": 3, "k4": 4})
    assert not isinstance(one.value, BatchError) and "k3" in str(one.value)
    assert store["k4"] == 4 and "k3" not in store


def test_a_failed_update_names_exactly_the_failed_keys_and_caches_only_the_written(
    store: BasicS3Dict[Any],
) -> None:
    store.update({"u0": "old", "u5": "old"})
    keys = [f"u{i}" for i in range(12)]
    bad = ["u0", "u2", "u9"]  # u0 held a value: it keeps it
    fault = FailKeys("PutObject", _object_keys(store, bad)).install(client_of(store))
    with pytest.raises(BatchError) as caught:
        store.update({k: k for k in keys})
    assert sorted(caught.value.keys) == sorted(to_key(k) for k in bad)  # type: ignore[type-var]
    assert _stored(store) == set(_object_keys(store, [k for k in keys if k not in ("u2", "u9")]))
    expected = {to_key(k): ("old" if k == "u0" else k) for k in keys if k not in ("u2", "u9")}
    assert sorted(fault.failed) == sorted(_object_keys(store, bad))
    if isinstance(store, S3Dict):
        # The cache holds the written values (and u0's old one), nothing for the failed keys.
        assert len(_cache_files(store)) == len(expected)
    assert store.get_many(keys) == expected


def test_failed_reads_name_exactly_the_failed_keys(store: BasicS3Dict[Any]) -> None:
    keys = [f"k{i}" for i in range(20)]
    store.set_many({k: k for k in keys})
    bad = ["k0", "k11"]
    FailKeys("GetObject", _object_keys(store, bad)).install(client_of(store))
    events: list[ProgressEvent] = []
    with pytest.raises(BatchError) as caught:
        store.get_many(keys, progress=events.append)
    assert sorted(caught.value.keys) == sorted(to_key(k) for k in bad)  # type: ignore[type-var]
    assert sum(e.ok for e in events) == 18
    with pytest.raises(BackendError):
        store.get_many(["k0", "k1"])
    assert store.get_many(["k1", "k2"]) == {("k1",): "k1", ("k2",): "k2"}


def test_keys_deleteobjects_refuses_are_named_and_the_others_deleted(store: BasicS3Dict[Any]) -> None:
    keys = [f"k{i}" for i in range(30)]
    store.set_many({k: k for k in keys})
    bad = ["k5", "k6", "k20"]
    refuse = RefuseDeletes(_object_keys(store, bad)).install(client_of(store))
    with pytest.raises(BatchError) as caught:
        store.discard_many(keys)
    assert sorted(caught.value.keys) == sorted(to_key(k) for k in bad)  # type: ignore[type-var]
    for e in caught.value.exceptions:
        assert isinstance(e, BackendError) and e.operation == "DeleteObjects" and "AccessDenied" in str(e)
    assert sorted(refuse.refused) == sorted(_object_keys(store, bad))
    assert _stored(store) == set(_object_keys(store, bad))
    refuse.object_keys = set(_object_keys(store, ["k5"]))
    with pytest.raises(BackendError) as one:
        store.discard_many(bad)
    assert not isinstance(one.value, BatchError) and one.value.key == _object_keys(store, ["k5"])[0]
    assert _stored(store) == set(_object_keys(store, ["k5"]))


def test_a_failed_deleteobjects_request_fails_every_key_it_carried(store: BasicS3Dict[Any]) -> None:
    keys = [f"k{i}" for i in range(10)]
    store.set_many({k: k for k in keys})
    fault = FaultInjector("DeleteObjects", lambda: error_response(403, "AccessDenied"), times=None)
    fault.install(client_of(store))
    with pytest.raises(BatchError) as caught:
        store.discard_many([*keys, "absent"])
    assert sorted(caught.value.keys) == sorted(to_key(k) for k in keys)  # type: ignore[type-var]
    assert len({id(e) for e in caught.value.exceptions}) == len(keys)  # one exception per key
    named = {e.key for e in caught.value.exceptions if isinstance(e, BackendError)}
    assert named == set(_object_keys(store, keys))
    fault.remove(client_of(store))
    assert store.discard_many(keys) == 10


def test_a_failed_listing_fails_every_key_of_the_batch(store: BasicS3Dict[Any]) -> None:
    store.set_many({"a": 1, "b": 2})
    fault = FaultInjector("ListObjectsV2", lambda: error_response(403, "AccessDenied"), times=None)
    fault.install(client_of(store))
    with pytest.raises(BatchError) as caught:
        store.discard_many(["a", "b"])
    assert sorted(caught.value.keys) == [("a",), ("b",)]  # type: ignore[type-var]
    fault.remove(client_of(store))
    assert store.get_many(["a", "b"]) == {("a",): 1, ("b",): 2}


# ---------------------------------------------------------------- a vanished bucket


def test_every_batch_request_recreates_a_vanished_bucket(kind: str, tmp_path: Path) -> None:
    bucket = f"gone-{uuid.uuid4().hex[:12]}"
    d = _make(kind, tmp_path, **_params(bucket))
    raw = client_of(d)

    def drop_bucket() -> None:
        for key in _stored(d):
            raw.delete_object(Bucket=bucket, Key=key)
        raw.delete_bucket(Bucket=bucket)

    d.set_many({f"k{i}": i for i in range(20)})
    drop_bucket()
    d.set_many({f"k{i}": -i for i in range(20)})
    assert d.get_many([f"k{i}" for i in range(20)]) == {to_key(f"k{i}"): -i for i in range(20)}
    drop_bucket()
    assert d.get_many([f"k{i}" for i in range(20)]) == {}
    drop_bucket()
    assert d.discard_many([f"k{i}" for i in range(20)]) == 0
    raw.head_bucket(Bucket=bucket)  # created again
    d["x"] = 1
    drop_bucket()
    d.update({"y": 2, "z": 3})
    assert d.get_many(["x", "y", "z"]) == {("y",): 2, ("z",): 3}


# ---------------------------------------------------------------- S3Dict's cache


def _cache_files(d: S3Dict[Any]) -> list[str]:
    return [os.path.join(r, f) for r, _, files in os.walk(d.base_dir) for f in files]


def test_s3dict_batch_writes_fill_its_cache_and_batch_reads_validate_it(tmp_path: Path) -> None:
    d: S3Dict[Any] = S3Dict(base_dir=str(tmp_path / "cache"), **_params())
    keys = [f"k{i}" for i in range(20)]
    log = log_requests(client_of(d))
    d.set_many({k: k for k in keys})
    assert log.take() == {"PutObject": 20} and len(_cache_files(d)) == 20
    assert d.get_many(keys) == {to_key(k): k for k in keys}
    assert log.counts() == {"GetObject": 20} and {s for _, s in log.statuses} == {304}
    log.clear()
    # Another writer changes some keys: those are transferred (200), the rest still answered 304.
    other: BasicS3Dict[Any] = BasicS3Dict(**{**_params(), "root_prefix": d.root_prefix})
    other.set_many({"k0": "changed", "k7": "changed"})
    other.discard_many(["k9"])
    log.clear()
    got = d.get_many(keys)
    assert got == {to_key(k): ("changed" if k in ("k0", "k7") else k) for k in keys if k != "k9"}
    assert sorted(s for _, s in log.statuses).count(200) == 2
    log.clear()
    assert d.get_many(keys) == got
    assert {s for op, s in log.statuses if op == "GetObject"} == {304, 404}  # k9 is absent, unread
    assert len(_cache_files(d)) == 19


def test_s3dict_batch_deletes_drop_their_cached_copies(tmp_path: Path) -> None:
    d: S3Dict[Any] = S3Dict(base_dir=str(tmp_path / "cache"), **_params())
    d.set_many({f"k{i}": i for i in range(12)})
    assert len(_cache_files(d)) == 12
    assert d.discard_many([f"k{i}" for i in range(6)]) == 6
    assert len(_cache_files(d)) == 6
    d["k0"] = "again"
    assert d.get_many(["k0", "k1", "k6"]) == {("k0",): "again", ("k6",): 6}


def test_s3dict_set_item_if_is_one_request_and_keeps_its_cache_coherent(tmp_path: Path) -> None:
    d: S3Dict[Any] = S3Dict(base_dir=str(tmp_path / "cache"), **_params())
    basic: BasicS3Dict[Any] = BasicS3Dict(**{**_params(), "root_prefix": d.root_prefix})
    d["k"] = 1
    etag: Any = d.etag("k")
    for probe in (d, basic):
        log = log_requests(client_of(probe))
        r = probe.set_item_if("k", 2 if probe is d else 3, etag, ETAG_IS_THE_SAME)
        assert r.condition_was_satisfied and log.take() == {"PutObject": 1}
        etag = r.resulting_etag
    # S3Dict's cached copy holds 2 under the ETag its PUT returned; basic wrote 3 since.
    log = log_requests(client_of(d))
    assert d["k"] == 3 and log.statuses[-1] == ("GetObject", 200)
    etag = d.etag("k")
    log.clear()
    r = d.set_item_if("k", 4, etag, ETAG_IS_THE_SAME)
    assert r.resulting_etag != etag and log.take() == {"PutObject": 1}
    assert d["k"] == 4 and log.statuses == [("GetObject", 304)]  # served from the updated cache
    # A stale ETag: the refused PUT, then the read reporting what is there (and refreshing the cache).
    basic["k"] = 5
    current = basic.etag("k")
    log.clear()
    r = d.set_item_if("k", 6, etag, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and r.new_value == 5 and r.actual_etag == current
    assert [op for op, _ in log.statuses] == ["PutObject", "GetObject"] and log.statuses[0][1] == 412
    log.clear()
    assert d["k"] == 5 and log.statuses == [("GetObject", 304)]
    r = d.set_item_if("absent", 1, etag, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and r.new_value is ITEM_NOT_AVAILABLE and "absent" not in d


# ---------------------------------------------------------------- one round trip per write


def test_small_puts_do_not_wait_for_100_continue(store: BasicS3Dict[Any]) -> None:
    seen: list[tuple[int, bool]] = []

    def capture(request: Any = None, **kwargs: Any) -> None:
        size = request.headers.get("X-Amz-Decoded-Content-Length") or request.headers.get("Content-Length")
        seen.append((int(size), request.headers.get("Expect") is not None))

    client_of(store).meta.events.register_last("before-send.s3.PutObject", capture)
    store.set_many({"small": b"x" * 1000, "big": b"x" * (2 * 1024 * 1024)})
    assert sorted((size > 2**20, expect) for size, expect in seen) == [(False, False), (True, True)]
    assert store["big"] == b"x" * 2**21


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T12:00:00.000Z",
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00.123456+02:00",
        "Wed, 01 May 2024 12:00:00 GMT",
        "1714564800",
        "2024-05-01 12:00:00",
    ],
)
def test_answer_timestamps_parse_as_botocore_parses_them(text: str) -> None:
    import importlib

    from persidict.backends.s3 import _parse_timestamp

    botocores = importlib.import_module("botocore.utils").parse_timestamp(text)
    ours = _parse_timestamp(text)
    assert ours == botocores and ours.utcoffset() == botocores.utcoffset()


def test_our_clients_parse_answer_timestamps_with_the_fast_parser(store: BasicS3Dict[Any]) -> None:
    from persidict.backends import s3

    calls: list[str] = []
    original = s3._parse_timestamp

    def spy(value: str) -> Any:
        calls.append(value)
        return original(value)

    s3._parse_timestamp = spy
    try:
        forget_clients()
        d = BasicS3Dict(**{**_params(), "root_prefix": store.root_prefix})
        d["k"] = 1
        stamp = d.timestamp("k")
        assert [t for _, t in d.keys_and_timestamps()] == [stamp] and calls
    finally:
        s3._parse_timestamp = original
