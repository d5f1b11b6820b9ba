"""Shared helpers of the S3 tests: fake credentials, request logs, fault injection, a moto server.

Nothing here reaches the internet: in-process tests run under moto's
``mock_aws``; integration tests talk HTTP to a ``ThreadedMotoServer`` on
127.0.0.1, started once per process on a free port.
"""

from __future__ import annotations

import atexit
import collections
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""Credentials and region for moto; set by the tests' fixtures."""

UNSET_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION")
"""Variables removed so that a developer's AWS setup cannot leak into the tests."""


def client_of(d: Any) -> Any:
    """The boto3 client of a BasicS3Dict / S3Dict."""
    return d._s3.client


def _header(request: Any, name: str) -> str | None:
    value = request.headers.get(name) if request is not None else None
    if isinstance(value, bytes):
        return value.decode()
    return None if value is None else str(value)


class RequestLog:
    """Counts the HTTP requests (attempts, retries included) a client sends, by operation.

    ``sent`` keeps each request's operation with its If-None-Match and
    If-Match headers; ``statuses`` the HTTP status of each completed call.
    """

    def __init__(self) -> None:
        self.ops: list[str] = []
        self.sent: list[tuple[str, str | None, str | None]] = []
        self.statuses: list[tuple[str, int]] = []

    def __call__(self, event_name: str, request: Any = None, **kwargs: Any) -> None:
        op = event_name.rsplit(".", 1)[-1]
        self.ops.append(op)
        self.sent.append((op, _header(request, "If-None-Match"), _header(request, "If-Match")))

    def after_call(self, event_name: str, http_response: Any = None, **kwargs: Any) -> None:
        """Record the status of a completed call."""
        if http_response is not None:
            self.statuses.append((event_name.rsplit(".", 1)[-1], http_response.status_code))

    def clear(self) -> None:
        """Forget what was counted."""
        self.ops.clear()
        self.sent.clear()
        self.statuses.clear()

    def counts(self) -> dict[str, int]:
        """Requests per operation name (e.g. ``{"GetObject": 1}``)."""
        return dict(collections.Counter(self.ops))

    def take(self) -> dict[str, int]:
        """The counts so far, then clear."""
        c = self.counts()
        self.clear()
        return c


def log_requests(client: Any) -> RequestLog:
    """Start counting the requests of ``client`` (first in line, before moto's stubber)."""
    log = RequestLog()
    client.meta.events.register_first("before-send.s3", log)
    client.meta.events.register("after-call.s3", log.after_call)
    return log


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


def error_response(status: int, code: str, url: str = "http://fault") -> AWSResponse:
    """An S3 XML error answer."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>injected {code}</Message><RequestId>x</RequestId></Error>"
    ).encode()
    return AWSResponse(url, status, {"Content-Type": "application/xml"}, _Raw(body))


class FaultInjector:
    """Answers chosen operations with a failure, ``times`` times (None: always), before sending.

    ``fail`` is an AWSResponse factory or an exception factory (e.g. a
    timeout). ``attempts`` counts every attempt of the chosen operations.
    """

    def __init__(
        self,
        operation: str,
        fail: Callable[[], AWSResponse | Exception],
        times: int | None = 1,
    ) -> None:
        self.operation = operation
        self.fail = fail
        self.times = times
        self.injected = 0
        self.attempts = 0
        self._lock = threading.Lock()

    def __call__(self, event_name: str, **kwargs: Any) -> AWSResponse | None:
        if event_name.rsplit(".", 1)[-1] != self.operation:
            return None
        with self._lock:
            self.attempts += 1
            if self.times is not None and self.injected >= self.times:
                return None
            self.injected += 1
        outcome = self.fail()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def install(self, client: Any) -> FaultInjector:
        """Register on ``client`` (first in line)."""
        client.meta.events.register_first("before-send.s3", self)
        return self

    def remove(self, client: Any) -> None:
        """Unregister from ``client``."""
        client.meta.events.unregister("before-send.s3", self)


def _attempt(request: Any) -> int:
    """The attempt number botocore stamps on a request (``amz-sdk-request: attempt=N; max=M``)."""
    for part in (_header(request, "amz-sdk-request") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == "attempt" and value.isdigit():
            return int(value)
    return 1


class DropReplies:
    """Delivers chosen requests to the server, then loses their replies, so that botocore sends them again.

    A ``before-send`` hook: a chosen request is sent over a connection of
    the hook's own (the server receives it and carries it out), the HTTP
    status of the answer is appended to ``delivered``, ``meanwhile`` runs
    in another thread (another client's operation, say, between the lost
    reply and the resend), and a ReadTimeoutError is raised in place of the answer, as
    when a reply is lost on the network. Chosen: requests of ``operation``
    that carry If-Match or If-None-Match, on their first attempt (resends
    go through), at most ``times`` of them (None: all). Use it against a
    server over HTTP: in-process ``mock_aws`` answers requests itself.
    """

    def __init__(
        self, operation: str, times: int | None = 1, meanwhile: Callable[[], object] | None = None
    ) -> None:
        from botocore.httpsession import URLLib3Session

        self.operation = operation
        self.times = times
        self.meanwhile = meanwhile
        self.delivered: list[int] = []
        self.chosen = 0
        self._http = URLLib3Session()
        self._lock = threading.Lock()

    def _chosen(self, event_name: str, request: Any) -> bool:
        if event_name.rsplit(".", 1)[-1] != self.operation or _attempt(request) != 1:
            return False
        if _header(request, "If-Match") is None and _header(request, "If-None-Match") is None:
            return False
        with self._lock:
            if self.times is not None and self.chosen >= self.times:
                return False
            self.chosen += 1
            return True

    def __call__(self, event_name: str, request: Any = None, **kwargs: Any) -> None:
        if not self._chosen(event_name, request):
            return
        status = self._http.send(request).status_code
        with self._lock:
            self.delivered.append(status)
        if self.meanwhile is not None:
            self._run_meanwhile(self.meanwhile)
        raise ReadTimeoutError(endpoint_url=request.url)

    @staticmethod
    def _run_meanwhile(action: Callable[[], object]) -> None:
        """Run ``action`` in a thread of its own (as another client would), and wait for it."""
        failures: list[BaseException] = []

        def run() -> None:
            try:
                action()
            except BaseException as e:
                failures.append(e)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        if failures:
            raise AssertionError("the action run while a reply was lost failed") from failures[0]

    def install(self, client: Any) -> DropReplies:
        """Register on ``client`` (first in line)."""
        client.meta.events.register_first("before-send.s3", self)
        return self

    def remove(self, client: Any) -> None:
        """Unregister from ``client``."""
        client.meta.events.unregister("before-send.s3", self)


def _object_key(request: Any) -> str:
    """The object key a request is about (its URL path after the bucket), unquoted."""
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(request.url).path)
    return path.split("/", 2)[2] if path.count("/") >= 2 else ""


class FailKeys:
    """Answers the chosen operation's requests for chosen object keys with 403 AccessDenied (never retried).

    A ``before-send`` hook: the request is not sent, so the key is left as it
    was. ``failed`` lists the object keys answered so.
    """

    def __init__(self, operation: str, object_keys: Iterable[str]) -> None:
        self.operation = operation
        self.object_keys = set(object_keys)
        self.failed: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, event_name: str, request: Any = None, **kwargs: Any) -> AWSResponse | None:
        if event_name.rsplit(".", 1)[-1] != self.operation or request is None:
            return None
        key = _object_key(request)
        if key not in self.object_keys:
            return None
        with self._lock:
            self.failed.append(key)
        return error_response(403, "AccessDenied")

    def install(self, client: Any) -> FailKeys:
        """Register on ``client`` (first in line)."""
        client.meta.events.register_first("before-send.s3", self)
        return self

    def remove(self, client: Any) -> None:
        """Unregister from ``client``."""
        client.meta.events.unregister("before-send.s3", self)


class RefuseDeletes:
    """Makes DeleteObjects refuse chosen object keys, as S3 does key by key (its answer's Errors).

    The keys are taken out of the request before it is built (so the server
    keeps them), and put back into the parsed answer as Errors with
    ``code``. ``refused`` lists the keys refused so.
    """

    def __init__(self, object_keys: Iterable[str], code: str = "AccessDenied") -> None:
        self.object_keys = set(object_keys)
        self.code = code
        self.refused: list[str] = []
        self._pending = threading.local()

    def before(self, params: dict[str, Any], **kwargs: Any) -> None:
        """``before-parameter-build``: drop the chosen keys from the request."""
        objects = params["Delete"]["Objects"]
        chosen = [o["Key"] for o in objects if o["Key"] in self.object_keys]
        objects[:] = [o for o in objects if o["Key"] not in self.object_keys]
        self._pending.keys = chosen

    def after(self, parsed: dict[str, Any], **kwargs: Any) -> None:
        """``after-call``: report the dropped keys as refused."""
        chosen = getattr(self._pending, "keys", [])
        self._pending.keys = []
        errors = parsed.setdefault("Errors", [])
        for key in chosen:
            errors.append({"Key": key, "Code": self.code, "Message": f"injected {self.code}"})
            self.refused.append(key)

    def install(self, client: Any) -> RefuseDeletes:
        """Register on ``client``."""
        client.meta.events.register("before-parameter-build.s3.DeleteObjects", self.before)
        client.meta.events.register("after-call.s3.DeleteObjects", self.after)
        return self


class Concurrency:
    """Tracks how many requests of a client are being sent at once (a ``before-send`` hook that lingers).

    Each request waits ``linger`` seconds in the hook, so requests sent
    concurrently overlap there; ``peak`` is the most seen at once.
    """

    def __init__(self, linger: float = 0.005) -> None:
        self.linger = linger
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()

    def __call__(self, **kwargs: Any) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(self.linger)
        with self._lock:
            self.active -= 1

    def install(self, client: Any) -> Concurrency:
        """Register on ``client``."""
        client.meta.events.register("before-send.s3", self)
        return self


class DenyCreateBucket:
    """Answers every CreateBucket of a client with 403 AccessDenied, before anything is sent.

    A ``before-call`` hook: botocore takes its answer instead of making the
    request, so neither moto in-process nor a server sees the request (a
    ``before-send`` answer would not stop moto's in-process hook from
    creating the bucket anyway). ``denied`` counts the refusals.
    """

    def __init__(self) -> None:
        self.denied = 0

    def __call__(self, **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
        self.denied += 1
        http = AWSResponse("http://denied", 403, {}, _Raw(b""))
        parsed = {
            "Error": {"Code": "AccessDenied", "Message": "injected: not allowed to create buckets"},
            "ResponseMetadata": {"HTTPStatusCode": 403, "HTTPHeaders": {}},
        }
        return http, parsed

    def install(self, client: Any) -> DenyCreateBucket:
        """Register on ``client``."""
        client.meta.events.register_first("before-call.s3.CreateBucket", self)
        return self

    def remove(self, client: Any) -> None:
        """Unregister from ``client``."""
        client.meta.events.unregister("before-call.s3.CreateBucket", self)


# ---------------------------------------------------------------- moto server

_server_lock = threading.Lock()
_endpoint: list[str] = []


def _make_moto_conditionals_atomic() -> None:
    """Serialise moto's PutObject, DeleteObject and GetObject handlers.

    moto 5.2.5 checks If-Match / If-None-Match and then writes without a
    lock, so two threads of its server can both pass the check; S3 itself
    evaluates the condition atomically. Its GetObject can also read the
    buffer of an object being replaced and fail with a 500 ("I/O operation
    on closed file"). A lock around the three handlers gives the test server
    S3's semantics (the client code under test is unchanged).
    """
    from moto.s3.responses import S3Response

    if getattr(S3Response, "_persidict_atomic", False):
        return
    lock = threading.RLock()

    def serialised(method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return method(self, *args, **kwargs)

        return wrapper

    S3Response.put_object = serialised(S3Response.put_object)  # type: ignore[method-assign]
    S3Response.delete_object = serialised(S3Response.delete_object)  # type: ignore[method-assign]
    S3Response.get_object = serialised(S3Response.get_object)  # type: ignore[method-assign]
    S3Response._persidict_atomic = True  # type: ignore[attr-defined]


def moto_endpoint(atomic_conditionals: bool = True) -> str:
    """The URL of this process's moto server on 127.0.0.1 (started on first use)."""
    with _server_lock:
        if not _endpoint:
            from moto.server import ThreadedMotoServer

            if atomic_conditionals:
                _make_moto_conditionals_atomic()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            atexit.register(server.stop)
            _endpoint.append(f"http://{host}:{port}")
        return _endpoint[0]


SERVER_CREDENTIALS: dict[str, str] = {
    "region": "us-east-1",
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
}
"""Explicit parameters for dicts talking to the moto server (no environment needed)."""


def increment_worker(store: Any, key: str, n: int) -> int:
    """Run ``n`` unbounded transform_item increments of ``key``; return how many left a value behind.

    ``store`` arrives pickled (as its constructor parameters), so each
    process opens its own client.
    """
    done = 0
    for _ in range(n):
        r = store.transform_item(key, lambda v: 1 if not isinstance(v, int) else v + 1, n_retries=None)
        done += isinstance(r.new_value, int)
    return done
