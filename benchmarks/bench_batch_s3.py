"""Batch operations on S3 at a region's latency: 500 small objects read, written and deleted (issue 14).

A moto server runs in its own process on 127.0.0.1, reached through a small
HTTP proxy (this script, in a second process) that holds every request
for 20 ms before passing it on, the round trip of a real region. Against it,
for reading, writing and deleting ``--n`` (500) small objects:

- ``sequential``: a loop of ``d[k]``, ``d[k] = v``, ``del d[k]`` on a BasicS3Dict;
- ``batch``: ``get_many``, ``set_many``, ``discard_many`` on a BasicS3Dict
  (its default concurrency, 16 requests at once);
- ``S3Dict batch``: the same on an S3Dict (which also keeps a local copy);
- ``obstore``: obstore's async API (``get_async`` + ``bytes_async`` and
  unpickling, ``put_async``, one ``delete_async`` of every path) with the
  same concurrency (an asyncio.Semaphore of 16). obstore is not a
  dependency of persidict: install it for the benchmark only with
  ``.venv/bin/pip install obstore``; without it that column is skipped.

The server and the proxy stand for a remote region, so they run at a
higher priority than the clients when the script may raise it (niceness
-10, as root): a client's own CPU use then does not slow "the region" down,
as it would not against S3. (moto's server closes its connection after
every answer; the proxy keeps the clients' connections open, as S3 does.)

Each round runs every contender on its own keys, in an order that rotates
from round to round; the median of ``--rounds`` (at least 3) is reported,
with the HTTP requests each operation sent (counted by the proxy). Targets:
batch read and write >= 5x the sequential loop and >= 0.8x obstore; batch
delete of 500 keys in at most 2 requests.

    .venv/bin/python benchmarks/bench_batch_s3.py [--n 500] [--rounds 3] [--latency-ms 20] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

os.environ.update(
    AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
)
for _name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
    os.environ.pop(_name, None)

from persidict.s3_dict import BasicS3Dict, S3Dict  # noqa: E402

BUCKET = "bench-batch"
VALUE = {"payload": list(range(20)), "name": "x" * 100}
WORKERS = 16
STATS_PATH = "/__proxy_stats__"

# ---------------------------------------------------------------- the delaying proxy


class _Proxy:
    """An HTTP/1.1 proxy to ``127.0.0.1:target_port`` holding each request ``delay`` seconds; counts requests.

    Clients keep their connections open, as S3 lets them (moto's server
    closes its connection after every answer, so each request gets a fresh
    upstream connection, and the answer goes back framed by its length).
    ``Expect: 100-continue`` is answered at once. ``GET /__proxy_stats__``
    is answered by the proxy: the requests counted so far, by kind, as JSON.
    """

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.counts: dict[str, int] = {}

    def count(self, method: str, target: str) -> None:
        kind = method
        if "?delete" in target:
            kind = "DeleteObjects"
        elif "list-type=2" in target:
            kind = "ListObjectsV2"
        self.counts[kind] = self.counts.get(kind, 0) + 1

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self.one_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Relay one request and its answer; whether the client's connection stays open."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, headers = _parse_head(head)
        method, target, _ = request_line.split(" ", 2)
        if target == STATS_PATH:
            body = json.dumps(self.counts).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            return True
        if headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        body = await _read_body(reader, headers)
        self.count(method, target)
        await asyncio.sleep(self.delay)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        up_writer.write(_without(head, ("expect", "connection")) + body)
        await up_writer.drain()
        answer = await _read_answer(up_reader, method)
        up_writer.close()
        writer.write(answer)
        await writer.drain()
        return headers.get("connection", "").lower() != "close"


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """The first line and the headers (lower-case names) of an HTTP head."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _without(head: bytes, names: tuple[str, ...]) -> bytes:
    """``head`` without the headers called ``names`` (lower case)."""
    lines = head.split(b"\r\n")
    kept = [ln for ln in lines if ln.split(b":", 1)[0].strip().lower().decode("latin-1") not in names]
    return b"\r\n".join(kept)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """A request's body: Content-Length bytes, or chunks passed on as they are."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raw = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            raw += size_line
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    raw += trailer
                return raw + b"\r\n"
            raw += await reader.readexactly(size + 2)
    return await reader.readexactly(int(headers.get("content-length", "0")))


async def _read_answer(reader: asyncio.StreamReader, method: str) -> bytes:
    """The server's answer, framed for a kept-alive connection (by its length, without Connection: close).

    Read by its own framing, not to the end of the connection: moto's server
    closes the connection some milliseconds after answering.
    """
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, headers = _parse_head(head)
    status = int(status_line.split(" ", 2)[1])
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_body(reader, headers)
    else:
        body = await reader.read()
        head = head[:-2] + b"Content-Length: %d\r\n\r\n" % len(body)
    return _without(head, ("connection",)) + body


def run_proxy(listen_port: int, target_port: int, delay_ms: float) -> None:
    """Serve the proxy forever (the ``--proxy`` mode of this script, in its own process)."""

    async def main() -> None:
        proxy = _Proxy(target_port, delay_ms / 1000)
        server = await asyncio.start_server(proxy.handle, "127.0.0.1", listen_port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"nothing listens on port {port}")


SERVER_PRIORITY = -10
"""The niceness of the server and the proxy, when allowed: the "region" does not wait for the client's CPU."""


def _raise_priority() -> None:
    """In a child process: run ahead of the clients (needs the privilege; otherwise left as is)."""
    with contextlib.suppress(OSError):
        os.nice(SERVER_PRIORITY)


def start_moto() -> tuple[subprocess.Popen[bytes], int]:
    """A moto server in its own process on a free port of 127.0.0.1."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_raise_priority,
    )
    _wait_for(port, proc)
    return proc, port


def start_proxy(target_port: int, latency_ms: float) -> tuple[subprocess.Popen[bytes], str]:
    """This script in ``--proxy`` mode, in front of ``target_port``; its URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--proxy", str(port), str(target_port), str(latency_ms)],
        stdout=subprocess.DEVNULL,
        preexec_fn=_raise_priority,
    )
    _wait_for(port, proc)
    return proc, f"http://127.0.0.1:{port}"


def proxy_counts(url: str) -> dict[str, int]:
    """The requests the proxy has passed on so far, by kind."""
    with urllib.request.urlopen(url + STATS_PATH, timeout=10) as r:
        counts: dict[str, int] = json.loads(r.read())
        return counts


# ---------------------------------------------------------------- contenders

Op = Callable[[list[str]], Any]
"""One operation over all keys of a round (``read`` / ``write`` / ``delete``)."""


def ours_sequential(d: Any) -> dict[str, Op]:
    """A loop of single-key operations."""

    def write(keys: list[str]) -> None:
        for k in keys:
            d[k] = VALUE

    def read(keys: list[str]) -> None:
        for k in keys:
            assert d[k] == VALUE

    def delete(keys: list[str]) -> None:
        for k in keys:
            del d[k]

    return {"write": write, "read": read, "delete": delete}


def ours_batch(d: Any) -> dict[str, Op]:
    """The batch operations at their default concurrency."""

    def read(keys: list[str]) -> None:
        got = d.get_many(keys)
        assert len(got) == len(keys)

    def delete(keys: list[str]) -> None:
        assert d.discard_many(keys) == len(keys)

    return {"write": lambda keys: d.set_many({k: VALUE for k in keys}), "read": read, "delete": delete}


def obstore_store(url: str) -> tuple[Any, Any] | None:
    """(the obstore module, its S3Store of the benchmark's bucket at ``url``); None when not installed."""
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        return None
    store = S3Store(
        BUCKET,
        endpoint=url,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )
    return obstore, store


def obstore_ops(url: str) -> dict[str, Op] | None:
    """obstore's async API with ``WORKERS`` requests in flight; None when obstore is not installed."""
    found = obstore_store(url)
    if found is None:
        return None
    obstore, store = found
    data = pickle.dumps(VALUE)

    async def bounded(calls: list[Callable[[], Any]]) -> list[Any]:
        sem = asyncio.Semaphore(WORKERS)

        async def one(call: Callable[[], Any]) -> Any:
            async with sem:
                return await call()

        return await asyncio.gather(*(one(c) for c in calls))

    async def get(path: str) -> Any:
        r = await obstore.get_async(store, path)
        return pickle.loads(bytes(await r.bytes_async()))

    def write(keys: list[str]) -> None:
        asyncio.run(bounded([lambda p=p: obstore.put_async(store, p, data) for p in keys]))

    def read(keys: list[str]) -> None:
        values = asyncio.run(bounded([lambda p=p: get(p) for p in keys]))
        assert all(v == VALUE for v in values)

    async def delete_all(keys: list[str]) -> None:
        await obstore.delete_async(store, keys)

    def delete(keys: list[str]) -> None:
        asyncio.run(delete_all(keys))

    return {"write": write, "read": read, "delete": delete}


# ---------------------------------------------------------------- measuring

OPERATIONS = ("write", "read", "delete")


def run(n: int, rounds: int, url: str, cache_dir: str) -> dict[tuple[str, str], list[tuple[float, int]]]:
    """``{(contender, operation): [(seconds, requests) per round]}``, rounds interleaved."""
    params = {"bucket_name": BUCKET, "endpoint_url": url, "region": "us-east-1"}
    d_seq: BasicS3Dict[Any] = BasicS3Dict(root_prefix="seq", **params)
    d_batch: BasicS3Dict[Any] = BasicS3Dict(root_prefix="batch", **params)
    d_cached: S3Dict[Any] = S3Dict(root_prefix="cached", base_dir=cache_dir, **params)
    contenders: dict[str, tuple[dict[str, Op], Callable[[int], list[str]]]] = {
        "sequential": (ours_sequential(d_seq), lambda r: [f"r{r}k{i}" for i in range(n)]),
        "batch": (ours_batch(d_batch), lambda r: [f"r{r}k{i}" for i in range(n)]),
        "S3Dict batch": (ours_batch(d_cached), lambda r: [f"r{r}k{i}" for i in range(n)]),
    }
    ob = obstore_ops(url)
    if ob is None:
        print("obstore is not installed: its column is skipped (pip install obstore)", file=sys.stderr)
    else:
        contenders["obstore"] = (ob, lambda r: [f"obstore/r{r}k{i}.pkl" for i in range(n)])
    samples: dict[tuple[str, str], list[tuple[float, int]]] = {}
    names = list(contenders)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for who in order:
            ops, keys_of = contenders[who]
            keys = keys_of(r)
            for op in OPERATIONS:
                before = sum(proxy_counts(url).values())
                t = time.perf_counter()
                ops[op](keys)
                seconds = time.perf_counter() - t
                sent = sum(proxy_counts(url).values()) - before
                samples.setdefault((who, op), []).append((seconds, sent))
                print(f"round {r + 1} {who:>13} {op:>6}: {seconds:7.3f} s, {sent} requests", file=sys.stderr)
    return samples


def report(
    samples: dict[tuple[str, str], list[tuple[float, int]]], n: int, rounds: int, latency: float
) -> str:
    """A markdown table of medians, with the ratios the targets speak of."""
    who_all = list(dict.fromkeys(w for w, _ in samples))
    med = {k: statistics.median(s for s, _ in v) for k, v in samples.items()}
    reqs = {k: statistics.median(q for _, q in v) for k, v in samples.items()}
    lines = [
        f"{n} objects, {latency:g} ms added to every request, median of {rounds} interleaved rounds; "
        f"seconds (requests) per operation over all objects",
        "",
        "| operation | " + " | ".join(who_all) + " | batch vs sequential | batch vs obstore |",
        "|---" * (len(who_all) + 3) + "|",
    ]
    for op in OPERATIONS:
        cells = [f"{med[w, op]:.3f} s ({reqs[w, op]:g})" for w in who_all]
        speedup = med["sequential", op] / med["batch", op]
        vs_ob = f"{med['obstore', op] / med['batch', op]:.2f}x" if ("obstore", op) in med else "-"
        lines.append(f"| {op} | " + " | ".join(cells) + f" | {speedup:.1f}x | {vs_ob} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, start the server and the proxy, run and report."""
    if len(sys.argv) == 5 and sys.argv[1] == "--proxy":
        run_proxy(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    moto, moto_port = start_moto()
    proxy, url = start_proxy(moto_port, args.latency_ms)
    raised = os.getpriority(os.PRIO_PROCESS, moto.pid) < os.getpriority(os.PRIO_PROCESS, 0)
    print(f"server and proxy at a higher priority than the clients: {raised}", file=sys.stderr)
    try:
        with tempfile.TemporaryDirectory() as cache_dir:
            samples = run(args.n, max(1, args.rounds), url, os.path.join(cache_dir, uuid.uuid4().hex))
        table = report(samples, args.n, args.rounds, args.latency_ms)
        print(table)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(table)
    finally:
        proxy.terminate()
        moto.terminate()


if __name__ == "__main__":
    main()
