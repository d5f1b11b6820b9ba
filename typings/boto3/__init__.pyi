"""Minimal stubs for the parts of boto3 persidict uses."""

from typing import Any

from . import session as session

def client(service_name: str, **kwargs: Any) -> Any: ...
