"""Minimal stubs: botocore.handlers."""

from typing import Any

BUILTIN_HANDLERS: list[tuple[Any, ...]]
