"""The model-based test (persidict.testing) on LocalDict, in several configurations."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import settings

from persidict import LocalDict, PersiDict
from persidict.testing import persidict_state_machine

EXAMPLES = int(os.environ.get("PERSIDICT_MODEL_EXAMPLES", "500"))
"""Examples for the main configuration (CI runs the default, 500)."""

_MAIN = settings(max_examples=EXAMPLES, stateful_step_count=50, deadline=None)
_SIDE = settings(max_examples=max(EXAMPLES // 5, 10), stateful_step_count=25, deadline=None)


def _plain() -> PersiDict[Any]:
    return LocalDict()


def _json() -> PersiDict[Any]:
    return LocalDict(serialization_format="json")


def _text() -> PersiDict[Any]:
    return LocalDict(serialization_format="txt")


def _append_only() -> PersiDict[Any]:
    return LocalDict(append_only=True)


def _ints_only() -> PersiDict[Any]:
    return LocalDict(base_class_for_values=int)


def _under_a_prefix() -> PersiDict[Any]:
    # A view one level down a shared store, with a sibling item outside it.
    root: LocalDict[Any] = LocalDict()
    root["outside", "z"] = "not mine"
    return root.get_subdict("inside")


TestLocalDict = persidict_state_machine(_plain).TestCase
TestLocalDict.settings = _MAIN

TestLocalDictJson = persidict_state_machine(_json).TestCase
TestLocalDictJson.settings = _SIDE

TestLocalDictText = persidict_state_machine(_text).TestCase
TestLocalDictText.settings = _SIDE

TestLocalDictAppendOnly = persidict_state_machine(_append_only).TestCase
TestLocalDictAppendOnly.settings = _SIDE

TestLocalDictIntsOnly = persidict_state_machine(_ints_only).TestCase
TestLocalDictIntsOnly.settings = _SIDE

TestLocalDictSubdict = persidict_state_machine(_under_a_prefix).TestCase
TestLocalDictSubdict.settings = _SIDE
