from __future__ import annotations

import socket
import threading
import time

import boto3
import pytest

from filepipe.local.endpoint import EndpointError, LocalEndpoint


@pytest.mark.e2e
def test_the_environment_points_any_aws_client_at_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    with LocalEndpoint() as address:
        # GIVEN only the endpoint's environment (what `filepipe local env` exports)
        for name, value in address.environment().items():
            monkeypatch.setenv(name, value)
        # WHEN a plain boto3 client is used, THEN it talks to the endpoint, in its region
        sqs = boto3.client("sqs")
        url = sqs.create_queue(QueueName="from-the-environment")["QueueUrl"]
        assert url.startswith(address.url)
        assert address.client("sqs").list_queues()["QueueUrls"] == [url]
        assert sqs.meta.region_name == address.region


@pytest.mark.e2e
def test_a_taken_port_is_an_error_not_a_hang() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(EndpointError, match="cannot listen"):
            LocalEndpoint(taken.getsockname()[1]).start()


@pytest.mark.e2e
def test_concurrent_receives_never_get_the_same_message_and_long_polls_wake_up() -> None:
    with LocalEndpoint() as address:
        sqs = address.client("sqs")
        url = sqs.create_queue(QueueName="q", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
        for index in range(40):
            sqs.send_message(QueueUrl=url, MessageBody=str(index))
        received: list[str] = []
        lock = threading.Lock()

        def consume() -> None:
            client = address.client("sqs")
            while True:
                messages = client.receive_message(QueueUrl=url, MaxNumberOfMessages=3).get("Messages", [])
                if not messages:
                    return
                with lock:
                    received.extend(message["MessageId"] for message in messages)

        threads = [threading.Thread(target=consume) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(received) == len(set(received)) == 40
        # A long poll on an empty queue returns as soon as a message arrives, well before its wait.
        threading.Timer(
            0.5, lambda: address.client("sqs").send_message(QueueUrl=url, MessageBody="late")
        ).start()
        started = time.monotonic()
        late = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=10).get("Messages", [])
        assert [message["Body"] for message in late] == ["late"]
        assert time.monotonic() - started < 10


@pytest.mark.e2e
def test_a_failing_reset_at_start_does_not_leak_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_reset(self: LocalEndpoint) -> None:
        raise EndpointError("reset failed")

    monkeypatch.setattr(LocalEndpoint, "reset", failing_reset)
    endpoint = LocalEndpoint()
    with pytest.raises(EndpointError, match="reset failed"):
        endpoint.start()
    with pytest.raises(EndpointError, match="not running"):
        _ = endpoint.address
    assert not any(thread.name == "moto-server" and thread.is_alive() for thread in threading.enumerate())
