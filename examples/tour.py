"""A short walk through persidict: run it with `make demo`.

It shows keys, jokers, conditional operations, timestamps and subdicts on
an in-memory LocalDict, on a FileDirDict in a temporary folder and on S3 (a
moto server on 127.0.0.1, when moto is installed), then a composed stack of
wrappers and LmdbDict. Everything it writes goes to one temporary folder,
removed at the end, and to the moto server's memory: it leaves nothing behind.
"""

from __future__ import annotations

import datetime
import tempfile
import time
from typing import Any

from persidict import (
    ANY_ETAG,
    DELETE_CURRENT,
    ETAG_HAS_CHANGED,
    ETAG_IS_THE_SAME,
    ITEM_NOT_AVAILABLE,
    KEEP_CURRENT,
    ExpiringDict,
    FileDirDict,
    LmdbDict,
    LocalDict,
    MutableDictCached,
    NonEmptySafeStrTuple,
    PersiDict,
    WriteOnceDict,
)


def show(label: str, value: Any) -> None:
    """Print one step of the tour."""
    print(f"  {label:<46} {value!r}")


def walk(d: PersiDict[Any]) -> None:
    """Exercise the main features of any PersiDict."""
    print(f"\n== {type(d).__name__} ==")

    # Keys: a str, or a sequence of safe strings (a hierarchy).
    d["Eliza"] = "MIT Eliza was a mock Rogerian psychotherapist."
    d["Eliza", "year"] = 1965
    d[("Eliza", "authors")] = ["Joseph Weizenbaum"]
    d["Shoebox", "year"] = 1961
    show("len(d)", len(d))
    show("sorted keys", sorted("/".join(k) for k in d))
    show("('Eliza', 'year') in d", ("Eliza", "year") in d)
    show("keys are NonEmptySafeStrTuple", NonEmptySafeStrTuple("Eliza", "year") in d)
    try:
        d["no/slashes"] = 1
    except ValueError as e:
        show("an unsafe key is refused", str(e))

    # Jokers: commands in place of values.
    d["Eliza", "year"] = KEEP_CURRENT
    show("after d[k] = KEEP_CURRENT", d["Eliza", "year"])
    d["Shoebox", "year"] = DELETE_CURRENT
    show("after d[k] = DELETE_CURRENT, k in d", ("Shoebox", "year") in d)

    # Conditional operations: insert-if-absent, then compare-and-swap.
    r = d.setdefault_if("token", "v1", ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    show("setdefault_if on an absent key: satisfied", r.condition_was_satisfied)
    r = d.setdefault_if("token", "v2", ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME)
    show("... again: satisfied / value kept", (r.condition_was_satisfied, r.new_value))
    etag = d.etag("token")
    r = d.set_item_if("token", "v3", etag, ETAG_IS_THE_SAME)
    show("set_item_if with the current ETag", (r.condition_was_satisfied, r.new_value))
    r = d.set_item_if("token", "v4", etag, ETAG_IS_THE_SAME)
    show("set_item_if with a stale ETag", (r.condition_was_satisfied, r.new_value))
    r = d.get_item_if("token", r.actual_etag, ETAG_HAS_CHANGED)
    show("get_item_if(ETAG_HAS_CHANGED), unchanged", (r.condition_was_satisfied, r.new_value))

    # A compare-and-swap loop, and transform_item which is that loop built in.
    while True:
        r = d.get_item_if("count", ITEM_NOT_AVAILABLE, ANY_ETAG)
        new = 1 if r.new_value is ITEM_NOT_AVAILABLE else r.new_value + 1
        if d.set_item_if("count", new, r.actual_etag, ETAG_IS_THE_SAME).condition_was_satisfied:
            break
    result = d.transform_item("count", lambda v: v + 1)
    show("count after CAS loop + transform_item", result.new_value)

    # Timestamps.
    d["event", "1"] = "started"
    time.sleep(0.01)
    d["event", "2"] = "finished"
    events = d.get_subdict("event")
    show("events, oldest first", events.oldest_keys())
    show("newest event", events.newest_values(max_n=1))
    show("timestamp is POSIX seconds", abs(time.time() - d.timestamp(("event", "2"))) < 2)

    # Subdicts: views sharing the same storage.
    eliza = d.get_subdict("Eliza")
    eliza["country"] = "USA"
    show("written through the subdict", d["Eliza", "country"])
    show("first-level subdicts", sorted(d.subdicts()))
    show("a random key", d.random_key() is not None)


def stack(tmp: str) -> None:
    """Wrappers compose: a validated cache, write-once results, expiring sessions."""
    print("\n== composed stacks ==")
    shared: FileDirDict[Any] = FileDirDict(base_dir=f"{tmp}/shared")
    store = MutableDictCached(main_dict=shared, data_cache=LocalDict(), etag_cache=LocalDict())
    store["config"] = {"threads": 4}
    FileDirDict(base_dir=f"{tmp}/shared")["config"] = {"threads": 8}  # "another process"
    show("cached read after a write behind its back", store["config"])

    results = WriteOnceDict(
        wrapped_dict=FileDirDict(base_dir=f"{tmp}/results", append_only=True),
        p_consistency_checks=0.1,
    )
    results["sha256-ab12"] = [1, 2, 3]
    results["sha256-ab12"] = [1, 2, 3]  # ignored: the first write wins
    show("write-once result", results["sha256-ab12"])

    sessions = ExpiringDict(
        wrapped_dict=FileDirDict(base_dir=f"{tmp}/sessions"), ttl=datetime.timedelta(days=1)
    )
    sessions["alice"] = "token"
    show("live sessions, purged", (len(sessions), sessions.purge()))


def lmdb_tour(tmp: str) -> None:
    """LmdbDict: the single-machine speed store (one LMDB file, many processes)."""
    print("\n== LmdbDict ==")
    d: LmdbDict[Any] = LmdbDict(base_dir=f"{tmp}/lmdb", durable=False, track_atime=True, cache_size=100)
    with d.transaction():  # one LMDB write transaction: all or nothing
        for i in range(1000):
            d["runs", str(i)] = {"id": i}
    show("len(d) after one transaction", len(d))
    d.update({"a": 1, "b": 2})  # update() is one transaction too
    counter = d.transform_item("counter", lambda v: 1 if v is ITEM_NOT_AVAILABLE else v + 1)
    show("transform_item -> new value", counter.new_value)
    long_key = ("k" * 250, "v" * 250, "w" * 100)  # over LMDB's 511-byte key limit: stored hashed
    d[long_key] = "still a normal key"
    round_trip = d[long_key] == "still a normal key" and long_key in set(d)
    show("a 600-byte key round-trips and is listed", round_trip)
    _ = d["a"]  # reads are recorded in memory and written in batches
    meta = d.metadata("a")
    show("metadata: ctime <= mtime, atime recorded", (meta.ctime <= meta.mtime, meta.atime is not None))
    d.close()  # flush access times
    short_lived: LmdbDict[Any] = LmdbDict(**{**d.get_params(), "ttl": 3600.0})
    show("same database, with a 1-hour ttl", short_lived["a"])
    short_lived.close()


def s3_tour(tmp: str) -> None:
    """BasicS3Dict and S3Dict against a local moto server (skipped when moto is not installed)."""
    import logging
    import os

    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        print("\n== S3 (skipped: pip install 'moto[server]' to run it locally) ==")
        return
    from persidict import BasicS3Dict, S3Dict

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"\n(S3 below is a local moto server at http://{host}:{port}, in memory: nothing goes to AWS)")
    aws = {
        "endpoint_url": f"http://{host}:{port}",  # or AWS_ENDPOINT_URL; omit it for AWS itself
        "region": "us-east-1",
        "aws_access_key_id": "testing",  # or the usual AWS_* variables / profile_name=...
        "aws_secret_access_key": "testing",
    }
    try:
        d: BasicS3Dict[Any] = BasicS3Dict(bucket_name="tour-bucket", root_prefix="runs", **aws)
        walk(d)  # the same tour: one object per key, under s3://tour-bucket/runs/
        d["counter"] = 0
        for _ in range(3):  # 1 GET + 1 PUT with If-Match each: atomic across machines
            d.transform_item("counter", lambda v: v + 1)
        show("counter after 3 atomic increments", d["counter"])
        cache = os.path.join(tmp, "s3-cache")
        cached: S3Dict[Any] = S3Dict(bucket_name="tour-bucket", root_prefix="runs", base_dir=cache, **aws)
        show("S3Dict reads it (then 304s)", cached["counter"])
    finally:
        server.stop()


def main() -> None:
    """Run the tour on memory and on a folder, then on composed stacks."""
    walk(LocalDict())
    with tempfile.TemporaryDirectory(prefix="persidict-tour-") as tmp:
        print(f"\n(folders and LMDB databases below live in {tmp}, removed at the end)")
        store: FileDirDict[Any] = FileDirDict(base_dir=f"{tmp}/walk")
        walk(store)
        reopened: FileDirDict[Any] = FileDirDict(base_dir=f"{tmp}/walk")
        show("reopened folder: len", len(reopened))
        stack(tmp)
        lmdb_tour(tmp)
        s3_tour(tmp)
    print(f"\nremoved {tmp}: the tour left nothing behind")


if __name__ == "__main__":
    main()
