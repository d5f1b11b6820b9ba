"""Click parameter types of the command line: a store and a key (importing only click)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # click >= 8.3 types ParamType by its value and input types; older click does not
    _ParamType = click.ParamType[Any, Any]
else:
    _ParamType = click.ParamType


class StoreParam(_ParamType):
    """A store named by a URL, a path, ``@spec-file`` or JSON spec text; parsed (not opened) here."""

    name = "STORE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The spec of the store ``value`` names; a usage error (exit 2) naming what is wrong."""
        from ..opening import parse_store

        if not isinstance(value, str):
            return value
        try:
            return parse_store(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


class KeyParam(_ParamType):
    """A key written with ``/`` between its parts: ``a/b/c`` is ``("a", "b", "c")``."""

    name = "KEY"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The key as a tuple of parts; a usage error for an empty or unsafe one."""
        from ..keys import to_key

        if isinstance(value, tuple):
            return value
        try:
            return tuple(to_key(tuple(value.split("/"))))
        except (ValueError, TypeError) as e:
            self.fail(f"bad key {value!r}: {e}", param, ctx)


STORE = StoreParam()
KEY = KeyParam()
