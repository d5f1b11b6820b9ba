"""The model-based test (persidict.testing) on EmptyDict, the null store."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import settings

from persidict import EmptyDict, PersiDict
from persidict.testing import persidict_state_machine

EXAMPLES = int(os.environ.get("PERSIDICT_MODEL_EXAMPLES", "500"))
"""Examples for the main configuration (CI runs the default, 500)."""

_SIDE = settings(max_examples=max(EXAMPLES // 5, 10), stateful_step_count=25, deadline=None)


def _plain() -> PersiDict[Any]:
    return EmptyDict()


def _append_only() -> PersiDict[Any]:
    return EmptyDict(append_only=True)


def _text() -> PersiDict[Any]:
    return EmptyDict(serialization_format="txt")


TestEmptyDict = persidict_state_machine(_plain, null_store=True).TestCase
TestEmptyDict.settings = settings(max_examples=EXAMPLES, stateful_step_count=25, deadline=None)

TestEmptyDictAppendOnly = persidict_state_machine(_append_only, null_store=True).TestCase
TestEmptyDictAppendOnly.settings = _SIDE

TestEmptyDictText = persidict_state_machine(_text, null_store=True).TestCase
TestEmptyDictText.settings = _SIDE
