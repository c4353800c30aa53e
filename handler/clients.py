"""The boto3 clients the handler uses, created once (per container, or per local pipeline)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


def client_config() -> Any:
    """Bounded timeouts and SDK retries: throttling is retried in-process before a message is."""
    from botocore.config import Config

    return Config(
        retries={"mode": "standard", "max_attempts": 4},
        connect_timeout=5,
        read_timeout=30,
        tcp_keepalive=True,
    )


class ClientSet(Protocol):
    @property
    def s3(self) -> S3Client: ...
    @property
    def sqs(self) -> SQSClient: ...
    @property
    def dynamodb(self) -> DynamoDBClient: ...


@dataclass(frozen=True, slots=True)
class Clients:
    """Explicit clients, e.g. pointed at a local endpoint by the local runner or by tests."""

    s3: S3Client
    sqs: SQSClient
    dynamodb: DynamoDBClient

    @classmethod
    def create(cls, endpoint_url: str | None = None, region_name: str | None = None) -> Clients:
        lazy = LazyClients(endpoint_url, region_name)
        return cls(s3=lazy.s3, sqs=lazy.sqs, dynamodb=lazy.dynamodb)


class LazyClients:
    """Each client is created on first use, once; a run that never fails never builds an SQS client."""

    def __init__(self, endpoint_url: str | None = None, region_name: str | None = None) -> None:
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        client = self._clients.get(service)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                if self._session is None:
                    import boto3

                    # One session per handler: boto3's default session is not thread-safe.
                    self._session = boto3.session.Session(region_name=self._region_name)
                client = self._session.client(
                    service, endpoint_url=self._endpoint_url, config=client_config()
                )
                self._clients[service] = client
        return client

    @property
    def s3(self) -> S3Client:
        client: S3Client = self._client("s3")
        return client

    @property
    def sqs(self) -> SQSClient:
        client: SQSClient = self._client("sqs")
        return client

    @property
    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self._client("dynamodb")
        return client
