"""BasicS3Dict and S3Dict against raw boto3 doing the same work (the floor), on a local moto server.

For each operation: HTTP requests per operation and milliseconds per
operation for raw boto3 (same client, same configuration), BasicS3Dict and
S3Dict, and the ratios to the floor. The moto server runs in a separate
process on 127.0.0.1 (no network). The three contenders take turns key by
key (so load on the machine hits them alike); the best of several rounds is
kept.

    .venv/bin/python benchmarks/bench_s3.py [--n 100] [--rounds 5] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

os.environ.update(
    AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
)
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(_name, None)

from botocore.exceptions import ClientError  # noqa: E402

from persidict import ETAG_IS_THE_SAME, IF_ETAG_CHANGED, ITEM_NOT_AVAILABLE  # noqa: E402
from persidict.s3_dict import BasicS3Dict, S3Dict  # noqa: E402

BUCKET = "bench-bucket"
VALUE = {"payload": list(range(50)), "name": "x" * 200}


class Requests:
    """Counts HTTP requests sent by a client."""

    def __init__(self, client: Any) -> None:
        self.n = 0
        client.meta.events.register_first("before-send.s3", self)

    def __call__(self, **kwargs: Any) -> None:
        self.n += 1


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    """A moto server in its own process on a free port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


Op = Callable[[int], Any]


def raw_ops(client: Any, prefix: str) -> dict[str, tuple[Op | None, Op]]:
    """Raw boto3 doing each operation's work: (setup per key, operation per key)."""

    def key(i: int) -> str:
        return f"{prefix}/k{i}.pkl"

    def put(i: int) -> Any:
        return client.put_object(Bucket=BUCKET, Key=key(i), Body=pickle.dumps(VALUE))

    def get(i: int) -> Any:
        return pickle.loads(client.get_object(Bucket=BUCKET, Key=key(i))["Body"].read())

    etags: dict[int, str] = {}

    def remember(i: int) -> None:
        etags[i] = put(i)["ETag"]

    def get_if_changed(i: int) -> Any:
        try:
            return client.get_object(Bucket=BUCKET, Key=key(i), IfNoneMatch=etags[i])
        except ClientError as e:
            return e.response

    def insert(i: int) -> Any:
        new_key = f"{prefix}/new{i}.pkl"
        return client.put_object(Bucket=BUCKET, Key=new_key, Body=pickle.dumps(i), IfNoneMatch="*")

    def read_modify_write(i: int) -> Any:
        r = client.get_object(Bucket=BUCKET, Key=key(i))
        value = pickle.loads(r["Body"].read())
        return client.put_object(Bucket=BUCKET, Key=key(i), Body=pickle.dumps(value), IfMatch=r["ETag"])

    def cas(i: int) -> Any:
        # The conditional PUT straight away (one request when the ETag is current).
        out = client.put_object(Bucket=BUCKET, Key=key(i), Body=pickle.dumps(i), IfMatch=etags[i])
        etags[i] = out["ETag"]
        return out

    def cached_read(i: int) -> Any:
        # What S3Dict does on a hit: a conditional GET answered 304, then the local copy.
        with contextlib.suppress(ClientError):
            client.get_object(Bucket=BUCKET, Key=key(i), IfNoneMatch=etags[i])
        with open(local_copy, "rb") as f:
            return pickle.loads(f.read())

    local_copy = os.path.join(tempfile.mkdtemp(), "copy.pkl")
    with open(local_copy, "wb") as f:
        f.write(pickle.dumps(VALUE))

    return {
        "set  d[k] = v": (None, put),
        "get  d[k]": (put, get),
        "in   k in d": (put, lambda i: client.head_object(Bucket=BUCKET, Key=key(i))),
        "get_item_if unchanged (304)": (remember, get_if_changed),
        "insert if absent": (None, insert),
        "set_item_if ETag matches": (remember, cas),
        "transform_item": (put, read_modify_write),
        "S3Dict cached read": (remember, cached_read),
    }


def dict_ops(d: BasicS3Dict[Any]) -> dict[str, tuple[Op | None, Op]]:
    """The same work through a dict."""
    etags: dict[int, Any] = {}

    def put(i: int) -> None:
        d[f"k{i}"] = VALUE

    def remember(i: int) -> None:
        put(i)
        etags[i] = d.etag(f"k{i}")

    def cas(i: int) -> Any:
        r = d.set_item_if(f"k{i}", i, etags[i], ETAG_IS_THE_SAME)
        etags[i] = r.resulting_etag
        return r

    return {
        "set  d[k] = v": (None, put),
        "get  d[k]": (put, lambda i: d[f"k{i}"]),
        "in   k in d": (put, lambda i: f"k{i}" in d),
        "get_item_if unchanged (304)": (
            remember,
            lambda i: d.get_item_if(f"k{i}", etags[i], ETAG_IS_THE_SAME, retrieve_value=IF_ETAG_CHANGED),
        ),
        "insert if absent": (
            None,
            lambda i: d.setdefault_if(f"new{i}", i, ITEM_NOT_AVAILABLE, ETAG_IS_THE_SAME),
        ),
        "set_item_if ETag matches": (remember, cas),
        "transform_item": (put, lambda i: d.transform_item(f"k{i}", lambda v: v)),
        "S3Dict cached read": (put, lambda i: d[f"k{i}"]),
    }


Sample = tuple[float, float, float]
"""(wall ms per op, client CPU ms per op, requests per op)."""


def measure(contenders: dict[str, tuple[Op | None, Op]], n: int, counter: Requests) -> dict[str, Sample]:
    """Time each contender's op over keys 0..n-1, interleaved key by key (after all setups)."""
    for setup, _ in contenders.values():
        if setup is not None:
            for i in range(n):
                setup(i)
    totals = {who: [0.0, 0.0, 0] for who in contenders}
    for i in range(n):
        for who, (_, op) in contenders.items():
            before = counter.n
            t, c = time.perf_counter(), time.process_time()
            op(i)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            acc = totals[who]
            acc[0] += wall
            acc[1] += cpu
            acc[2] += counter.n - before
    return {who: (w / n * 1000, c / n * 1000, r / n) for who, (w, c, r) in totals.items()}


def keep_best(best: dict[tuple[str, str], Sample], where: tuple[str, str], sample: Sample) -> None:
    """Keep the fastest wall time and the lowest CPU time seen."""
    prev = best.get(where)
    if prev is None:
        best[where] = sample
    else:
        best[where] = (min(prev[0], sample[0]), min(prev[1], sample[1]), sample[2])


def timed(counter: Requests, fn: Callable[[], Any]) -> Sample:
    """One call of ``fn``."""
    counter.n = 0
    t, c = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000, float(counter.n)


def main() -> None:
    """Run the benchmark and print (and optionally write) a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100, help="operations per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()

    proc, endpoint = start_server()
    try:
        common = {"bucket_name": BUCKET, "endpoint_url": endpoint, "region": "us-east-1"}
        cache_dir = tempfile.mkdtemp(prefix="bench-s3-")
        best: dict[tuple[str, str], Sample] = {}
        names: list[str] = []
        for _ in range(args.rounds):
            run = uuid.uuid4().hex[:8]
            basic: BasicS3Dict[Any] = BasicS3Dict(**common, root_prefix=f"{run}/basic")
            cached: S3Dict[Any] = S3Dict(**common, root_prefix=f"{run}/cached", base_dir=cache_dir)
            client = basic._s3.client
            counter = Requests(client)
            contenders = {
                "raw": raw_ops(client, f"{run}/raw"),
                "basic": dict_ops(basic),
                "cached": dict_ops(cached),
            }
            names = list(contenders["raw"])
            for name in names:
                chosen = {
                    who: ops[name]
                    for who, ops in contenders.items()
                    if not (name == "S3Dict cached read" and who == "basic")
                }
                for who, sample in measure(chosen, args.n, counter).items():
                    keep_best(best, (name, who), sample)
            # Listing one page of n keys.
            for who, d in (("basic", basic), ("cached", cached)):
                keep_best(best, ("len (one page)", who), timed(counter, lambda d=d: len(d)))
            paginator = client.get_paginator("list_objects_v2")
            prefix = f"{run}/basic/"

            def raw_len(paginator: Any = paginator, prefix: str = prefix) -> int:
                pages = paginator.paginate(Bucket=BUCKET, Prefix=prefix)
                return sum(len(p.get("Contents", [])) for p in pages)

            keep_best(best, ("len (one page)", "raw"), timed(counter, raw_len))
        names.append("len (one page)")
    finally:
        proc.terminate()
        proc.wait()

    lines = [
        f"moto server on 127.0.0.1 (separate process), {args.n} ops x best of {args.rounds} rounds; "
        f"value = pickled dict of {len(pickle.dumps(VALUE))} bytes. Wall ms include the server; "
        "CPU ms are the client process's own time (what persidict adds shows there).",
        "",
        "| operation | requests raw / Basic / S3Dict | wall ms raw | Basic (x raw) | S3Dict (x raw) "
        "| CPU ms raw | Basic (x raw) | S3Dict (x raw) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cells(who: str, name: str, raw: Sample) -> tuple[str, str, str]:
        if (name, who) not in best:
            return "-", "-", "-"
        wall, cpu, req = best[(name, who)]
        return f"{req:g}", f"{wall:.2f} ({wall / raw[0]:.2f}x)", f"{cpu:.2f} ({cpu / raw[1]:.2f}x)"

    for name in names:
        raw = best[(name, "raw")]
        b_req, b_wall, b_cpu = cells("basic", name, raw)
        c_req, c_wall, c_cpu = cells("cached", name, raw)
        lines.append(
            f"| {name.strip()} | {raw[2]:g} / {b_req} / {c_req} | {raw[0]:.2f} | {b_wall} | {c_wall} "
            f"| {raw[1]:.2f} | {b_cpu} | {c_cpu} |"
        )
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
