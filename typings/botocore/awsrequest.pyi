"""Minimal stubs: botocore.awsrequest.AWSResponse (for fault injection)."""

from collections.abc import Mapping
from typing import Any

class AWSPreparedRequest:
    method: str
    url: str
    headers: Any
    body: Any

class AWSResponse:
    url: str
    status_code: int
    headers: Any
    raw: Any
    def __init__(self, url: str, status_code: int, headers: Mapping[str, str], raw: Any) -> None: ...
    @property
    def content(self) -> bytes: ...
