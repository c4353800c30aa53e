"""The embedded AWS endpoint: a moto server on 127.0.0.1 in a thread of this process.

moto's backends are process-global, so one process hosts one endpoint at a time; it is reset on start
and on stop so that consecutive endpoints (tests, demo runs) never see each other's resources.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.request
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, overload

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_kms import KMSClient
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
    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this endpoint (its own session: safe to use per thread)."""
        session = boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
            region_name=self.region,
        )
        return session.client(service, endpoint_url=self.url, config=_CLIENT_CONFIG)  # type: ignore[call-overload]


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
        self._thread: threading.Thread | None = None
        self._address: EndpointAddress | None = None

    @property
    def address(self) -> EndpointAddress:
        if self._address is None:
            raise EndpointError("the endpoint is not running")
        return self._address

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
        app = DomainDispatcherApplication(create_backend_app)
        try:
            server = make_server(
                LOCAL_HOST, self._requested_port, app, threaded=True, request_handler=MotoRequestHandler
            )
        except OSError as error:
            raise EndpointError(
                f"cannot listen on {LOCAL_HOST}:{self._requested_port}: {error.strerror or error}"
            ) from error
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        port = int(server.server_address[1])
        self._address = EndpointAddress(
            url=f"http://{LOCAL_HOST}:{port}", region=self._region, account_id=self._account_id
        )
        self.reset()
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
