"""S3 reliability (issue 13, items 5 and 9): lost replies and hung endpoints.

Item 5: a conditional PUT or DELETE whose reply is lost after the server
carried it out is sent again by botocore; the resend then fails on our own
write. Such a write must be neither applied twice nor reported lost. The
requests really reach a moto server over HTTP (``DropReplies`` sends them
itself and then raises a read timeout in place of the answer), so the server
state is what S3's would be.

Item 9: with the default settings a hung endpoint is a BackendError within
about a minute (bounded timeouts and attempts); ``client_config`` merges over
the defaults.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from persidict import ETAG_IS_THE_SAME, ITEM_NOT_AVAILABLE, BackendError
from persidict.backends import s3
from persidict.backends.s3 import forget_clients
from persidict.results import ConditionalOperationResult
from persidict.s3_dict import BasicS3Dict, S3Dict

from .s3_helpers import (
    FAKE_ENV,
    SERVER_CREDENTIALS,
    UNSET_ENV,
    DropReplies,
    FaultInjector,
    client_of,
    error_response,
    log_requests,
    moto_endpoint,
)


@pytest.fixture(autouse=True)
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Fake credentials, no sleeping between retries; a raw client of the moto server."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("botocore.retries.standard.ExponentialBackoff.delay_amount", lambda self, ctx: 0)
    forget_clients()
    yield boto3.client("s3", region_name="us-east-1", endpoint_url=moto_endpoint())
    forget_clients()


@pytest.fixture
def bucket() -> str:
    """A fresh bucket name."""
    return f"rel-{uuid.uuid4().hex[:12]}"


def _open(kind: str, bucket: str, tmp_path: Path, **kwargs: Any) -> BasicS3Dict[Any]:
    """A dict on the moto server with a client of its own (a distinct ``client_config``)."""
    params: dict[str, Any] = {**SERVER_CREDENTIALS, "client_config": Config(), **kwargs}
    if kind == "S3Dict":
        cache = tmp_path / f"cache-{uuid.uuid4().hex[:8]}"
        return S3Dict(bucket_name=bucket, endpoint_url=moto_endpoint(), base_dir=str(cache), **params)
    return BasicS3Dict(bucket_name=bucket, endpoint_url=moto_endpoint(), **params)


@pytest.fixture(params=["BasicS3Dict", "S3Dict"])
def kind(request: pytest.FixtureRequest) -> str:
    """Which S3 dict class."""
    return str(request.param)


@pytest.fixture
def d(kind: str, bucket: str, tmp_path: Path) -> BasicS3Dict[Any]:
    """A dict holding n = 0 and k = "old"."""
    store = _open(kind, bucket, tmp_path)
    store["n"] = 0
    store["k"] = "old"
    return store


_ABSENT = (ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
"""The condition of an insert: expect no item."""


def _increment(v: Any) -> int:
    return 1 if v is ITEM_NOT_AVAILABLE else int(v) + 1


def _lose_reply(d: BasicS3Dict[Any], operation: str = "PutObject", **kwargs: Any) -> DropReplies:
    return DropReplies(operation, **kwargs).install(client_of(d))


# ---------------------------------------------------------------- item 5: one writer


def test_transform_item_whose_reply_is_lost_is_applied_once(d: BasicS3Dict[Any]) -> None:
    drop = _lose_reply(d)
    r = d.transform_item("n", _increment)
    assert drop.delivered == [200]  # the server stored the first PUT; its reply was lost
    assert d["n"] == 1 and r.new_value == 1
    assert r.resulting_etag == d.etag("n")


def test_transform_item_inserting_whose_reply_is_lost_is_applied_once(d: BasicS3Dict[Any]) -> None:
    drop = _lose_reply(d)
    r = d.transform_item("fresh", _increment)
    assert drop.delivered == [200]
    assert d["fresh"] == 1 and r.new_value == 1 and r.resulting_etag == d.etag("fresh")


def test_set_item_if_whose_reply_is_lost_is_reported_done(d: BasicS3Dict[Any]) -> None:
    etag = d.etag("k")
    drop = _lose_reply(d)
    r = d.set_item_if("k", "new", etag, ETAG_IS_THE_SAME)
    assert drop.delivered == [200]
    assert r.condition_was_satisfied and r.value_was_mutated
    assert r.actual_etag == etag and r.resulting_etag == d.etag("k") and d["k"] == "new"


def test_set_item_if_absent_whose_reply_is_lost_is_reported_done(d: BasicS3Dict[Any]) -> None:
    drop = _lose_reply(d)
    r = d.set_item_if("j", "first", ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert drop.delivered == [200]
    assert r.condition_was_satisfied and r.value_was_mutated
    assert r.resulting_etag == d.etag("j") and d["j"] == "first"


def test_setdefault_if_whose_reply_is_lost_is_reported_done(d: BasicS3Dict[Any]) -> None:
    drop = _lose_reply(d)
    r = d.setdefault_if("new", 5, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    assert drop.delivered == [200]
    assert r.condition_was_satisfied and r.value_was_mutated and r.new_value == 5
    assert r.actual_etag is ITEM_NOT_AVAILABLE and r.resulting_etag == d.etag("new")


def test_discard_if_whose_reply_is_lost_is_reported_done(d: BasicS3Dict[Any]) -> None:
    etag = d.etag("k")
    drop = _lose_reply(d, "DeleteObject")
    r = d.discard_if("k", etag, ETAG_IS_THE_SAME)
    assert drop.delivered == [204]  # deleted by the first attempt
    assert r.condition_was_satisfied and r.value_was_mutated
    assert r.actual_etag == etag and r.resulting_etag is ITEM_NOT_AVAILABLE
    assert ("k",) not in d


def test_only_a_failed_resend_pays_an_extra_request(d: BasicS3Dict[Any]) -> None:
    log = log_requests(client_of(d))
    d.transform_item("n", _increment)
    assert "HeadObject" not in log.take()  # nothing lost: GET + PUT
    drop = _lose_reply(d)
    d.transform_item("n", _increment)
    assert drop.delivered == [200] and log.counts().get("HeadObject") == 1  # the resend's 412: one HEAD
    assert d["n"] == 2


# ---------------------------------------------------------------- item 5: racing writers


def test_two_racing_inserters_losing_replies_make_exactly_one_winner(
    kind: str, bucket: str, tmp_path: Path
) -> None:
    a = _open(kind, bucket, tmp_path)
    b = _open(kind, bucket, tmp_path)
    b_results: list[ConditionalOperationResult[Any]] = []
    b_drop = _lose_reply(b)
    # A's insert is stored and its reply lost; before A sends it again, B inserts (and loses its 412).
    a_drop = _lose_reply(a, meanwhile=lambda: b_results.append(b.setdefault_if("k", "b", *_ABSENT)))
    ra = a.setdefault_if("k", "a", *_ABSENT)
    (rb,) = b_results
    assert a_drop.delivered == [200] and b_drop.delivered == [412]
    assert ra.condition_was_satisfied and ra.value_was_mutated and ra.new_value == "a"
    assert not rb.condition_was_satisfied and not rb.value_was_mutated and rb.new_value == "a"
    assert rb.actual_etag == ra.resulting_etag == a.etag("k") and a["k"] == "a"


def _race_to_insert(stores: list[BasicS3Dict[Any]], key: str) -> list[ConditionalOperationResult[Any]]:
    """Each store inserts its index at ``key``, all at once (one thread each); their results."""
    barrier = threading.Barrier(len(stores))
    results: dict[int, ConditionalOperationResult[Any]] = {}

    def insert(i: int) -> None:
        barrier.wait()
        results[i] = stores[i].setdefault_if(key, i, *_ABSENT)

    threads = [threading.Thread(target=insert, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[i] for i in sorted(results)]


def test_many_racing_inserters_losing_every_first_reply_make_exactly_one_winner(
    kind: str, bucket: str, tmp_path: Path
) -> None:
    stores = [_open(kind, bucket, tmp_path) for _ in range(6)]
    for store in stores:
        _lose_reply(store, times=None)
    for round_ in range(3):
        key = f"race{round_}"
        results = _race_to_insert(stores, key)
        winners = [i for i, r in enumerate(results) if r.condition_was_satisfied]
        assert len(results) == len(stores) and len(winners) == 1
        assert stores[0][key] == winners[0]
        assert all(r.new_value == winners[0] for r in results)


@pytest.mark.parametrize("writes_after", [1, s3.LINEAGE_DEPTH - 1])
def test_transform_whose_reply_is_lost_and_built_on_by_others_is_applied_once(
    kind: str, bucket: str, tmp_path: Path, writes_after: int
) -> None:
    a = _open(kind, bucket, tmp_path)
    b = _open("BasicS3Dict", bucket, tmp_path)
    a["n"] = 0
    a_version: list[str] = []

    def others_increment() -> None:
        # A's PUT is stored (n = 1), its reply lost; B's increments land before A's resend.
        a_version.append(str(b.etag("n")))
        for _ in range(writes_after):
            b.transform_item("n", _increment)

    drop = _lose_reply(a, meanwhile=others_increment)
    r = a.transform_item("n", _increment)
    assert drop.delivered == [200]
    assert a["n"] == 1 + writes_after  # every increment applied once
    assert r.new_value == 1 and r.resulting_etag == a_version[0]  # true of the moment after A's write


def test_transform_whose_write_was_overwritten_unconditionally_is_applied_to_the_new_value(
    d: BasicS3Dict[Any], bucket: str, tmp_path: Path
) -> None:
    other = _open("BasicS3Dict", bucket, tmp_path)

    def overwrite() -> None:
        other["n"] = 100

    _lose_reply(d, meanwhile=overwrite)
    r = d.transform_item("n", _increment)
    # Our first increment was wiped out by the overwrite; the result holds exactly one increment.
    assert d["n"] == 101 and r.new_value == 101


# ---------------------------------------------------------------- item 5: refused attempts are not ours


def _slow_down_after(action: Any) -> Any:
    def fail() -> Any:
        action()
        return error_response(503, "SlowDown")

    return fail


def test_a_refused_delete_whose_key_another_deleted_is_reported_not_done(
    d: BasicS3Dict[Any], bucket: str, tmp_path: Path
) -> None:
    other = _open("BasicS3Dict", bucket, tmp_path)
    etag = d.etag("k")
    # The first attempt is refused (503, never stored) while another client deletes the key.
    FaultInjector("DeleteObject", _slow_down_after(lambda: other.discard("k"))).install(client_of(d))
    r = d.discard_if("k", etag, ETAG_IS_THE_SAME)
    assert not r.condition_was_satisfied and r.actual_etag is ITEM_NOT_AVAILABLE


def test_a_refused_insert_that_another_won_is_reported_lost_without_extra_requests(
    d: BasicS3Dict[Any], bucket: str, tmp_path: Path
) -> None:
    other = _open("BasicS3Dict", bucket, tmp_path)
    client = client_of(d)

    def other_inserts() -> None:
        other.setdefault_if("new", "other", *_ABSENT)

    FaultInjector("PutObject", _slow_down_after(other_inserts)).install(client)
    log = log_requests(client)
    r = d.setdefault_if("new", "mine", *_ABSENT)
    assert not r.condition_was_satisfied and r.new_value == "other"
    assert "HeadObject" not in log.counts()  # a refused attempt cannot be ours: no lookup


def _lost_reply() -> Exception:
    return ReadTimeoutError(endpoint_url="http://s3.test")


def test_a_conditional_write_whose_every_reply_is_lost_says_it_may_have_been_applied(
    d: BasicS3Dict[Any],
) -> None:
    FaultInjector("PutObject", _lost_reply, times=None).install(client_of(d))
    with pytest.raises(BackendError, match="may have been applied"):
        d.setdefault_if("new", 1, *_ABSENT)
    with pytest.raises(BackendError) as err:
        d["k"] = "plain"  # an unconditional PUT is the same however often it is applied
    assert "may have been applied" not in str(err.value)


# ---------------------------------------------------------------- item 9: fail fast


class HungEndpoint:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a hung S3 endpoint)."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The endpoint URL."""
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._conns.append(conn)
            self.accepted += 1

    def close(self) -> None:
        """Stop accepting and drop every connection."""
        self._stop.set()
        self._thread.join()
        for conn in self._conns:
            conn.close()
        self._sock.close()


_CREDENTIALS: dict[str, Any] = dict(SERVER_CREDENTIALS)


@pytest.fixture
def hung() -> Iterator[HungEndpoint]:
    """A hung endpoint, closed after the test."""
    server = HungEndpoint()
    yield server
    server.close()


def test_defaults_bound_every_request(d: BasicS3Dict[Any]) -> None:
    config = client_of(d).meta.config
    assert (config.connect_timeout, config.read_timeout) == (s3.CONNECT_TIMEOUT, s3.READ_TIMEOUT)
    assert config.retries == {"mode": "standard", "total_max_attempts": s3.MAX_ATTEMPTS}
    # A hung endpoint: every attempt waits at most connect + read; standard backoff adds <= 1 s + 2 s.
    worst = s3.MAX_ATTEMPTS * (s3.CONNECT_TIMEOUT + s3.READ_TIMEOUT) + sum(range(1, s3.MAX_ATTEMPTS))
    assert worst <= 65


def test_client_config_merges_over_the_defaults(bucket: str, tmp_path: Path) -> None:
    d = _open("BasicS3Dict", bucket, tmp_path, client_config=Config(read_timeout=60))
    config = client_of(d).meta.config
    assert (config.connect_timeout, config.read_timeout) == (s3.CONNECT_TIMEOUT, 60)
    assert config.retries == {"mode": "standard", "total_max_attempts": s3.MAX_ATTEMPTS}
    d = _open("BasicS3Dict", bucket, tmp_path, client_config=Config(retries={"total_max_attempts": 7}))
    config = client_of(d).meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 7}
    assert (config.connect_timeout, config.read_timeout) == (s3.CONNECT_TIMEOUT, s3.READ_TIMEOUT)


def test_a_hung_endpoint_is_a_backend_error_after_the_default_attempts(hung: HungEndpoint) -> None:
    # Short timeouts of our own; the number of attempts is the default one.
    fast = Config(connect_timeout=0.5, read_timeout=0.5)
    with pytest.raises(BackendError, match="HeadBucket"):
        BasicS3Dict(bucket_name="hung", endpoint_url=hung.url, client_config=fast, **_CREDENTIALS)
    assert hung.accepted == s3.MAX_ATTEMPTS


@pytest.mark.slow
def test_a_hung_endpoint_is_a_backend_error_with_the_default_settings(hung: HungEndpoint) -> None:
    # About 3 x 15 s with the defaults (under a minute): slow, so not in the default run.
    with pytest.raises(BackendError, match="HeadBucket"):
        BasicS3Dict(bucket_name="hung", endpoint_url=hung.url, **_CREDENTIALS)
    assert hung.accepted == s3.MAX_ATTEMPTS
