"""Minimal stubs: botocore.httpsession (the tests send requests themselves to lose their replies)."""

from typing import Any

from .awsrequest import AWSPreparedRequest, AWSResponse

class URLLib3Session:
    def __init__(self, *args: Any, **kwargs: Any) -> None: ...
    def send(self, request: AWSPreparedRequest) -> AWSResponse: ...
    def close(self) -> None: ...
