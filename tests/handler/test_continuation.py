"""A file that outgrows one invocation is checkpointed and continued, never restarted or retried blind.

Each test drives the handler as the event source mapping would: an invocation whose remaining time
runs low after a set number of batches, then the fresh copy of the message it sent, until the file is
final. The output must be the one a single invocation writes, byte for byte.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace
from typing import Any

import boto3
import pytest

from filepipe.handler.batch import BatchHandler
from filepipe.handler.clients import Clients
from filepipe.handler.continuation import pack_carry
from filepipe.handler.processing import FileProcessor
from filepipe.handler.readers import CHUNK_BYTES
from filepipe.handler.settings import (
    DlqAttribute,
    FileFormat,
    FileStatus,
    HandlerSettings,
    InvalidRecordPolicy,
    StateAttribute,
)
from filepipe.handler.state import DynamoStateStore
from filepipe.handler.validation import load_validator
from filepipe.handler.writers import (
    MAX_PART_BYTES,
    MAX_PARTS,
    MIN_PART_BYTES,
    S3StreamWriter,
    UploadState,
    part_size,
)
from tests.conftest import REGION

from .conftest import BUCKET, NO_RETRIES, STATE_TABLE, Aws, FakeContext, dlq_attributes
from .events import s3_body

FULL = 60_000
LOW = 1_000
"""Remaining milliseconds: a whole invocation, and less than half the handler's 10 s margin."""


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def cut_after(batches: int) -> FakeContext:
    """A context whose time runs low after ``batches`` batches of the first file: the handler asks
    for the remaining time at the start of the invocation, before the file, when the file starts, and
    after each batch."""
    return FakeContext(*([FULL] * (3 + batches - 1)), LOW)


def handler_for(aws: Aws, clock: Clock, clients: Clients | None = None, **overrides: Any) -> BatchHandler:
    """The real handler, on a state table whose clock the test moves (leases expire on command)."""
    settings: HandlerSettings = replace(aws.settings, **overrides)
    client_set = clients or aws.clients
    state = DynamoStateStore(
        client_set, STATE_TABLE, settings.lease_seconds, settings.state_ttl_days, clock=clock
    )
    validator = load_validator(settings.schema_file) if settings.schema_file else None
    return BatchHandler(settings, client_set, FileProcessor(settings, client_set, state, validator, None))


def deliveries(aws: Aws) -> list[dict[str, Any]]:
    """The messages waiting on the source queue, each as a one-message Lambda event."""
    events: list[dict[str, Any]] = []
    while True:
        received = aws.sqs.receive_message(
            QueueUrl=aws.queue_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return events
        events.extend({"Records": [aws._lambda_record(message)]} for message in received)


def run_to_the_end(
    aws: Aws, handler: BatchHandler, event: dict[str, Any], batches_per_invocation: int, limit: int = 40
) -> int:
    """Invoke until no message is left (each one acknowledged, as the mapping deletes a success);
    returns the number of invocations."""
    pending = [event]
    invocations = 0
    while pending:
        current = pending.pop(0)
        response = handler(current, cut_after(batches_per_invocation))
        assert response == {"batchItemFailures": []}, response
        for record in current["Records"]:
            aws.sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=record["receiptHandle"])
        invocations += 1
        assert invocations <= limit, "the file never finished"
        parked = aws.dlq_messages()
        assert not parked, [dlq_attributes(message) for message in parked]
        pending.extend(deliveries(aws))
    return invocations


def ndjson_file(records: int, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    lines = [
        json.dumps(
            {"id": n, "name": f"café-{n}", "amount": rng.random() * 1000, "tags": ["a", "ü"]},
            ensure_ascii=False,
        )
        for n in range(records)
    ]
    return ("\n".join(lines) + "\n").encode()


def single_run_output(aws: Aws, key: str, body: bytes, **overrides: Any) -> bytes:
    """What one unhurried invocation writes for ``body`` (then the key is cleared for the real test)."""
    put = aws.put(key, body)
    handler = aws.handler(**overrides)
    assert handler(aws.batch(s3_body(key=key, put=put)), FakeContext()) == {"batchItemFailures": []}
    deliveries(aws)  # drain (there is nothing to continue)
    [item] = aws.state_items()
    output: bytes = aws.read(item["output_key"])
    aws.s3.delete_object(Bucket=BUCKET, Key=item["output_key"])
    aws.dynamodb.delete_item(TableName=STATE_TABLE, Key={"pk": {"S": f"{BUCKET}/{key}"}})
    return output


def without_time(envelope: bytes) -> bytes:
    return re.sub(rb'"processed_at": "[^"]+"', b'"processed_at": "T"', envelope)


def no_uploads_left(aws: Aws) -> bool:
    return not aws.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])


@pytest.mark.parametrize(
    ("input_format", "output_format", "suffix"),
    [
        pytest.param(FileFormat.NDJSON, FileFormat.NDJSON, "ndjson", id="ndjson"),
        pytest.param(FileFormat.NDJSON, FileFormat.JSON, "ndjson", id="ndjson-to-envelope"),
        pytest.param(FileFormat.CSV, FileFormat.CSV, "csv", id="csv-keeps-its-header-once"),
        pytest.param(FileFormat.JSON, FileFormat.NDJSON, "json", id="json-array"),
    ],
)
def test_a_file_continued_over_several_invocations_gives_the_single_run_output(
    aws: Aws,
    capsys: pytest.CaptureFixture[str],
    input_format: FileFormat,
    output_format: FileFormat,
    suffix: str,
) -> None:
    # GIVEN a ~20 MiB file and invocations that each have time for 14 batches (~7 MiB)
    rows: list[dict[str, Any]] = [
        {"id": n, "name": f'naïve, "quoted" {n}', "amount": n * 0.25, "note": "x" * 60}
        for n in range(150_000)
    ]
    if input_format is FileFormat.CSV:
        body = (
            "id,name,amount,note\r\n"
            + "".join(
                f'{r["id"]},"{r["name"].replace(chr(34), chr(34) * 2)}",{r["amount"]},{r["note"]}\r\n'
                for r in rows
            )
        ).encode()
    elif input_format is FileFormat.JSON:
        body = json.dumps(rows, ensure_ascii=False, indent=1).encode()
    else:
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    settings: dict[str, Any] = {"input_format": input_format, "output_format": output_format}
    expected = single_run_output(aws, f"in/big.{suffix}", body, **settings)
    capsys.readouterr()
    clock = Clock()
    put = aws.put(f"in/big.{suffix}", body)

    # WHEN it is delivered and each fresh copy is handled in turn
    handler = handler_for(aws, clock, **settings)
    invocations = run_to_the_end(aws, handler, aws.batch(s3_body(key=f"in/big.{suffix}", put=put)), 14)

    # THEN it took several invocations, and wrote exactly the single-run output once
    assert invocations >= 3
    [item] = aws.state_items()
    output = aws.read(item["output_key"])
    if output_format is FileFormat.JSON:
        assert without_time(output) == without_time(expected)
        assert json.loads(output)["record_count"] == len(rows)
    else:
        assert output == expected
    if output_format is FileFormat.CSV:
        assert output.count(b"id,name,amount,note") == 1
    assert (item["status"], int(item["records"]), int(item["bytes_read"])) == (
        FileStatus.SUCCEEDED,
        len(rows),
        len(body),
    )
    assert "continuation" not in item and "resume_offset" not in item
    assert no_uploads_left(aws)
    # Continuations are counted as such, never as retries or failures.
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    continued = sum(sum(blob.get("FilesContinued", [0])) for blob in metrics)
    assert continued == invocations - 1
    assert not any("FilesRetried" in blob or "FilesFailed" in blob for blob in metrics)


def test_between_invocations_the_state_item_shows_where_the_file_resumes(aws: Aws) -> None:
    # GIVEN a file cut after its first invocation
    body = ndjson_file(120_000)
    put = aws.put("in/progress.ndjson", body)
    handler = handler_for(aws, Clock(), input_format=FileFormat.NDJSON, output_format=FileFormat.NDJSON)

    # WHEN the first invocation ends
    assert handler(aws.batch(s3_body(key="in/progress.ndjson", put=put)), cut_after(14)) == {
        "batchItemFailures": []
    }

    # THEN the file is PROCESSING with its checkpoint, its lease given back, and a fresh copy queued
    [item] = aws.state_items()
    assert item["status"] == FileStatus.PROCESSING
    assert 0 < int(item["resume_offset"]) < len(body)
    assert int(item["continuations"]) == 1
    checkpoint = json.loads(item["continuation"])
    assert checkpoint["output"]["upload_id"] and checkpoint["output"]["etags"]
    assert float(item["lease_until"]) < Clock().now
    [fresh] = deliveries(aws)
    attributes = fresh["Records"][0]["attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"  # a fresh message: not a receive toward the DLQ


def test_a_crash_between_checkpoints_resumes_from_the_last_one_and_writes_nothing_twice(aws: Aws) -> None:
    # GIVEN a file whose second invocation dies (the process is killed) while it uploads a part
    body = ndjson_file(240_000)
    settings: dict[str, Any] = {"input_format": FileFormat.NDJSON, "output_format": FileFormat.NDJSON}
    expected = single_run_output(aws, "in/crash.ndjson", body, **settings)
    clock = Clock()
    put = aws.put("in/crash.ndjson", body)
    handler = handler_for(aws, clock, **settings)
    assert handler(aws.batch(s3_body(key="in/crash.ndjson", put=put)), cut_after(14)) == {
        "batchItemFailures": []
    }
    [second] = deliveries(aws)

    class Killed(BaseException):
        pass

    uploads = aws.faults.record(aws.s3, "UploadPart")

    def kill(params: dict[str, Any], **_: Any) -> None:
        if len(uploads) >= 2:  # after this invocation sent a part of its own
            raise Killed

    aws.s3.meta.events.register("before-parameter-build.s3.UploadPart", kill)
    with pytest.raises(Killed):
        handler(second, cut_after(60))
    aws.s3.meta.events.unregister("before-parameter-build.s3.UploadPart", kill)

    # WHEN the message comes back after the dead invocation's lease expired
    clock.now += aws.settings.lease_seconds + 1
    retried = aws.redeliver(second)
    invocations = run_to_the_end(aws, handler, retried, 14)

    # THEN the output is the single-run output: the parts sent after the checkpoint were sent again
    [item] = aws.state_items()
    assert invocations >= 2
    assert aws.read(item["output_key"]) == expected
    assert int(item["records"]) == 240_000
    assert no_uploads_left(aws)


def checkpointed_once(
    aws: Aws, key: str, records: int, batches: int
) -> tuple[bytes, BatchHandler, dict[str, Any]]:
    """An NDJSON file of ``records`` whose first invocation had time for ``batches`` batches: the output
    one run writes for it, the handler, and the continuation's delivery."""
    body = ndjson_file(records)
    settings: dict[str, Any] = {"input_format": FileFormat.NDJSON, "output_format": FileFormat.NDJSON}
    expected = single_run_output(aws, key, body, **settings)
    put = aws.put(key, body)
    handler = handler_for(aws, Clock(), **settings)
    assert handler(aws.batch(s3_body(key=key, put=put)), cut_after(batches)) == {"batchItemFailures": []}
    [second] = deliveries(aws)
    return expected, handler, second


def is_checkpoint(params: dict[str, Any]) -> bool:
    return "#continuation" in params.get("ExpressionAttributeNames", {})


def test_a_refused_checkpoint_write_retries_from_the_previous_checkpoint_and_writes_nothing_twice(
    aws: Aws,
) -> None:
    # GIVEN a file checkpointed once, whose second checkpoint write the state table refuses (as it
    # refuses an item over 400 KB); the invocation had sent parts of its own after the first checkpoint
    expected, handler, second = checkpointed_once(aws, "in/refused.ndjson", 360_000, batches=20)
    first_checkpoint = json.loads(aws.state_items()[0]["continuation"])
    aws.faults.fail(aws.dynamodb, "UpdateItem", "ValidationException", 400, times=1, when=is_checkpoint)

    # WHEN the second invocation runs out of time and cannot record its checkpoint
    refused = handler(second, cut_after(30))

    # THEN it fails transiently, the item still holds the first checkpoint, and the retry resumes from
    # it into exactly the single-run output
    assert refused == {"batchItemFailures": [{"itemIdentifier": second["Records"][0]["messageId"]}]}
    [item] = aws.state_items()
    assert json.loads(item["continuation"]) == first_checkpoint
    invocations = run_to_the_end(aws, handler, aws.redeliver(second), 20)
    [item] = aws.state_items()
    assert invocations >= 2
    assert item["status"] == FileStatus.SUCCEEDED
    assert aws.read(item["output_key"]) == expected
    assert no_uploads_left(aws)


def test_a_checkpoint_whose_carry_is_not_its_own_is_not_resumed_and_the_file_starts_again(
    aws: Aws, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a file checkpointed once, whose state item then holds a carry that is not the checkpoint's
    # (what a half-applied write would leave: the new part list with an older carry)
    expected, handler, second = checkpointed_once(aws, "in/mixed.ndjson", 120_000, batches=14)
    assert len(aws.s3.list_multipart_uploads(Bucket=BUCKET)["Uploads"]) == 1
    stale = pack_carry(b'{"id": 0}\n' * 409 + b"xxxxxx")  # 4,096 bytes of some earlier output
    aws.dynamodb.update_item(
        TableName=STATE_TABLE,
        Key={"pk": {"S": f"{BUCKET}/in/mixed.ndjson"}},
        UpdateExpression="SET #carry = :carry",
        ExpressionAttributeNames={"#carry": StateAttribute.CARRY.value},
        ExpressionAttributeValues={":carry": {"B": stale}},
    )

    # WHEN its continuation is delivered
    invocations = run_to_the_end(aws, handler, second, 60)

    # THEN the file was processed again from its first byte into the single-run output, the
    # inconsistent checkpoint's upload was aborted, and the restart was logged with its reason
    [item] = aws.state_items()
    assert item["status"] == FileStatus.SUCCEEDED
    assert aws.read(item["output_key"]) == expected
    assert int(item["records"]) == 120_000
    assert no_uploads_left(aws)
    assert invocations == 1
    # (caplog: the service's Powertools handler keeps the stdout of the test that first built it)
    [restart] = [r for r in caplog.records if "checkpoint was inconsistent" in r.getMessage()]
    assert restart.levelname == "WARNING"
    assert "the carry holds 4096 bytes" in restart.__dict__["reason"]


def test_a_resumed_writer_knows_the_size_of_the_parts_it_was_handed(aws: Aws) -> None:
    # GIVEN a writer resumed from a checkpoint of two parts and a 3-byte carry, 100 bytes in all
    resumed = UploadState("upload-1", ['"etag-1"', '"etag-2"'], b"abc", 100)
    writer = S3StreamWriter(aws.s3, BUCKET, "out/x.ndjson", "application/x-ndjson", {}, resume=resumed)

    # THEN a checkpoint through its handed-over parts says they hold all but the carry
    assert writer.handover(through=2) == UploadState("upload-1", ['"etag-1"', '"etag-2"'], b"", 97)
    assert writer.handover(through=0).size == 0
    assert writer.handover() == resumed
    # and no checkpoint can point inside them (their sizes one by one were never recorded)
    with pytest.raises(ValueError, match="unknown"):
        writer.handover(through=1)


def test_a_new_version_mid_continuation_abandons_the_old_one_and_aborts_its_upload(aws: Aws) -> None:
    # GIVEN version 1 of a file, checkpointed after its first invocation
    clock = Clock()
    settings: dict[str, Any] = {"input_format": FileFormat.NDJSON, "output_format": FileFormat.NDJSON}
    handler = handler_for(aws, clock, **settings)
    first = aws.put("in/changing.ndjson", ndjson_file(120_000, seed=1))
    assert handler(aws.batch(s3_body(key="in/changing.ndjson", put=first)), cut_after(14)) == {
        "batchItemFailures": []
    }
    [old_copy] = deliveries(aws)
    assert len(aws.s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])) == 1

    # WHEN version 2 arrives and is processed, then version 1's continuation is delivered
    new_body = b'{"version":2}\n'
    second = aws.put("in/changing.ndjson", new_body)
    assert handler(aws.batch(s3_body(key="in/changing.ndjson", put=second)), FakeContext()) == {
        "batchItemFailures": []
    }
    assert handler(old_copy, FakeContext()) == {"batchItemFailures": []}

    # THEN the output is version 2's, version 1's upload is aborted, and its continuation was skipped
    [item] = aws.state_items()
    assert item["status"] == FileStatus.SUCCEEDED and item["version"] == f"v#{second['VersionId']}"
    assert aws.read("out/changing.ndjson") == new_body
    assert no_uploads_left(aws)
    assert deliveries(aws) == []


def test_a_lease_that_expires_while_the_checkpoint_is_taken_loses_nothing(aws: Aws) -> None:
    # GIVEN an invocation that runs out of time; while it records its checkpoint, its lease has expired
    # and a duplicate delivery of the same event takes the file over and finishes it
    body = ndjson_file(120_000)
    settings: dict[str, Any] = {"input_format": FileFormat.NDJSON, "output_format": FileFormat.NDJSON}
    expected = single_run_output(aws, "in/race.ndjson", body, **settings)
    clock = Clock()
    put = aws.put("in/race.ndjson", body)
    event = aws.batch(s3_body(key="in/race.ndjson", put=put))
    other_clients = Clients(
        s3=boto3.client("s3", region_name=REGION, config=NO_RETRIES),
        sqs=boto3.client("sqs", region_name=REGION, config=NO_RETRIES),
        dynamodb=boto3.client("dynamodb", region_name=REGION, config=NO_RETRIES),
    )
    slow = handler_for(aws, clock, **settings)
    rival = handler_for(aws, clock, clients=other_clients, **settings)
    duplicate = aws.redeliver(event)
    race: list[dict[str, Any]] = []

    def take_over(params: dict[str, Any], **_: Any) -> None:
        if "#continuation" in params.get("ExpressionAttributeNames", {}) and not race:
            clock.now += aws.settings.lease_seconds + 1
            race.append(rival(duplicate, FakeContext()))

    aws.dynamodb.meta.events.register("before-parameter-build.dynamodb.UpdateItem", take_over)

    # WHEN the slow invocation's checkpoint write goes through (after the rival finished)
    response = slow(event, cut_after(14))

    # THEN its checkpoint is refused (the rival holds the file), it gives up its own upload, the rival's
    # output is the single-run output, and the slow message's retry is skipped as a duplicate
    assert race == [{"batchItemFailures": []}]
    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    [item] = aws.state_items()
    assert item["status"] == FileStatus.SUCCEEDED
    assert aws.read(item["output_key"]) == expected
    assert no_uploads_left(aws)
    assert slow(aws.redeliver(event), FakeContext()) == {"batchItemFailures": []}
    assert aws.read(item["output_key"]) == expected


def test_rejects_written_across_invocations_are_the_single_run_rejects(aws: Aws, tmp_path: Any) -> None:
    # GIVEN a schema that every tenth record violates, and the write-rejects policy
    schema = tmp_path / "schema.json"
    schema.write_text(
        json.dumps(
            {"type": "object", "properties": {"id": {"type": "integer", "multipleOf": 1}, "bad": {"not": {}}}}
        )
    )
    lines = [
        json.dumps({"id": n, "pad": "p" * 80} if n % 10 else {"id": n, "bad": True}) for n in range(120_000)
    ]
    body = ("\n".join(lines) + "\n").encode()
    settings: dict[str, Any] = {
        "input_format": FileFormat.NDJSON,
        "output_format": FileFormat.NDJSON,
        "schema_file": str(schema),
        "invalid_records": InvalidRecordPolicy.WRITE_REJECTS,
    }
    expected = single_run_output(aws, "in/mixed.ndjson", body, **settings)
    expected_rejects = aws.read("out/mixed.ndjson.rejects.ndjson")
    aws.s3.delete_object(Bucket=BUCKET, Key="out/mixed.ndjson.rejects.ndjson")
    put = aws.put("in/mixed.ndjson", body)

    # WHEN processed over several invocations
    handler = handler_for(aws, Clock(), **settings)
    invocations = run_to_the_end(aws, handler, aws.batch(s3_body(key="in/mixed.ndjson", put=put)), 14)

    # THEN both outputs are the single run's (the rejects, too small for a part, were carried in the
    # state item), and the counts too
    [item] = aws.state_items()
    assert invocations >= 2
    assert aws.read("out/mixed.ndjson") == expected
    assert aws.read("out/mixed.ndjson.rejects.ndjson") == expected_rejects
    assert (int(item["records"]), int(item["rejected"])) == (108_000, 12_000)
    assert no_uploads_left(aws)


def test_an_output_carried_in_the_state_item_continues_a_file_whose_output_is_small(aws: Aws) -> None:
    # GIVEN a pipeline whose processor keeps one record in a thousand: no invocation fills a part
    body = ndjson_file(80_000)
    settings: dict[str, Any] = {"input_format": FileFormat.NDJSON, "output_format": FileFormat.JSON}

    def keep_some(record: Any) -> Any:
        return record if record["id"] % 1000 == 0 else None

    def handler_keeping(clock: Clock) -> BatchHandler:
        s = replace(aws.settings, **settings)
        state = DynamoStateStore(aws.clients, STATE_TABLE, s.lease_seconds, s.state_ttl_days, clock=clock)
        return BatchHandler(s, aws.clients, FileProcessor(s, aws.clients, state, None, keep_some))

    put = aws.put("in/filtered.ndjson", body)
    expected_records = [json.loads(line) for line in body.splitlines() if json.loads(line)["id"] % 1000 == 0]

    # WHEN each invocation has time for four batches
    invocations = run_to_the_end(
        aws, handler_keeping(Clock()), aws.batch(s3_body(key="in/filtered.ndjson", put=put)), 2
    )

    # THEN it went on from checkpoint to checkpoint, and the envelope holds each kept record once
    assert invocations >= 4
    envelope = json.loads(aws.read("out/filtered.json"))
    assert envelope["data"] == expected_records and envelope["record_count"] == 80
    assert no_uploads_left(aws)


def test_an_invocation_too_short_to_make_any_output_durable_parks_the_file_with_what_it_needs(
    aws: Aws,
) -> None:
    # GIVEN output that does not compress into the state item and an invocation with time for two batches
    rng = random.Random(9)
    body = b"".join(json.dumps({"r": rng.randbytes(40).hex()}).encode() + b"\n" for _ in range(40_000))
    assert len(body) > 2 * CHUNK_BYTES
    put = aws.put("in/noise.ndjson", body)
    handler = handler_for(aws, Clock(), input_format=FileFormat.NDJSON, output_format=FileFormat.NDJSON)

    # WHEN it runs out of time
    response = handler(aws.batch(s3_body(key="in/noise.ndjson", put=put)), cut_after(2))

    # THEN it is parked at once (not retried five times), saying why and what to change
    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    attributes = dlq_attributes(parked)
    assert attributes[DlqAttribute.ERROR_TYPE] == "NeedsMoreTimeError"
    assert "raise timeout_seconds or memory_mb" in attributes[DlqAttribute.REASON]
    assert no_uploads_left(aws)


def test_without_a_state_table_a_file_that_had_the_whole_invocation_is_parked_not_retried(aws: Aws) -> None:
    put = aws.put("in/long.json", json.dumps([{"n": n, "pad": "x" * 40} for n in range(60_000)]))

    response = aws.handler(state_table=None)(aws.batch(s3_body(key="in/long.json", put=put)), cut_after(2))

    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    attributes = dlq_attributes(parked)
    assert attributes[DlqAttribute.ERROR_TYPE] == "NeedsMoreTimeError"
    assert "without a state table" in attributes[DlqAttribute.REASON]


def test_a_json_document_that_cannot_be_parsed_in_the_time_it_has_is_parked_at_once(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a 128 MB function (a small share of a vCPU) with 1.5 s per invocation, and a 3 MB document
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
    put = aws.put("in/doc.json", json.dumps({"items": [{"n": n} for n in range(300_000)]}))

    response = aws.handler(timeout_margin_ms=1_000)(
        aws.batch(s3_body(key="in/doc.json", put=put)), FakeContext(1_500)
    )

    assert response == {"batchItemFailures": []}
    [parked] = aws.dlq_messages()
    attributes = dlq_attributes(parked)
    assert attributes[DlqAttribute.ERROR_TYPE] == "NeedsMoreTimeError"
    assert "not an array" in attributes[DlqAttribute.REASON] and "128 MB" in attributes[DlqAttribute.REASON]


@pytest.mark.parametrize("number", [1, 500, 501, 1000, 1001, 5500, MAX_PARTS])
def test_part_sizes_stay_within_s3s_limits(number: int) -> None:
    assert MIN_PART_BYTES <= part_size(number) <= MAX_PART_BYTES


def test_part_sizes_grow_so_that_s3s_largest_object_fits_in_its_part_limit() -> None:
    five_terabytes = 5 * 1024**4
    total = 0
    for number in range(1, MAX_PARTS + 1):
        total += part_size(number)
        if total >= five_terabytes:
            break
    assert total >= five_terabytes
    assert number < MAX_PARTS
    assert part_size(1) == 8 * 1024 * 1024  # a file of a few GB keeps small parts (and memory)


def test_an_output_whose_carry_does_not_fit_resumes_from_its_last_part_and_writes_nothing_twice(
    aws: Aws,
) -> None:
    # GIVEN incompressible records, and invocations that each get past one part (8 MiB) but stop with
    # 4 MiB after it: too little for a part, too much for the state item
    rng = random.Random(5)
    body = b"".join(
        json.dumps({"n": n, "r": rng.randbytes(48).hex()}).encode() + b"\n" for n in range(200_000)
    )
    settings: dict[str, Any] = {"input_format": FileFormat.NDJSON, "output_format": FileFormat.NDJSON}
    expected = single_run_output(aws, "in/noisy.ndjson", body, **settings)
    put = aws.put("in/noisy.ndjson", body)

    # WHEN processed with 24 batches (12 MiB) per invocation
    handler = handler_for(aws, Clock(), **settings)
    invocations = run_to_the_end(aws, handler, aws.batch(s3_body(key="in/noisy.ndjson", put=put)), 24)

    # THEN each invocation went on from the end of its last part, and the output is the single run's
    [item] = aws.state_items()
    assert invocations >= 2
    assert aws.read("out/noisy.ndjson") == expected
    assert int(item["records"]) == 200_000
    assert no_uploads_left(aws)
