"""The S3 behaviour ``filepipe.local.s3_fidelity`` adds to moto, checked on moto in-process (no network)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from filepipe.handler.events import event_key
from filepipe.local import s3_fidelity
from tests.conftest import REGION

BUCKET = "fidelity-bucket"
SEQUENCER = re.compile(r"^[0-9A-F]{18}$")


@pytest.fixture
def aws() -> Iterator[None]:
    s3_fidelity.apply()
    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None) -> Any:
    client: Any = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


@pytest.fixture
def sqs(aws: None) -> Any:
    return boto3.client("sqs", region_name=REGION)


def _versioned(s3: Any) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})


def _notify_queue(s3: Any, sqs: Any) -> str:
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    return str(url)


def _bodies(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message on the queue, in order, without S3's test event."""
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            if body.get("Event") != "s3:TestEvent":
                bodies.append(body)
    return bodies


def _objects(sqs: Any, url: str) -> list[dict[str, Any]]:
    return [record["s3"]["object"] for body in _bodies(sqs, url) for record in body["Records"]]


def _error(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response: Any = error.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


# --- Event records -------------------------------------------------------------------------------------


def test_records_of_a_versioned_bucket_carry_the_version_and_an_increasing_sequencer(
    s3: Any, sqs: Any
) -> None:
    # GIVEN a versioned bucket that notifies a queue
    _versioned(s3)
    url = _notify_queue(s3, sqs)
    # WHEN the same key is written twice
    first = s3.put_object(Bucket=BUCKET, Key="in/a.json", Body=b"1")["VersionId"]
    second = s3.put_object(Bucket=BUCKET, Key="in/a.json", Body=b"2")["VersionId"]
    # THEN each record names its version, and the later write has the greater sequencer
    objects = _objects(sqs, url)
    assert [o["versionId"] for o in objects] == [first, second]
    assert all(SEQUENCER.match(o["sequencer"]) for o in objects)
    assert objects[0]["sequencer"] < objects[1]["sequencer"]


def test_records_of_an_unversioned_bucket_have_no_version_id(s3: Any, sqs: Any) -> None:
    url = _notify_queue(s3, sqs)
    s3.put_object(Bucket=BUCKET, Key="in/a.json", Body=b"1")
    [obj] = _objects(sqs, url)
    assert "versionId" not in obj
    assert SEQUENCER.match(obj["sequencer"])


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        pytest.param("in/dir/a b.json", "in/dir/a+b.json", id="slash-kept-space-plus"),
        pytest.param("in/a+b@c.json", "in/a%2Bb%40c.json", id="plus-and-at"),
        pytest.param("in/café 100%.json", "in/caf%C3%A9+100%25.json", id="unicode-and-percent"),
    ],
)
def test_keys_are_encoded_as_s3_encodes_them(s3: Any, sqs: Any, key: str, encoded: str) -> None:
    url = _notify_queue(s3, sqs)
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"1")
    [obj] = _objects(sqs, url)
    assert obj["key"] == encoded == event_key(key)


def test_a_copy_is_announced_with_the_new_version(s3: Any, sqs: Any) -> None:
    _versioned(s3)
    s3.put_object(Bucket=BUCKET, Key="src.json", Body=b"1")
    url = _notify_queue(s3, sqs)
    version = s3.copy_object(
        Bucket=BUCKET, Key="in/copy.json", CopySource={"Bucket": BUCKET, "Key": "src.json"}
    )["VersionId"]
    [body] = _bodies(sqs, url)
    record = body["Records"][0]
    assert record["eventName"] == "ObjectCreated:Copy"
    assert record["s3"]["object"]["versionId"] == version
    assert SEQUENCER.match(record["s3"]["object"]["sequencer"])


def test_a_multipart_upload_is_announced_once(s3: Any, sqs: Any) -> None:
    # GIVEN a versioned bucket that notifies a queue
    _versioned(s3)
    url = _notify_queue(s3, sqs)
    # WHEN a multipart upload completes
    version = _multipart(s3, "in/big.json", b"x" * 10)["VersionId"]
    # THEN one record announces it (moto alone also sends an ObjectCreated:Put record), with its version
    records = [record for body in _bodies(sqs, url) for record in body["Records"]]
    assert [r["eventName"] for r in records] == ["ObjectCreated:CompleteMultipartUpload"]
    assert records[0]["s3"]["object"]["versionId"] == version
    assert SEQUENCER.match(records[0]["s3"]["object"]["sequencer"])


def _multipart(s3: Any, key: str, body: bytes, **complete: Any) -> Any:
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    etag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=body)["ETag"]
    return s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        **complete,
    )


def _eventbridge_queue(s3: Any, sqs: Any) -> str:
    url = sqs.create_queue(QueueName="bridge")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(
        Name="created",
        EventPattern=json.dumps({"source": ["aws.s3"], "detail-type": ["Object Created"]}),
    )
    events.put_targets(Rule="created", Targets=[{"Id": "queue", "Arn": arn}])
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    return str(url)


def test_eventbridge_events_carry_the_detail_s3_documents(s3: Any, sqs: Any) -> None:
    # GIVEN a versioned bucket whose events go to EventBridge, and a rule that queues them
    _versioned(s3)
    url = _eventbridge_queue(s3, sqs)
    # WHEN the same key is written twice
    first = s3.put_object(Bucket=BUCKET, Key="in/a.json", Body=b"1")
    second = s3.put_object(Bucket=BUCKET, Key="in/a.json", Body=b"2")
    # THEN each detail names its version and ETag, and the later write has the greater sequencer
    details = [body["detail"] for body in _bodies(sqs, url)]
    objects = [detail["object"] for detail in details]
    assert [o["version-id"] for o in objects] == [first["VersionId"], second["VersionId"]]
    assert [o["etag"] for o in objects] == [first["ETag"].strip('"'), second["ETag"].strip('"')]
    assert all(SEQUENCER.match(o["sequencer"]) for o in objects)
    assert objects[0]["sequencer"] < objects[1]["sequencer"]
    assert [d["reason"] for d in details] == ["PutObject", "PutObject"]


def test_eventbridge_events_of_an_unversioned_bucket_have_no_version_id(s3: Any, sqs: Any) -> None:
    url = _eventbridge_queue(s3, sqs)
    s3.put_object(Bucket=BUCKET, Key="in/a.json", Body=b"1")
    [body] = _bodies(sqs, url)
    assert "version-id" not in body["detail"]["object"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", body["time"])


def test_sequencers_increase_and_keep_their_width() -> None:
    sequencers = [s3_fidelity.next_sequencer() for _ in range(1000)]
    assert sequencers == sorted(set(sequencers))
    assert {len(s) for s in sequencers} == {18}


def test_apply_is_idempotent() -> None:
    from moto.s3 import notifications

    s3_fidelity.apply()
    patched = notifications.send_event
    s3_fidelity.apply()
    assert notifications.send_event is patched


# --- Limits --------------------------------------------------------------------------------------------

LONGEST_KEY = "in/" + "k" * (s3_fidelity.MAX_KEY_BYTES - 3)
"""1,024 bytes: the longest key S3 accepts."""


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(LONGEST_KEY + "k", id="1025-ascii-bytes"),
        pytest.param("é" * 513, id="513-characters-1026-bytes"),
    ],
)
def test_keys_over_1024_bytes_are_refused(s3: Any, key: str) -> None:
    with pytest.raises(ClientError) as put:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"1")
    with pytest.raises(ClientError) as multipart:
        s3.create_multipart_upload(Bucket=BUCKET, Key=key)
    s3.put_object(Bucket=BUCKET, Key="src", Body=b"1")
    with pytest.raises(ClientError) as copy:
        s3.copy_object(Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": "src"})
    assert {_error(put), _error(multipart), _error(copy)} == {("KeyTooLongError", 400)}
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["src"]


def test_a_key_of_1024_bytes_is_accepted(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key=LONGEST_KEY, Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="é" * 512, Body=b"1")
    assert s3.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 2


def _metadata(size: int) -> dict[str, str]:
    """User metadata of exactly ``size`` bytes (names and values, as S3 counts them)."""
    return {"a": "v" * 1000, "b": "w" * (size - 1002)}


def test_metadata_over_2_kb_is_refused(s3: Any) -> None:
    too_large = _metadata(s3_fidelity.MAX_METADATA_BYTES + 1)
    with pytest.raises(ClientError) as put:
        s3.put_object(Bucket=BUCKET, Key="in/a", Body=b"1", Metadata=too_large)
    with pytest.raises(ClientError) as multipart:
        s3.create_multipart_upload(Bucket=BUCKET, Key="in/a", Metadata=too_large)
    s3.put_object(Bucket=BUCKET, Key="src", Body=b"1")
    with pytest.raises(ClientError) as copy:
        s3.copy_object(
            Bucket=BUCKET,
            Key="in/a",
            CopySource={"Bucket": BUCKET, "Key": "src"},
            Metadata=too_large,
            MetadataDirective="REPLACE",
        )
    assert {_error(put), _error(multipart), _error(copy)} == {("MetadataTooLarge", 400)}


def test_metadata_of_2_kb_is_accepted(s3: Any) -> None:
    largest = _metadata(s3_fidelity.MAX_METADATA_BYTES)
    s3.put_object(Bucket=BUCKET, Key="in/a", Body=b"1", Metadata=largest)
    s3.create_multipart_upload(Bucket=BUCKET, Key="in/b", Metadata=largest)
    s3.copy_object(Bucket=BUCKET, Key="in/c", CopySource={"Bucket": BUCKET, "Key": "in/a"})
    assert s3.head_object(Bucket=BUCKET, Key="in/c")["Metadata"] == largest


# --- Conditional completion of a multipart upload ------------------------------------------------------


def test_complete_multipart_with_a_stale_etag_is_refused(s3: Any) -> None:
    # GIVEN an object, read at one ETag and then overwritten
    stale = s3.put_object(Bucket=BUCKET, Key="in/a", Body=b"old")["ETag"]
    s3.put_object(Bucket=BUCKET, Key="in/a", Body=b"new")
    # WHEN a multipart upload completes on the condition that the object is still the one read
    with pytest.raises(ClientError) as refused:
        _multipart(s3, "in/a", b"mine", IfMatch=stale)
    # THEN S3 refuses it and the object is untouched
    assert _error(refused) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=BUCKET, Key="in/a")["Body"].read() == b"new"


def test_complete_multipart_if_match_on_a_missing_object_is_no_such_key(s3: Any) -> None:
    with pytest.raises(ClientError) as refused:
        _multipart(s3, "in/missing", b"mine", IfMatch='"0123456789abcdef0123456789abcdef"')
    assert _error(refused) == ("NoSuchKey", 404)


def test_complete_multipart_with_the_current_etag_replaces_the_object(s3: Any) -> None:
    current = s3.put_object(Bucket=BUCKET, Key="in/a", Body=b"old")["ETag"]
    _multipart(s3, "in/a", b"mine", IfMatch=current)
    assert s3.get_object(Bucket=BUCKET, Key="in/a")["Body"].read() == b"mine"


def test_a_retried_conditional_completion_is_answered_from_the_completed_upload(s3: Any) -> None:
    # GIVEN a multipart upload completed on the condition of the ETag it replaced
    current = s3.put_object(Bucket=BUCKET, Key="in/a", Body=b"old")["ETag"]
    upload = s3.create_multipart_upload(Bucket=BUCKET, Key="in/a")["UploadId"]
    etag = s3.upload_part(Bucket=BUCKET, Key="in/a", UploadId=upload, PartNumber=1, Body=b"mine")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    done = s3.complete_multipart_upload(
        Bucket=BUCKET, Key="in/a", UploadId=upload, MultipartUpload=parts, IfMatch=current
    )
    # WHEN the same request is retried (its response was lost), THEN it succeeds with the same object
    again = s3.complete_multipart_upload(
        Bucket=BUCKET, Key="in/a", UploadId=upload, MultipartUpload=parts, IfMatch=current
    )
    assert again["ETag"] == done["ETag"]
