"""The model-based test (persidict.testing) on FileDirDict, durable and not, locked and not."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from hypothesis import settings

from persidict.file_dir_dict import FileDirDict
from persidict.persi_dict import PersiDict
from persidict.testing import persidict_state_machine

_SETTINGS = settings(max_examples=60, stateful_step_count=30, deadline=None)
_SIDE = settings(max_examples=20, stateful_step_count=30, deadline=None)


def _factory(**params: Any) -> Callable[[], PersiDict[Any]]:
    def make() -> PersiDict[Any]:
        return FileDirDict(base_dir=tempfile.mkdtemp(prefix="fdd_model_"), **params)

    return make


def _drop(d: PersiDict[Any]) -> None:
    assert isinstance(d, FileDirDict)
    shutil.rmtree(d.base_dir, ignore_errors=True)


def _under_a_prefix() -> PersiDict[Any]:
    root: FileDirDict[Any] = FileDirDict(base_dir=tempfile.mkdtemp(prefix="fdd_model_"), durable=False)
    root["outside", "z"] = "not mine"
    return root.get_subdict("inside")


def _drop_parent(d: PersiDict[Any]) -> None:
    assert isinstance(d, FileDirDict)
    shutil.rmtree(d.base_dir.rsplit("/", 1)[0], ignore_errors=True)


TestFileDirDictDurable = persidict_state_machine(_factory(durable=True), cleanup=_drop).TestCase
TestFileDirDictDurable.settings = _SETTINGS

TestFileDirDictNotDurable = persidict_state_machine(_factory(durable=False), cleanup=_drop).TestCase
TestFileDirDictNotDurable.settings = _SETTINGS

TestFileDirDictNoLocks = persidict_state_machine(
    _factory(durable=False, use_locks=False), cleanup=_drop
).TestCase
TestFileDirDictNoLocks.settings = _SIDE

TestFileDirDictJson = persidict_state_machine(
    _factory(durable=False, serialization_format="json"), cleanup=_drop
).TestCase
TestFileDirDictJson.settings = _SIDE

TestFileDirDictText = persidict_state_machine(
    _factory(durable=False, serialization_format="txt"), cleanup=_drop
).TestCase
TestFileDirDictText.settings = _SIDE

TestFileDirDictAppendOnly = persidict_state_machine(
    _factory(durable=False, append_only=True), cleanup=_drop
).TestCase
TestFileDirDictAppendOnly.settings = _SIDE

TestFileDirDictNoDigest = persidict_state_machine(
    _factory(durable=False, digest_len=0), cleanup=_drop
).TestCase
TestFileDirDictNoDigest.settings = _SIDE

TestFileDirDictSubdict = persidict_state_machine(_under_a_prefix, cleanup=_drop_parent).TestCase
TestFileDirDictSubdict.settings = _SIDE
