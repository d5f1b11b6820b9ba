"""The model-based test kit (persidict.testing) through the asyncio view, on every store and wrapper.

Each kind of tests/compat_stores.py (S3 kinds against a moto server over HTTP) and EmptyDict is
driven through ``AsyncPersiDict`` by persidict.testing_aio; threaded views also check that no
store code (backends, interpreter, codecs) ever runs in the event loop's thread.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import Phase, settings

from persidict import EmptyDict, PersiDict
from persidict.testing_aio import async_persidict_state_machine

from .compat_stores import APPEND_ONLY_KINDS, MUTABLE_KINDS, S3_KINDS, make_store
from .s3_helpers import SERVER_CREDENTIALS, moto_endpoint

EXAMPLES = int(os.environ.get("PERSIDICT_AIO_MODEL_EXAMPLES", "4"))
"""Examples per kind (each a fresh store)."""

_SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=20,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # (shrinking through threads is slow)
)
_ROOT = Path(tempfile.mkdtemp(prefix="persidict-aio-model-"))


def _factory(kind: str) -> Callable[[], PersiDict[Any]]:
    def make() -> PersiDict[Any]:
        if kind == "empty":
            return EmptyDict()
        params: dict[str, Any] = {}
        if kind in S3_KINDS:
            params = {"endpoint_url": moto_endpoint(), **SERVER_CREDENTIALS}
        return make_store(kind, _ROOT, **params)

    return make


def _cleanup(d: PersiDict[Any]) -> None:
    folder = d.get_params().get("base_dir")
    if isinstance(folder, str) and folder.startswith(str(_ROOT)):
        shutil.rmtree(folder, ignore_errors=True)


def _machine(kind: str) -> Any:
    machine = async_persidict_state_machine(_factory(kind), null_store=kind == "empty", cleanup=_cleanup)
    case = machine.TestCase
    case.settings = _SETTINGS
    return case


# WriteOnceDict ignores rewrites instead of refusing them: like the sync kit, the model skips it
# (tests/test_aio.py reaches it through the view).
for _kind in [*MUTABLE_KINDS, *(k for k in APPEND_ONLY_KINDS if k != "write_once"), "empty"]:
    globals()[f"TestAsync_{_kind}"] = _machine(_kind)


# Threads forced on an in-memory store: the threaded path meets the model on the fastest store.
TestAsync_local_threads = async_persidict_state_machine(
    lambda: make_store("local", _ROOT), inline=False
).TestCase
TestAsync_local_threads.settings = _SETTINGS
