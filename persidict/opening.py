"""``persidict.open``: open a store from a URL, a spec, a spec file or the environment.

What it takes (see :func:`parse_store`)::

    data/cache                       a folder (FileDirDict)
    file:///srv/data?format=json     a folder, with parameters
    s3://bucket/prefix?region=eu-west-1&endpoint=http://127.0.0.1:9000
                                     an S3 prefix (BasicS3Dict; S3Dict with cache_dir=...)
    lmdb:///srv/db.lmdb?ttl=3600     an LMDB database (LmdbDict)
    mem://name                       memory shared in this process (LocalDict), for tests
    @store.toml, @store.json         a spec file (the data of persidict.specs.spec_to_dict)
    {"store": "LmdbDict", ...}       a spec as JSON text
    a StoreSpec or a mapping         a spec (persidict.specs)
    None                             the value of $PERSIDICT_STORE (any of the above)

Query parameters: ``format`` and ``append_only`` everywhere; ``digest_len``,
``durable`` and ``use_locks`` for folders; ``endpoint``, ``region``,
``profile``, ``checksum``, ``cache_dir`` and ``digest_len`` (of the cache)
for S3; ``prefix``, ``durable``, ``readonly``, ``map_size``,
``max_map_size``, ``cache_size``, ``ttl`` and ``purge_at_open`` for LMDB;
``prefix`` and ``prune_interval`` for memory. S3 credentials come only from
the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...), never from a URL.
A bad URL or parameter raises a ValueError of one line naming it and why.
"""

from __future__ import annotations

import builtins
import json
import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, get_args
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from .specs import (
    SPEC_CLASSES,
    SPEC_ENV,
    BasicS3Spec,
    FileDirSpec,
    LmdbSpec,
    LocalSpec,
    S3Spec,
    StoreSpec,
    spec_from_dict,
)

if TYPE_CHECKING:
    from .persi_dict import PersiDict

SCHEMES = ("file", "s3", "lmdb", "mem")
"""The URL schemes ``open`` knows (a bare path is a folder)."""

_ALIASES = {
    "format": "serialization_format",
    "endpoint": "endpoint_url",
    "profile": "profile_name",
    "prefix": "root_prefix",
    "cache_dir": "base_dir",
}
"""Short query parameter names and the spec fields they set."""

_NOT_IN_URLS = {
    "file": {"base_dir"},
    "lmdb": {"base_dir"},
    "s3": {"bucket_name", "root_prefix"},
    "mem": {"name"},
}
"""Spec fields a URL gives by its path, not by a query parameter."""

_CREDENTIALS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open(target: str | os.PathLike[str] | StoreSpec | Mapping[str, Any] | None = None) -> PersiDict[Any]:
    """Open the store ``target`` names: a URL, a folder path, a spec, ``@file`` or None ($PERSIDICT_STORE).

    Raises a ValueError of one line naming a bad URL or parameter and why.
    """
    spec = parse_store(target)
    try:
        return spec.open()
    except TypeError as e:
        raise ValueError(str(e)) from None


def parse_store(target: str | os.PathLike[str] | StoreSpec | Mapping[str, Any] | None = None) -> StoreSpec:
    """The spec of the store ``target`` names (see the module docstring); opens nothing."""
    if target is None:
        text = os.environ.get(SPEC_ENV)
        if not text:
            raise ValueError(f"no store given and ${SPEC_ENV} is not set")
        return parse_store(text)
    if isinstance(target, tuple(SPEC_CLASSES.values())):
        return target  # type: ignore[return-value]
    if isinstance(target, Mapping):
        return spec_from_dict(target)
    if isinstance(target, os.PathLike):
        return FileDirSpec(base_dir=os.fspath(target))
    if not isinstance(target, str):
        raise ValueError(f"a store must be a URL, a path or a spec, not {type(target).__name__}")
    return _parse_text(target)


def _parse_text(text: str) -> StoreSpec:
    if not text.strip():
        raise ValueError("empty store URL")
    if text.startswith("@"):
        return load_spec(text[1:])
    if text.lstrip().startswith("{"):
        return spec_from_dict(_json_object(text, "store spec"))
    m = _SCHEME.match(text)
    if m is None:
        return FileDirSpec(base_dir=os.path.expanduser(text))
    scheme = m.group(1).lower()
    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown URL scheme {scheme!r} in {text!r}: use a folder path, file://, s3://, lmdb:// or mem://"
        )
    return _parse_url(text, scheme)


def load_spec(path: str | os.PathLike[str]) -> StoreSpec:
    """The spec in a JSON or TOML file (TOML if its name ends in .toml), as spec_to_dict writes it."""
    name = os.fspath(path)
    try:
        with builtins.open(name, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ValueError(f"cannot read store spec file {name!r}: {e.strerror or e}") from None
    if name.endswith(".toml"):
        import tomllib

        try:
            data: Any = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise ValueError(f"bad TOML in store spec file {name!r}: {e}") from None
        return spec_from_dict(data)
    return spec_from_dict(_json_object(raw, f"store spec file {name!r}"))


def _json_object(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"bad JSON in {what}: {e}") from None


def _parse_url(url: str, scheme: str) -> StoreSpec:
    try:
        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as e:
        raise ValueError(f"bad URL {url!r}: {e}") from None
    if parts.fragment:
        raise ValueError(f"bad URL {url!r}: a store URL has no #fragment")
    where = unquote(parts.netloc) + unquote(parts.path)
    if scheme == "s3":
        bucket, _, prefix = where.partition("/")
        if not bucket:
            raise ValueError(f"bad URL {url!r}: no bucket name (s3://bucket/prefix)")
        fields: dict[str, Any] = {"bucket_name": bucket, "root_prefix": prefix}
    elif scheme == "mem":
        fields = {"name": where}
    else:
        if not where:
            raise ValueError(
                f"bad URL {url!r}: no path ({scheme}:///absolute/path or {scheme}://relative/path)"
            )
        fields = {"base_dir": os.path.expanduser(where)}
    query = _query_fields(url, scheme, params)
    cls: type[StoreSpec] = {"file": FileDirSpec, "lmdb": LmdbSpec, "mem": LocalSpec}.get(scheme, BasicS3Spec)
    if scheme == "s3" and ("base_dir" in query or "digest_len" in query):
        cls = S3Spec
    fields.update(_typed(url, cls, query))
    try:
        return spec_from_dict({"store": cls.store, **fields})
    except ValueError as e:
        raise ValueError(f"bad URL {url!r}: {e}") from None


def _query_fields(url: str, scheme: str, params: list[tuple[str, str]]) -> dict[str, str]:
    """The query parameters by spec field name; a ValueError for an unknown or repeated one."""
    known = {a.name for c in _classes(scheme) for a in attrs.fields(c)} - _NOT_IN_URLS[scheme]
    out: dict[str, str] = {}
    for name, value in params:
        if name in _CREDENTIALS:
            raise ValueError(
                f"bad URL {url!r}: credentials ({name}) are never read from a URL; "
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment"
            )
        field = _ALIASES.get(name, name)
        if field not in known:
            shown = sorted({_short(f) for f in known})
            raise ValueError(f"unknown parameter {name!r} in {url!r} (known: {', '.join(shown)})")
        if field in out:
            raise ValueError(f"parameter {name!r} given twice in {url!r}")
        out[field] = value
    return out


def _classes(scheme: str) -> tuple[type[StoreSpec], ...]:
    return {"file": (FileDirSpec,), "lmdb": (LmdbSpec,), "mem": (LocalSpec,), "s3": (BasicS3Spec, S3Spec)}[
        scheme
    ]


def _short(field: str) -> str:
    return next((k for k, v in _ALIASES.items() if v == field), field)


def _typed(url: str, cls: type[StoreSpec], query: dict[str, str]) -> dict[str, Any]:
    """Query values converted to their fields' types (from the spec class's annotations)."""
    types = {a.name: a.type for a in attrs.fields(attrs.resolve_types(cls))}
    return {name: _value(url, _short(name), text, types[name]) for name, text in query.items()}


def _value(url: str, name: str, text: str, t: Any) -> Any:
    """``text`` as a value of type ``t`` (bool, int, float, str, tuple[str, ...], or one of them | None)."""
    args = get_args(t)
    if type(None) in args:
        if text.lower() in ("", "none", "null"):
            return None
        t = next(a for a in args if a is not type(None))
    try:
        if t is bool:
            return _bool(text)
        if t is int:
            return int(text)
        if t is float:
            return float(text)
    except ValueError:
        kind = {bool: "true or false", int: "an integer", float: "a number"}[t]
        raise ValueError(f"bad parameter {name}={text!r} in {url!r}: must be {kind}") from None
    return text


def _bool(text: str) -> bool:
    t = text.lower()
    if t in ("1", "true", "yes", "on"):
        return True
    if t in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)
