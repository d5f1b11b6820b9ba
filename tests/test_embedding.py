"""Embedding: importing persidict is cheap and quiet, and its version is the distribution's."""

from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import sys

import pytest

import persidict

OPTIONAL = ("boto3", "lmdb", "numpy", "pandas", "moto")


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (warnings are errors)."""
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True, timeout=120
    )


def test_import_loads_no_optional_dependency() -> None:
    code = (
        "import persidict, sys; "
        f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules))"
    )
    out = run_python(code)
    assert out.stdout == "[]\n" and out.stderr == ""


def test_the_issue_command_prints_an_empty_list() -> None:
    code = (
        "import persidict, sys; "
        "print(sorted(m for m in ('boto3','lmdb','numpy','pandas','moto') if m in sys.modules))"
    )
    assert run_python(code).stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("LocalDict", ()),
        ("EmptyDict", ()),
        ("FileDirDict", ()),
        ("WriteOnceDict", ()),
        ("MutableDictCached", ()),
        ("AppendOnlyDictCached", ()),
        ("OverlappingMultiDict", ()),
        ("ExpiringDict", ()),
        ("LmdbDict", ("lmdb",)),
        ("S3Dict", ("boto3",)),
    ],
)
def test_naming_a_class_loads_only_what_it_needs(name: str, allowed: tuple[str, ...]) -> None:
    code = (
        "import persidict, sys\n"
        f"cls = persidict.{name}\n"
        f"print(sorted(m for m in {OPTIONAL!r} if m in sys.modules and m not in {allowed!r}))"
    )
    out = run_python(code)
    assert out.stdout == "[]\n", out.stdout


def test_using_the_core_prints_nothing_and_logs_nowhere() -> None:
    code = (
        "import logging, persidict\n"
        "d = persidict.LocalDict()\n"
        "d['a', 'b'] = 1; d.setdefault('c', 2); d.transform_item('c', lambda v: v + 1)\n"
        "d.set_item_if('a', 0, persidict.ITEM_NOT_AVAILABLE, persidict.ETAG_IS_THE_SAME)\n"
        "e = persidict.EmptyDict(); e['x'] = 1\n"
        "list(d.items()); d.get_subdict('a').clear(); d.clear()\n"
        "assert logging.getLogger().handlers == [], logging.getLogger().handlers\n"
        "bad = [n for n, lg in logging.Logger.manager.loggerDict.items()\n"
        "       if n.startswith('persidict') and isinstance(lg, logging.Logger)\n"
        "       and any(not isinstance(h, logging.NullHandler) for h in lg.handlers)]\n"
        "assert not bad, bad\n"
    )
    out = run_python(code)
    assert out.stdout == "" and out.stderr == ""


def test_no_handlers_in_this_process() -> None:
    for name, lg in logging.Logger.manager.loggerDict.items():
        if name.startswith("persidict") and isinstance(lg, logging.Logger):
            assert all(isinstance(h, logging.NullHandler) for h in lg.handlers), name


def test_version_is_the_installed_distributions() -> None:
    assert persidict.__version__ == importlib.metadata.version("persidict")
    assert isinstance(persidict.__version__, str) and persidict.__version__


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        persidict.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018


def test_public_names_of_the_core_import_from_persidict() -> None:
    names = """PersiDict LocalDict EmptyDict SafeStrTuple NonEmptySafeStrTuple PersiDictKey
    NonEmptyPersiDictKey get_safe_chars replace_unsafe_chars Joker KEEP_CURRENT DELETE_CURRENT ANY_ETAG
    ETAG_IS_THE_SAME ETAG_HAS_CHANGED ALWAYS_RETRIEVE NEVER_RETRIEVE IF_ETAG_CHANGED ITEM_NOT_AVAILABLE
    VALUE_NOT_RETRIEVED KeepCurrentFlag DeleteCurrentFlag ETagConditionFlag AnyETagFlag ETagIsTheSameFlag
    ETagHasChangedFlag RetrieveValueFlag AlwaysRetrieveFlag NeverRetrieveFlag IfETagChangedRetrieveFlag
    ItemNotAvailableFlag ValueNotRetrievedFlag ETagValue ETagIfExists ValueType TransformingFunction
    OperationResult ConditionalOperationResult MutationPolicyError ConcurrencyConflictError
    BackendError""".split()  # noqa: SIM905
    for name in names:
        assert getattr(persidict, name) is not None, name
