"""Permanent versus transient: only errors known to be temporary are retried; nothing leaves the queue
without a reason, and no file stays PROCESSING once its message is gone."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from filepipe.handler.errors import RetryLaterError, UnexpectedError
from filepipe.handler.events import parse_body
from filepipe.handler.processing import MAX_METADATA_BYTES
from filepipe.handler.retryable import classify, is_transient
from filepipe.handler.settings import DlqAttribute, FileStatus

from .conftest import BUCKET, Aws, FakeContext, dlq_attributes, failures, ids
from .events import s3_body


def _client_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "Op")


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        pytest.param(_client_error("SlowDown", 503), True, id="s3-slowdown"),
        pytest.param(_client_error("ProvisionedThroughputExceededException", 400), True, id="ddb-throughput"),
        pytest.param(_client_error("ThrottlingException", 400), True, id="throttling"),
        pytest.param(_client_error("InternalError", 500), True, id="5xx"),
        pytest.param(_client_error("RequestTimeout", 400), True, id="request-timeout"),
        pytest.param(_client_error("Whatever", 429), True, id="429"),
        pytest.param(EndpointConnectionError(endpoint_url="https://s3"), True, id="connection"),
        pytest.param(ReadTimeoutError(endpoint_url="https://s3"), True, id="read-timeout"),
        pytest.param(ConnectionResetError(), True, id="socket-reset"),
        pytest.param(_client_error("KeyTooLongError", 400), False, id="key-too-long"),
        pytest.param(_client_error("AccessDenied", 403), False, id="access-denied"),
        pytest.param(RecursionError("maximum recursion depth exceeded"), False, id="recursion"),
        pytest.param(KeyError("x"), False, id="bug"),
        pytest.param(RetryLaterError("downstream down"), True, id="processor-asks-for-retry"),
    ],
)
def test_only_known_temporary_errors_are_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient
    if not transient:
        assert isinstance(classify(exc), UnexpectedError)


def test_deeply_nested_content_is_parked_at_once_with_a_reason(aws: Aws, context: FakeContext) -> None:
    # GIVEN a record with a 10,000-deep nested field (valid JSON, deeper than Python's recursion limit:
    # the reader refuses it, rather than building a record nothing downstream could encode)
    body = '[{"id": 1, "deep": ' + '{"n": ' * 10_000 + "1" + "}" * 10_000 + "}]"
    put = aws.put("in/deep.json", body)

    # WHEN it is handled on its first delivery
    response = aws.handler()(aws.batch(s3_body(key="in/deep.json", put=put)), context)

    # THEN it is parked at once with a reason, and the file is FAILED (not PROCESSING)
    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    reason = dlq_attributes(parked)
    assert (reason[DlqAttribute.ERROR_TYPE], reason[DlqAttribute.REASON]) == (
        "InvalidContentError",
        "invalid JSON: nested too deeply",
    )
    [item] = aws.state_items()
    assert item["status"] == FileStatus.FAILED
    assert "lease_token" not in item


def test_an_unknown_s3_error_is_permanent(aws: Aws, context: FakeContext) -> None:
    # GIVEN S3 refuses the read with an error nobody classified as temporary
    put = aws.put("in/odd.json", "[1]")
    aws.faults.fail(aws.s3, "GetObject", code="InvalidArgument", status=400)

    # WHEN
    response = aws.handler()(aws.batch(s3_body(key="in/odd.json", put=put)), context)

    # THEN parked with the code in its reason, not retried for the queue's whole retry schedule
    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    assert "InvalidArgument" in dlq_attributes(parked)[DlqAttribute.REASON]


def test_on_the_last_delivery_a_transient_failure_is_parked_with_its_reason(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN S3 keeps throttling, and the message is on the last delivery the queue allows (5)
    put = aws.put("in/slow.json", "[1]")
    event = aws.batch(s3_body(key="in/slow.json", put=put))
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "5"
    aws.faults.fail(aws.s3, "GetObject", code="SlowDown", status=503)

    # WHEN
    response = aws.handler(max_receive_count=5)(event, context)

    # THEN the handler parks it itself (the redrive would move it without a reason), the file is FAILED
    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    reason = dlq_attributes(parked)
    assert reason[DlqAttribute.ERROR_TYPE] == "RetriesExhaustedError"
    assert "gave up after 5 deliveries: S3UnavailableError" in reason[DlqAttribute.REASON]
    [item] = aws.state_items()
    assert (item["status"], item["error_type"], item["dlq_message_id"]) == (
        FileStatus.FAILED,
        "RetriesExhaustedError",
        parked["MessageId"],
    )


def test_before_the_last_delivery_a_transient_failure_is_retried(aws: Aws, context: FakeContext) -> None:
    # GIVEN the same throttling on the fourth of five deliveries
    put = aws.put("in/slow.json", "[1]")
    event = aws.batch(s3_body(key="in/slow.json", put=put))
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "4"
    aws.faults.fail(aws.s3, "GetObject", code="SlowDown", status=503)

    # WHEN
    response = aws.handler(max_receive_count=5)(event, context)

    # THEN
    assert response == failures(*ids(event))
    assert aws.dlq_messages() == []


def test_on_the_last_delivery_a_held_lease_parks_the_message_and_leaves_the_item_to_its_holder(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN another invocation holds the lease on this very event (alive or dead: the handler cannot
    # tell), and this is the last delivery the queue allows
    put = aws.put("in/busy.json", "[1]")
    body = s3_body(key="in/busy.json", put=put)
    event = aws.batch(body)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "5"
    handler = aws.handler(max_receive_count=5)
    [ref] = parse_body(body).objects
    files: Any = handler.files
    files._state.begin(ref, "the-holder", 1)

    # WHEN
    response = handler(event, context)

    # THEN the message is parked with the reason (nothing is lost if the holder died), and the item
    # stays the holder's; a replay after the holder finished would be skipped by the state table
    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    assert "gave up after 5 deliveries: LeaseHeldError" in dlq_attributes(parked)[DlqAttribute.REASON]
    [item] = aws.state_items()
    assert (item["status"], item["message_id"]) == (FileStatus.PROCESSING, "the-holder")


def test_a_processor_signals_retry_or_bad_file(aws: Aws, context: FakeContext) -> None:
    # GIVEN a processor that asks for a retry, and one that fails on the content
    retry_put = aws.put("in/retry.json", '[{"id": 1}]')
    bad_put = aws.put("in/bad.json", '[{"id": 1}]')

    # WHEN each runs
    retry_event = aws.batch(s3_body(key="in/retry.json", put=retry_put))
    retried = aws.handler(processor="tests.handler.processors:downstream_down")(retry_event, context)
    bad = aws.handler(processor="tests.handler.processors:explode")(
        aws.batch(s3_body(key="in/bad.json", put=bad_put)), context
    )

    # THEN RetryLaterError retries the file; any other exception parks it as a ProcessorError
    assert retried == failures(*ids(retry_event))
    assert bad == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    assert dlq_attributes(parked)[DlqAttribute.ERROR_TYPE] == "ProcessorError"


def test_an_output_key_over_s3s_limit_is_a_permanent_failure(aws: Aws, context: FakeContext) -> None:
    # GIVEN an input key within S3's 1,024 bytes whose output key (a longer prefix) is not
    key = "in/" + "k" * 1014 + ".json"
    assert len(key.encode()) <= 1024
    put = aws.put(key, "[1]")

    # WHEN
    response = aws.handler(output_prefix="processed/out/")(aws.batch(s3_body(key=key, put=put)), context)

    # THEN parked with that reason; nothing written
    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    assert dlq_attributes(parked)[DlqAttribute.ERROR_TYPE] == "OutputKeyTooLongError"
    assert aws.keys("processed/") == []


def test_output_metadata_stays_within_s3s_limit_for_a_long_non_ascii_key(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN a 1,000-byte key of three-byte characters (percent-encoded, 3,000 bytes)
    key = "in/" + "日" * 330 + ".json"
    put = aws.put(key, "[1]")

    # WHEN
    response = aws.handler()(aws.batch(s3_body(key=key, put=put)), context)

    # THEN the output is written, its metadata within S3's 2 KB (the source key left out)
    assert response == {"batchItemFailures": []}
    out = "out/" + key[len("in/") :]
    metadata = aws.s3.head_object(Bucket=BUCKET, Key=out)["Metadata"]
    assert sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items()) <= MAX_METADATA_BYTES
    assert metadata["source-version-id"] == put["VersionId"]
    assert "source-key" not in metadata


def test_a_key_with_control_characters_is_parked_with_readable_attributes(
    aws: Aws, context: FakeContext
) -> None:
    # GIVEN a poison file whose key holds a character SQS refuses in attribute values
    key = "in/bad\x01name.json"
    put = aws.put(key, "{nope")

    # WHEN
    response = aws.handler()(aws.batch(s3_body(key=key, put=put)), context)

    # THEN it is parked (not retried forever), the key escaped in the attribute
    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    assert dlq_attributes(parked)[DlqAttribute.SOURCE_KEY] == "in/bad\\u0001name.json"
