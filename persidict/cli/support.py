"""What the commands share: opening stores, keys as text, item metadata, output, durations."""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import attrs
import click

from . import CliError, color


@attrs.frozen
class Entry:
    """One item's metadata: its key, modification time and, when known, size and ETag."""

    key: tuple[str, ...]
    mtime: float
    size: int | None = None
    etag: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The entry as a JSON object (time as UTC ISO 8601 and POSIX seconds)."""
        return {
            "key": key_text(self.key),
            "size": self.size,
            "time": iso(self.mtime),
            "timestamp": self.mtime,
            "etag": self.etag,
        }


def open_store(spec: Any, *, must_exist: bool) -> Any:
    """Open the store of ``spec``; when ``must_exist``, a local one that is not there is an error."""
    from ..specs import BasicS3Spec, FileDirSpec, LmdbSpec, S3Spec

    if must_exist and isinstance(spec, FileDirSpec | LmdbSpec) and not os.path.exists(spec.base_dir):
        raise CliError(f"no store at {spec.base_dir!r} (no such file or directory)")
    if must_exist and isinstance(spec, BasicS3Spec | S3Spec) and _bucket_is_missing(spec):
        # (opening an S3 store creates a missing bucket: a read must not, e.g. on a misspelt name)
        raise CliError(f"no store at s3://{spec.bucket_name} (no such bucket)")
    try:
        return spec.open()
    except (ValueError, TypeError) as e:
        raise CliError(f"cannot open {spec.store}: {e}", 2) from e


def _bucket_is_missing(spec: Any) -> bool:
    """One HeadBucket with the spec's settings: whether the bucket is known to be missing (404)."""
    import boto3
    from botocore.exceptions import ClientError

    session = boto3.session.Session(profile_name=spec.profile_name, region_name=spec.region)
    client = session.client("s3", endpoint_url=spec.endpoint_url)
    try:
        client.head_bucket(Bucket=spec.bucket_name)
    except ClientError as e:
        return str(e.response.get("Error", {}).get("Code")) in ("404", "NoSuchBucket", "NotFound")
    return False


def key_text(key: tuple[str, ...]) -> str:
    """A key as the command line writes it: its parts joined by ``/``."""
    return "/".join(key)


def iso(t: float) -> str:
    """POSIX seconds as UTC ISO 8601 with a Z (e.g. 2026-12-03T14:05:09.123456Z)."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat().replace("+00:00", "Z")


def entries(d: Any, *, detailed: bool) -> Iterator[Entry]:
    """The items of ``d`` with their times, and sizes and ETags when ``detailed``."""
    if detailed and _lists_stats(d):
        key_of = d._layout.key_of
        for loc, st in d._backend.list_stats(d._root):
            k = key_of(loc)
            if k is not None:
                yield Entry(tuple(k), st.mtime, st.size, st.etag)
        return
    for k, t in d.keys_and_timestamps():
        yield stat_entry(d, tuple(k), t) if detailed else Entry(tuple(k), t)


def _lists_stats(d: Any) -> bool:
    """Whether ``d`` is an S3 store, whose listing gives sizes and ETags (one request per 1,000 items)."""
    return type(d).__module__ == "persidict.s3_dict" and hasattr(d, "_backend")


def stat_entry(d: Any, key: tuple[str, ...], mtime: float | None = None) -> Entry:
    """The metadata of one item (a KeyError when it is gone)."""
    backend = getattr(d, "_backend", None)
    if backend is not None and hasattr(d, "_target"):
        st = backend.stat(d._target(d_key(key)).loc)
        if st is None:
            raise KeyError(key)
        return Entry(key, st.mtime, st.size, st.etag)
    t = d.timestamp(key) if mtime is None else mtime
    return Entry(key, t, None, str(d.etag(key)))


def d_key(key: tuple[str, ...]) -> Any:
    """``key`` as the store's key type."""
    from ..keys import to_key

    return to_key(key)


def raw_bytes(d: Any, key: tuple[str, ...]) -> bytes:
    """The stored bytes of an item, as the store keeps them (a KeyError when absent)."""
    backend = getattr(d, "_backend", None)
    if backend is None or not hasattr(d, "_target"):
        raise CliError(f"{type(d).__name__} keeps objects, not bytes: --raw is not available", 2)
    answer = backend.read(d._target(d_key(key)).loc)
    if answer is None:
        raise KeyError(key)
    data, _ = answer
    return bytes(data)


def emit_json(obj: Any) -> None:
    """Write one JSON object on a line of stdout."""
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


def echo(text: str) -> None:
    """Write a line of text on stdout."""
    click.echo(text, color=color())


def note(text: str) -> None:
    """Write a line of information on stderr."""
    click.echo(text, err=True, color=color())


def progress_wanted() -> bool:
    """Whether to show progress bars: only when stderr is a terminal and tqdm is installed."""
    if not sys.stderr.isatty():
        return False
    from importlib.util import find_spec

    return find_spec("tqdm") is not None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``12h``, ``7d`` or ``2w``; ValueError otherwise."""
    m = _DURATION.match(text)
    if m is None:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 12h, 7d or 2w")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def value_json(key: tuple[str, ...], value: Any, etag: str | None) -> dict[str, Any]:
    """A value as a JSON object: ``value`` when it is JSON data, else its ``repr``, with its type."""
    out: dict[str, Any] = {"key": key_text(key), "etag": etag, "type": type(value).__name__}
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        out["repr"] = repr(value)
    else:
        out["value"] = value
    return out
