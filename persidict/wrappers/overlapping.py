"""OverlappingMultiDict: several PersiDicts, one per serialization format, at one location."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from ..keys import PersiDictKey
from ..persi_dict import PersiDict
from .base import same_store

# The default of shared_subdicts_params: no shared parameters (never mutated).
_NO_SHARED_PARAMS: dict[str, Any] = {}

_RESERVED = frozenset({"get_params", "get_subdict", "subdicts", "formats", "dict_type"})


def _common_params(members: Mapping[str, PersiDict[Any]]) -> dict[str, Any]:
    """Parameters every member has with equal values (the format name excluded)."""
    params = [m.get_params() for m in members.values()]
    first = params[0]
    return {
        k: v
        for k, v in first.items()
        if k != "serialization_format" and all(k in p and p[k] == v for p in params[1:])
    }


class OverlappingMultiDict:
    """A container of PersiDicts that share one location, one per serialization format.

    ``OverlappingMultiDict(dict_type=FileDirDict, shared_subdicts_params={"base_dir": d},
    json={}, pkl={})`` makes ``multi.json`` and ``multi.pkl``: each is
    ``dict_type(**shared_subdicts_params, serialization_format=<name>, **<its params>)``.
    Items of different formats live side by side (their file extensions
    differ), so ``multi.json.clear()`` leaves ``multi.pkl``'s items. The
    container itself is not a dict: item access on it raises TypeError.
    ``shared_subdicts_params`` and each format's parameters must be dicts, and
    ``dict_type`` a PersiDict subclass (TypeError otherwise).
    """

    def __init__(
        self,
        dict_type: type[PersiDict[Any]],
        shared_subdicts_params: dict[str, Any] = _NO_SHARED_PARAMS,
        **formats: dict[str, Any],
    ) -> None:
        if not (isinstance(dict_type, type) and issubclass(dict_type, PersiDict)):
            raise TypeError(f"dict_type must be a PersiDict subclass, not {dict_type!r}")
        if not isinstance(shared_subdicts_params, dict):
            raise TypeError(f"shared_subdicts_params must be a dict, not {shared_subdicts_params!r}")
        shared = dict(shared_subdicts_params)
        if not formats:
            raise ValueError("OverlappingMultiDict needs at least one format, e.g. json={} or pkl={}")
        if "serialization_format" in shared:
            raise ValueError("shared_subdicts_params must not set serialization_format: each format does")
        members: dict[str, PersiDict[Any]] = {}
        for name, params in formats.items():
            if name in _RESERVED or name.startswith("_"):
                raise ValueError(f"{name!r} cannot be a format name of an OverlappingMultiDict")
            if not isinstance(params, dict):
                raise TypeError(f"The parameters of format {name!r} must be a dict, not {params!r}")
            if "serialization_format" in params:
                raise ValueError(f"The parameters of format {name!r} must not set serialization_format")
            members[name] = dict_type(**{**shared, **params, "serialization_format": name})
        self._init(dict_type, members)

    def _init(self, dict_type: type[PersiDict[Any]], members: dict[str, PersiDict[Any]]) -> None:
        self._dict_type = dict_type
        self._members = members

    @classmethod
    def _of(
        cls, dict_type: type[PersiDict[Any]], members: dict[str, PersiDict[Any]]
    ) -> OverlappingMultiDict:
        multi = object.__new__(cls)
        multi._init(dict_type, members)
        return multi

    def __getattr__(self, name: str) -> PersiDict[Any]:
        """The member dict of format ``name`` (``multi.json``, ``multi.pkl``, ...)."""
        members = self.__dict__.get("_members")
        if members is not None and name in members:
            member: PersiDict[Any] = members[name]
            return member
        raise AttributeError(f"{type(self).__name__} has no format {name!r}")

    @property
    def dict_type(self) -> type[PersiDict[Any]]:
        """The class of the member dicts."""
        return self._dict_type

    @property
    def formats(self) -> dict[str, PersiDict[Any]]:
        """Each format name and its member dict."""
        return dict(self._members)

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters, sorted: ``type(m)(**m.get_params())`` opens the same dicts.

        Parameters shared by every member go into ``shared_subdicts_params``;
        the rest are per format.
        """
        shared = _common_params(self._members)
        per_format: dict[str, Any] = {}
        for name, member in self._members.items():
            per_format[name] = {
                k: v
                for k, v in member.get_params().items()
                if k != "serialization_format" and k not in shared
            }
        return dict(
            sorted({"dict_type": self._dict_type, "shared_subdicts_params": shared, **per_format}.items())
        )

    def get_subdict(self, prefix_key: PersiDictKey) -> OverlappingMultiDict:
        """The same formats, each a subdict under ``prefix_key``."""
        return self._of(
            self._dict_type, {n: m.get_subdict(prefix_key) for n, m in self._members.items()}
        )

    def subdicts(self) -> dict[str, OverlappingMultiDict]:
        """Each first-level prefix found in any format, and its subdict."""
        firsts: set[str] = set()
        for member in self._members.values():
            firsts.update(member.subdicts())
        return {f: self.get_subdict(f) for f in sorted(firsts)}

    def __eq__(self, other: object) -> bool:
        """Same class, member type and member dicts."""
        if not isinstance(other, OverlappingMultiDict):
            return NotImplemented
        return (
            type(other) is type(self)
            and other._dict_type is self._dict_type
            and other._members.keys() == self._members.keys()
            and all(same_store(m, other._members[n]) for n, m in self._members.items())
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    def _no_items(self, what: str) -> NoReturn:
        names = ", ".join(f"multi.{n}" for n in self._members)
        raise TypeError(
            f"{type(self).__name__} is a container of dicts, not a dict: {what} "
            f"through one of its formats ({names})"
        )

    def __getitem__(self, key: object) -> NoReturn:
        """Always TypeError: read through a format attribute instead."""
        self._no_items("read items")

    def __setitem__(self, key: object, value: object) -> NoReturn:
        """Always TypeError: write through a format attribute instead."""
        self._no_items("write items")

    def __delitem__(self, key: object) -> NoReturn:
        """Always TypeError: delete through a format attribute instead."""
        self._no_items("delete items")
