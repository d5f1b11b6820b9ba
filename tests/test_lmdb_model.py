"""The model-based test of persidict.testing, run on LmdbDict in several configurations."""

from __future__ import annotations

import itertools
import os
import tempfile
from typing import Any

from hypothesis import settings

from persidict.codecs import JsonCodec, Lz4Codec
from persidict.lmdb_dict import LmdbDict
from persidict.persi_dict import PersiDict
from persidict.testing import persidict_state_machine

EXAMPLES = int(os.environ.get("PERSIDICT_MODEL_EXAMPLES", "500"))
_SETTINGS = settings(max_examples=max(EXAMPLES // 8, 20), stateful_step_count=30, deadline=None)

_BASE = tempfile.mkdtemp(prefix="persidict-lmdb-model-")
_counter = itertools.count()


def _fresh_prefix() -> str:
    return f"example{next(_counter)}"


def _plain() -> PersiDict[Any]:
    root = LmdbDict[Any](base_dir=os.path.join(_BASE, "plain"), durable=False)
    return root.get_subdict(_fresh_prefix())


def _cached_json() -> PersiDict[Any]:
    return LmdbDict[Any](
        base_dir=os.path.join(_BASE, "cached"),
        durable=False,
        cache_size=16,
        serialization_format=JsonCodec(),
        root_prefix=(_fresh_prefix(),),
    )


def _lz4_atime_ttl() -> PersiDict[Any]:
    return LmdbDict[Any](
        base_dir=os.path.join(_BASE, "lz4"),
        durable=False,
        serialization_format=Lz4Codec(),
        track_atime=True,
        atime_flush_reads=7,
        ttl=10**6,
        root_prefix=(_fresh_prefix(), "deeper"),
    )


def _fresh_tiny_map() -> PersiDict[Any]:
    # A fresh database per example, starting with a map that must grow.
    return LmdbDict[Any](base_dir=tempfile.mkdtemp(dir=_BASE), durable=False, map_size=64 * 1024)


def _fresh_append_only() -> PersiDict[Any]:
    # A fresh database per example, its root dict: len() is LMDB's entry count.
    return LmdbDict[Any](base_dir=tempfile.mkdtemp(dir=_BASE), durable=False, append_only=True)


TestLmdbModelPlain = persidict_state_machine(_plain).TestCase
TestLmdbModelPlain.settings = _SETTINGS

TestLmdbModelCachedJson = persidict_state_machine(_cached_json).TestCase
TestLmdbModelCachedJson.settings = _SETTINGS

TestLmdbModelLz4AtimeTtl = persidict_state_machine(_lz4_atime_ttl).TestCase
TestLmdbModelLz4AtimeTtl.settings = _SETTINGS

TestLmdbModelTinyMap = persidict_state_machine(_fresh_tiny_map).TestCase
TestLmdbModelTinyMap.settings = settings(max_examples=10, stateful_step_count=30, deadline=None)

TestLmdbModelAppendOnly = persidict_state_machine(_fresh_append_only).TestCase
TestLmdbModelAppendOnly.settings = settings(max_examples=10, stateful_step_count=30, deadline=None)
