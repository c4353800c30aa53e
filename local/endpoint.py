"""The embedded AWS endpoint: a moto server on 127.0.0.1 in a thread of this process.

moto's backends are process-global, so one process hosts one endpoint at a time; it is reset on start
and on stop so that consecutive endpoints (tests, demo runs) never see each other's resources.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, overload

import boto3
from botocore.config import Config

from filepipe.local import dynamodb_fidelity, lambda_fidelity, s3_fidelity, sns_fidelity

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from werkzeug.serving import BaseWSGIServer

DEFAULT_ACCOUNT_ID: Final = "123456789012"
"""moto's default account: every ARN the endpoint serves and the capture mocks report uses it."""
DEFAULT_REGION: Final = "eu-west-1"
LOCAL_HOST: Final = "127.0.0.1"

FAKE_CREDENTIALS: Final = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
"""moto accepts any credentials; fixed ones keep a developer's real profile out of every local call."""

_CLIENT_CONFIG: Final = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    max_pool_connections=50,
    connect_timeout=5,
    read_timeout=60,
)


class EndpointError(RuntimeError):
    """The local endpoint could not be started (for example: the port is taken)."""


@dataclass(frozen=True, slots=True)
class EndpointAddress:
    """Where a running endpoint listens, and how to make clients for it."""

    url: str
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def environment(self) -> dict[str, str]:
        """The variables that point the AWS CLI and any boto3 client at this endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": FAKE_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": FAKE_CREDENTIALS["aws_secret_access_key"],
        }

    @overload
    def client(self, service: Literal["s3"]) -> S3Client: ...
    @overload
    def client(self, service: Literal["sqs"]) -> SQSClient: ...
    @overload
    def client(self, service: Literal["sns"]) -> SNSClient: ...
    @overload
    def client(self, service: Literal["dynamodb"]) -> DynamoDBClient: ...
    @overload
    def client(self, service: Literal["cloudwatch"]) -> CloudWatchClient: ...
    @overload
    def client(self, service: Literal["logs"]) -> CloudWatchLogsClient: ...
    @overload
    def client(self, service: Literal["iam"]) -> IAMClient: ...
    @overload
    def client(self, service: Literal["kms"]) -> KMSClient: ...
    @overload
    def client(self, service: Literal["events"]) -> EventBridgeClient: ...
    @overload
    def client(self, service: Literal["lambda"]) -> LambdaClient: ...
    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this endpoint (its own session: safe to use per thread)."""
        session = boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
            region_name=self.region,
        )
        return session.client(service, endpoint_url=self.url, config=_CLIENT_CONFIG)  # type: ignore[call-overload]


_PATCHED: list[bool] = []


def speed_up_moto_sqs() -> None:
    """Make moto's ``ReceiveMessage`` cost independent of queue depth (same behaviour, fewer clocks).

    moto checks each returned message's retention by computing *every* queue attribute, which walks
    every message, each reading the clock through ``datetime``: a receive on a queue of 1,000
    messages takes ~100 ms. The replacement reads the retention period directly and the clock with
    ``time.time()`` (moto's server mode has no frozen time to honour).
    """
    if _PATCHED:
        return
    from moto.sqs import models

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else float(original_unix_time(dt))

    def unix_time_millis(dt: Any = None) -> float:
        return unix_time(dt) * 1000.0

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        queue = self.get_queue(queue_name)
        retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
        return bool(retain_until > time.time())

    original_unix_time = getattr(models, "unix_time")  # noqa: B009 - not re-exported by moto
    setattr(models, "unix_time", unix_time)  # noqa: B010 - moto's module names, replaced on purpose
    setattr(models, "unix_time_millis", unix_time_millis)  # noqa: B010
    setattr(  # noqa: B010
        models.SQSBackend,
        "is_message_valid_based_on_retention_period",
        is_message_valid_based_on_retention_period,
    )
    _PATCHED.append(True)


_SQS_RECEIVE_TARGET: Final = "AmazonSQS.ReceiveMessage"
_LONG_POLL_FIRST_TICK: Final = 0.05
_LONG_POLL_MAX_TICK: Final = 1.0

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class SerializedApp:
    """Runs moto's requests one at a time; SQS long polls wait between attempts, outside the lock.

    moto's backends are not thread-safe: two concurrent ``ReceiveMessage`` calls can both receive the
    same message, and two conditional DynamoDB writes can both succeed. AWS makes each of those
    operations atomic, and the pipeline's exactly-once behaviour rests on that, so the endpoint does
    too. A long poll (``WaitTimeSeconds`` > 0, JSON protocol) is replayed as short polls until a message
    arrives or the wait ends, so one waiting consumer never blocks the endpoint.
    """

    def __init__(self, app: WsgiApp) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._last_delivery: dict[str, float] = {}
        self.requests = 0
        """Requests served (a replayed long poll counts once per attempt): for benchmarks."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET") == _SQS_RECEIVE_TARGET:
            return self._receive(environ, start_response)
        status, headers, body = self._call(environ)
        start_response(status, headers)
        return [body]

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda _: None

        with self._lock:
            self.requests += 1
            result = self._app(environ, capture)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return captured["status"], captured["headers"], body

    def _receive(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            request = json.loads(raw or b"{}")
            wait = float(request.get("WaitTimeSeconds") or 0)
        except (ValueError, AttributeError):
            request, wait = None, 0.0
        if request is not None and wait > 0:
            request["WaitTimeSeconds"] = 0
            raw = json.dumps(request).encode()
        deadline = time.monotonic() + wait
        queue = str(request.get("QueueUrl", "")) if isinstance(request, dict) else ""
        # Poll a queue that has just had messages often, and one that has been empty for a while
        # rarely: busy consumers are answered within a tick, idle ones cost the endpoint ~1 call/s.
        idle = time.monotonic() - self._last_delivery.get(queue, 0.0)
        tick = min(max(_LONG_POLL_FIRST_TICK, idle / 8), _LONG_POLL_MAX_TICK)
        while True:
            attempt = {**environ, "wsgi.input": io.BytesIO(raw), "CONTENT_LENGTH": str(len(raw))}
            status, headers, body = self._call(attempt)
            remaining = deadline - time.monotonic()
            delivered = b'"Messages"' in body
            if delivered:
                self._last_delivery[queue] = time.monotonic()
            if not status.startswith("200") or remaining <= 0 or delivered:
                start_response(status, headers)
                return [body]
            time.sleep(min(remaining, tick))
            tick = min(tick * 2, _LONG_POLL_MAX_TICK)


class LocalEndpoint:
    """A moto server bound to ``127.0.0.1:<port>`` (``port=0``: any free port).

    Binding happens in :meth:`start` on the calling thread, so a taken port is an immediate
    :class:`EndpointError` rather than a hung server thread.
    """

    def __init__(
        self, port: int = 0, *, region: str = DEFAULT_REGION, account_id: str = DEFAULT_ACCOUNT_ID
    ) -> None:
        self._requested_port = port
        self._region = region
        self._account_id = account_id
        self._server: BaseWSGIServer | None = None
        self._app: SerializedApp | None = None
        self._thread: threading.Thread | None = None
        self._address: EndpointAddress | None = None

    @property
    def region(self) -> str:
        return self._region

    @property
    def account_id(self) -> str:
        """The account every ARN the endpoint serves is in (known before it starts)."""
        return self._account_id

    @property
    def address(self) -> EndpointAddress:
        if self._address is None:
            raise EndpointError("the endpoint is not running")
        return self._address

    @property
    def requests(self) -> int:
        """Requests served so far."""
        return self._app.requests if self._app is not None else 0

    def start(self) -> EndpointAddress:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        # One line per request from werkzeug would drown the pipeline's own output.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # moto reads the account from here when a request carries no recognisable access key.
        os.environ.setdefault("MOTO_ACCOUNT_ID", self._account_id)
        speed_up_moto_sqs()
        s3_fidelity.apply()
        sns_fidelity.apply()
        lambda_fidelity.apply()
        dynamodb_fidelity.apply()
        self._app = app = SerializedApp(DomainDispatcherApplication(create_backend_app))

        class KeepAliveHandler(MotoRequestHandler):
            # HTTP/1.1 keeps connections open between calls; werkzeug's HTTP/1.0 default opens a
            # TCP connection per request, a large share of a small call's cost.
            protocol_version = "HTTP/1.1"

        try:
            server = make_server(
                LOCAL_HOST, self._requested_port, app, threaded=True, request_handler=KeepAliveHandler
            )
        except (OSError, SystemExit) as error:
            # werkzeug reports a taken port on stderr and exits; the endpoint raises instead.
            reason = getattr(error, "strerror", None) or "the address is in use or not available"
            raise EndpointError(f"cannot listen on {LOCAL_HOST}:{self._requested_port}: {reason}") from None
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        port = int(server.server_address[1])
        self._address = EndpointAddress(
            url=f"http://{LOCAL_HOST}:{port}", region=self._region, account_id=self._account_id
        )
        try:
            self.reset()
        except BaseException:
            self._shutdown()  # a server whose start failed must not outlive the call
            raise
        return self._address

    def reset(self) -> None:
        """Drop every resource of every service (moto's backends are shared by the whole process)."""
        request = urllib.request.Request(f"{self.address.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def stop(self) -> None:
        if self._server is None:
            return
        try:
            self.reset()
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        """Stop serving and release the port (no reset)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        self._thread = None
        self._address = None

    def __enter__(self) -> EndpointAddress:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
