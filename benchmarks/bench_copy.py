"""persidict.copy in bounded memory: 200 values of 1 MiB between every pair of stores (issue 14).

For each pair (source, destination) of memory (LocalDict), folder
(FileDirDict), LMDB (LmdbDict) and S3 (BasicS3Dict on a local moto server
over HTTP), a fresh Python process opens both stores, notes its memory, runs
``persidict.copy(src, dst, max_workers=4)`` and reports how much its peak
anonymous memory grew (``RssAnon``, sampled every 2 ms: heap and buffers,
not the pages of files or of LMDB's map that the kernel can drop). A
LocalDict destination keeps the copied values in the process by design, so
for it the figure is the peak growth minus what the process still holds
afterwards (the transient cost of copying). The peer, in the same run, is the obvious way to copy a store,
``dst.update(src)``, which loads the whole source first.

Target: the growth stays under 32 MiB plus ``max_workers`` values (36 MiB
here), printed as the ratio target / measured (>= 1 meets it).

    .venv/bin/python benchmarks/bench_copy.py [--n 200] [--size-kib 1024] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_batch_s3 import start_moto

KINDS = ("mem", "folder", "lmdb", "s3")
WORKERS = 4
BUCKET = "bench-copy"

CHILD = textwrap.dedent(
    """
    import json, os, sys, threading, time
    sys.path.insert(0, {root!r})
    from persidict import BasicS3Dict, FileDirDict, LmdbDict, LocalDict, copy

    def anon_kib() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        raise RuntimeError("no RssAnon")

    def open_store(kind, where):
        if kind == "folder":
            return FileDirDict(base_dir=where, durable=False)
        if kind == "lmdb":
            return LmdbDict(base_dir=where, durable=False)
        if kind == "s3":
            return BasicS3Dict(
                bucket_name={bucket!r}, root_prefix=where, endpoint_url={url!r}, region="us-east-1"
            )
        return LocalDict()

    src = open_store({src_kind!r}, {src_where!r})
    if {src_kind!r} == "mem":
        for i in range({n}):
            src[f"k{{i}}"] = os.urandom({size})
    dst = open_store({dst_kind!r}, {dst_where!r})
    peak = [anon_kib()]
    start = peak[0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], anon_kib())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    if {how!r} == "copy":
        copied = copy(src, dst, max_workers={workers}).copied
    else:
        dst.update(src)
        copied = len(dst)
    done.set()
    sampler.join()
    end = anon_kib()
    peak[0] = max(peak[0], end)
    kept = max(0, end - start) if {dst_kind!r} == "mem" else 0
    print(json.dumps({{"copied": copied, "grown_kib": peak[0] - start - kept}}))
    """
)


def fill_sources(tmp: Path, url: str, n: int, size: int) -> dict[str, str]:
    """Sources on disk and on S3 with ``n`` random values of ``size`` bytes; where each lives."""
    from persidict import BasicS3Dict, FileDirDict, LmdbDict

    where = {"mem": "", "folder": str(tmp / "src-folder"), "lmdb": str(tmp / "src-lmdb"), "s3": "src"}
    stores = [
        FileDirDict(base_dir=where["folder"], durable=False),
        LmdbDict(base_dir=where["lmdb"], durable=False),
        BasicS3Dict(bucket_name=BUCKET, root_prefix="src", endpoint_url=url, region="us-east-1"),
    ]
    for i in range(n):
        value = os.urandom(size)
        for d in stores:
            d[f"k{i}"] = value
    return where


def measure(
    src: str, dst: str, how: str, where: dict[str, str], tmp: Path, url: str, n: int, size: int
) -> int:
    """Peak memory growth in KiB of one copy in a fresh process."""
    dst_where = {"s3": f"dst-{src}-{how}", "mem": ""}.get(dst, str(tmp / f"dst-{src}-{dst}-{how}"))
    code = CHILD.format(
        root=str(Path(__file__).resolve().parent.parent),
        bucket=BUCKET,
        url=url,
        src_kind=src,
        src_where=where[src],
        dst_kind=dst,
        dst_where=dst_where,
        n=n,
        size=size,
        how=how,
        workers=WORKERS,
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    if result["copied"] != n:
        raise RuntimeError(f"{src} -> {dst} ({how}) copied {result['copied']} of {n}")
    return int(result["grown_kib"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size-kib", type=int, default=1024)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    size = args.size_kib * 1024
    target_mib = 32 + WORKERS * size / 2**20
    server, port = start_moto()
    url = f"http://127.0.0.1:{port}"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    lines = [
        f"{args.n} values of {args.size_kib} KiB; peak memory growth in MiB; target < {target_mib:.0f} MiB "
        f"(ratio = target / copy: >= 1 meets it)",
        "",
        "| source | destination | copy() MiB | dst.update(src) MiB | ratio to target |",
        "|---|---|---:|---:|---:|",
    ]
    try:
        import boto3

        boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as t:
            tmp = Path(t)
            where = fill_sources(tmp, url, args.n, size)
            for src in KINDS:
                for dst in KINDS:
                    ours = measure(src, dst, "copy", where, tmp, url, args.n, size) / 1024
                    naive = ""
                    if src == "folder" or dst == "folder":
                        naive = f"{measure(src, dst, 'update', where, tmp, url, args.n, size) / 1024:.1f}"
                    ratio = target_mib / max(ours, 0.1)
                    row = f"| {src} | {dst} | {ours:.1f} | {naive} | {ratio:.2f} |"
                    lines.append(row)
                    print(row, flush=True)
    finally:
        server.kill()
        server.wait()
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
