"""Model-based testing of the asyncio view (persidict.aio) of any PersiDict.

:func:`async_persidict_state_machine` is :func:`persidict.testing.persidict_state_machine`
run through an :class:`~persidict.aio.AsyncPersiDict`: the same rules, the same
reference model and the same checks, but every operation the machine makes
is an awaited call of the async view, run to completion on an event loop in
debug mode (which also rejects loop calls from the wrong thread). A
``transform_item`` alternates between the machine's sync transformer and an
``async def`` one, so both code paths meet the model.

    from persidict.testing_aio import async_persidict_state_machine

    TestMyStoreAsync = async_persidict_state_machine(make_store, cleanup=drop_store).TestCase

Unless the view runs inline (in-memory stores), the machine also checks that
no code of the store's I/O layers (``persidict/backends``, the interpreter
in ``persidict/ops`` but not its pure decisions, the codecs) ever runs in
the event loop's thread: a profiler hook on that thread records every such
call (and every encoding or decoding of a value), so a blocking call on the
loop fails the example whatever the machine's load (a deterministic check, unlike timing).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from hypothesis.stateful import RuleBasedStateMachine

from .aio import AsyncPersiDict
from .persi_dict import PersiDict
from .testing import PersiDictMachine, _Config
from .wrappers.cached import AppendOnlyDictCached

__all__ = ["LoopThreadGuard", "SyncThroughAsync", "async_persidict_state_machine"]

_PKG = os.path.dirname(os.path.abspath(__file__))
STORE_CODE = (os.path.join(_PKG, "backends") + os.sep, os.path.join(_PKG, "ops") + os.sep)
"""Where the code that touches storage lives."""
_PURE = frozenset(os.path.join(_PKG, "ops", name) for name in ("decide.py", "commands.py"))
"""The functional core's pure modules (no I/O): they may run anywhere, the loop's thread included."""
_CODECS = os.path.join(_PKG, "codecs.py")
_CODING = frozenset({"encode", "decode", "dumps", "loads"})


class LoopThreadGuard:
    """A profiler hook (``sys.setprofile``) recording calls of store code in the thread it is set in."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, frame: Any, event: str, arg: Any) -> None:
        if event != "call" or frame.f_code.co_name == "__repr__":
            return
        code = frame.f_code
        where = code.co_filename
        if (where.startswith(STORE_CODE) and where not in _PURE) or (
            where == _CODECS and code.co_name in _CODING
        ):
            self.calls.append(f"{code.co_filename}:{code.co_name}")


class SyncThroughAsync:
    """The PersiDict API, each call made by awaiting the AsyncPersiDict's method on ``runner``.

    Registered (when this module is imported) as a virtual subclass of PersiDict, so that the
    sync machine's checks apply unchanged: ``isinstance(view, PersiDict)`` holds, and storing
    one as a value is refused like storing any PersiDict.
    """

    _ASYNC_ITERATORS = frozenset(
        {"keys", "values", "items", "keys_and_timestamps", "values_and_timestamps", "items_and_timestamps"}
    )

    def __init__(
        self, ad: AsyncPersiDict[Any], runner: asyncio.Runner, guard: LoopThreadGuard | None = None
    ) -> None:
        self._ad = ad
        self._runner = runner
        self._guard = guard
        self._transforms = 0

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._guard is None:
            return self._runner.run(coro)
        sys.setprofile(self._guard)
        try:
            return self._runner.run(coro)
        finally:
            sys.setprofile(None)

    def _collect(self, name: str) -> list[Any]:
        async def collect() -> list[Any]:
            return [x async for x in getattr(self._ad, name)()]

        return list(self._call(collect()))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._ASYNC_ITERATORS:
            return lambda: self._collect(name)
        attr = getattr(self._ad, name)
        if inspect.iscoroutinefunction(attr):
            return lambda *a, **kw: self._call(attr(*a, **kw))
        return attr

    def __getitem__(self, key: Any) -> Any:
        return self._call(self._ad.get_item(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._call(self._ad.set(key, value))

    def __delitem__(self, key: Any) -> None:
        self._call(self._ad.delete(key))

    def __contains__(self, key: object) -> bool:
        return bool(self._call(self._ad.contains(key)))

    def __len__(self) -> int:
        return int(self._call(self._ad.len()))

    def __bool__(self) -> bool:
        return not self._call(self._ad.is_empty())

    def __eq__(self, other: object) -> bool:
        return bool(self._call(self._ad.equals(other)))

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __ior__(self, other: Any) -> SyncThroughAsync:
        self._call(self._ad.update(other))
        return self

    def __iter__(self) -> Any:
        return iter(self._collect("keys"))

    def get_subdict(self, prefix: Any) -> SyncThroughAsync:
        """The async view's subdict, driven the same way."""
        return SyncThroughAsync(self._ad.get_subdict(prefix), self._runner, self._guard)

    def subdicts(self) -> dict[str, SyncThroughAsync]:
        """The async view's subdicts, driven the same way."""
        subs = self._call(self._ad.subdicts())
        return {name: SyncThroughAsync(sub, self._runner, self._guard) for name, sub in subs.items()}

    def transform_item(self, key: Any, transformer: Any, *, n_retries: Any = 6) -> Any:
        """Every other call with an ``async def`` transformer wrapping the given one."""
        self._transforms += 1
        if self._transforms % 2 and callable(transformer):
            sync_fn = transformer

            async def async_transformer(current: Any) -> Any:
                await asyncio.sleep(0)
                return sync_fn(current)

            transformer = async_transformer
        return self._call(self._ad.transform_item(key, transformer, n_retries=n_retries))


PersiDict.register(SyncThroughAsync)


class AsyncPersiDictMachine(PersiDictMachine):
    """PersiDictMachine with ``self.d`` an AsyncPersiDict driven on a debug-mode event loop."""

    user_config: ClassVar[_Config]

    def __init__(self) -> None:
        self.runner = asyncio.Runner(debug=True)
        self.runner.get_loop().slow_callback_duration = 1.0  # timing is not checked here (see the guard)
        self.guard = LoopThreadGuard()
        super().__init__()
        self.refuses_discard_if = isinstance(self.d._ad.sync, AppendOnlyDictCached)  # type: ignore[attr-defined]

    def teardown(self) -> None:
        """Close the view and the loop, release the store; fail if store code ran on the loop."""
        self.runner.run(self.d._ad.aclose())  # type: ignore[attr-defined]
        self.runner.close()
        if self.user_config.cleanup is not None:
            self.user_config.cleanup(self.d._ad.sync)  # type: ignore[attr-defined]
        calls = sorted(set(self.guard.calls))
        assert not calls, f"store code ran in the event loop's thread: {calls}"


def async_persidict_state_machine(
    factory: Callable[[], PersiDict[Any]],
    *,
    null_store: bool = False,
    cleanup: Callable[[PersiDict[Any]], None] | None = None,
    **view_options: Any,
) -> type[RuleBasedStateMachine]:
    """A hypothesis state machine testing ``AsyncPersiDict(factory())`` against the model.

    Args:
        factory, null_store, cleanup: as for ``persidict_state_machine``
            (``cleanup`` gets the PersiDict, after the view is closed).
        view_options: passed to ``AsyncPersiDict`` (``max_workers``, ``inline``...).
    """
    user = _Config(factory=factory, null_store=null_store, cleanup=cleanup)
    holder: dict[str, AsyncPersiDictMachine] = {}

    def make_view() -> PersiDict[Any]:
        machine = holder["current"]
        ad = AsyncPersiDict(factory(), **view_options)
        guard = None if ad.inline else machine.guard
        return SyncThroughAsync(ad, machine.runner, guard)  # type: ignore[return-value]

    class Machine(AsyncPersiDictMachine):
        def __init__(self) -> None:
            holder["current"] = self
            super().__init__()

    Machine.__name__ = Machine.__qualname__ = "AsyncPersiDictStateMachine"
    Machine.config = _Config(factory=make_view, null_store=null_store, cleanup=None)
    Machine.user_config = user
    return Machine
