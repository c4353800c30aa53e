"""``filepipe failed``: parked files are listed without being lost, retried exactly once, purged only on a yes.

The module runs its own dev stack whose handlers' S3 reads of ``flaky`` keys fail (503 SlowDown) while
:data:`FAULTS` is on: such a file is parked as ``RetriesExhaustedError`` on its last delivery, and once
the fault is off, a retry processes it. The handler parks on its second delivery here, to keep it short.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders

from filepipe.cli.ops.stack import Stack
from filepipe.handler.settings import EnvVar, FileStatus, StateAttribute
from filepipe.local.runtime import LocalRuntime, LocalTuning, RunningStack
from tests.local.conftest import PROJECT_DIR
from tests.ops.conftest import (
    HANG_GUARD_SECONDS,
    POISON_TRANSACTIONS,
    Ops,
    file_state,
    good_transactions,
    output_versions,
    paused,
    upload,
)

pytestmark = pytest.mark.e2e


class _FlakyReads:
    """Fails the handlers' S3 GetObject of keys containing ``flaky`` while :attr:`on` is set."""

    BODY = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

    def __init__(self) -> None:
        self.on = threading.Event()

    def hook(self, service: str, client: Any) -> None:
        if service == "s3":
            client.meta.events.register("before-send.s3.GetObject", self.maybe_fail)

    def maybe_fail(self, request: Any, **_: Any) -> AWSResponse | None:
        if not (self.on.is_set() and "flaky" in request.url):
            return None

        class Raw:
            def stream(self, **_: Any) -> Iterator[bytes]:
                yield _FlakyReads.BODY

        headers = HTTPHeaders()
        headers["Content-Type"] = "application/xml"
        return AWSResponse(request.url, 503, headers, Raw())


FAULTS = _FlakyReads()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, e2e_tier: None) -> Iterator[RunningStack]:
    fast = LocalTuning.fast()
    tuning = LocalTuning.fast(environment={**fast.environment, EnvVar.MAX_RECEIVE_COUNT.value: "2"})
    state_dir = tmp_path_factory.mktemp("state")
    with LocalRuntime(
        PROJECT_DIR, "dev", state_dir=state_dir, tuning=tuning, client_hook=FAULTS.hook
    ) as running:
        yield running


def _park_flaky(running: RunningStack, names: list[str]) -> list[str]:
    """Upload good files whose reads fail until they are parked; the fault is off again afterwards."""
    FAULTS.on.set()
    try:
        keys = [upload(running, "transactions", name, good_transactions()) for name in names]
        assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    finally:
        FAULTS.on.clear()
    return keys


def _parked(ops: Ops) -> dict[str, dict[str, Any]]:
    """The DLQ's messages of ``transactions`` by source key."""
    result = ops("failed list transactions --json")
    assert result.exit_code == 0, result.stderr
    return {key: message for message in result.json()["messages"] for key in message["keys"]}


def test_failed_list_shows_every_parked_file_with_its_reason_and_leaves_them_parked(
    running: RunningStack, ops: Ops, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN more poison files than one receive returns
    keys = {
        upload(running, "transactions", f"list/poison-{i:02d}.json", POISON_TRANSACTIONS) for i in range(12)
    }
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)

    # WHEN the parked files are listed twice
    first, second = _parked(ops), _parked(ops)

    # THEN each is listed once, with its reason and its state, and nothing left the DLQ by being read
    assert keys <= set(first)
    assert set(first) == set(second)
    for key in keys:
        message = first[key]
        assert message["errorType"] == "InvalidContentError"
        assert message["reason"]
        [state] = message["state"]
        assert (state[StateAttribute.STATUS], state[StateAttribute.ATTEMPTS]) == (FileStatus.FAILED, "1")
        assert second[key]["messageId"] == message["messageId"]
        assert second[key]["dlqReceiveCount"] == message["dlqReceiveCount"] + 1
    monkeypatch.setenv("COLUMNS", "160")  # the people's table, wide enough not to fold a word
    people = ops("failed list transactions")
    assert people.exit_code == 0, people.stderr
    assert "InvalidContentError" in people.stdout


def test_failed_show_and_export_give_the_whole_message(
    running: RunningStack, ops: Ops, tmp_path: Path
) -> None:
    [key] = [upload(running, "transactions", "show/poison.json", POISON_TRANSACTIONS)]
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    message_id = _parked(ops)[key]["messageId"]

    shown = ops(f"failed show transactions {message_id[:8]} --json")
    exported = ops(f"failed export transactions {tmp_path / 'parked.jsonl'}")
    unknown = ops("failed show transactions no-such-id")

    assert shown.exit_code == 0, shown.stderr
    document = shown.json()
    assert document["messageId"] == message_id
    assert json.loads(document["body"])["Records"][0]["s3"]["object"]["key"].endswith("poison.json")
    assert document["attributes"]["filepipe-source-key"] == key
    assert exported.exit_code == 0, exported.stderr
    lines = [json.loads(line) for line in (tmp_path / "parked.jsonl").read_text().splitlines()]
    assert message_id in {line["messageId"] for line in lines}
    assert (
        len(lines)
        == len({line["messageId"] for line in lines})
        == ops("failed list transactions --json").json()["count"]
    )
    assert unknown.exit_code == 2
    assert unknown.stderr.strip().splitlines() == [
        "filepipe: no message no-such-id in the DLQ of transactions"
    ]


def test_a_filtered_retry_moves_exactly_the_matching_messages_and_each_is_processed_once(
    running: RunningStack, ops: Ops
) -> None:
    # GIVEN three files parked by a fault that is now gone, and a poison file, all under one folder
    flaky = _park_flaky(running, [f"retry/flaky-{i}.json" for i in range(3)])
    poison = upload(running, "transactions", "retry/poison.json", POISON_TRANSACTIONS)
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    parked = _parked(ops)
    assert {parked[key]["errorType"] for key in flaky} == {"RetriesExhaustedError"}

    # WHEN a dry run, then the retry, select the exhausted files under the folder
    selection = "--error-type RetriesExhaustedError --key '*/retry/*'"
    with paused(running):
        dry = ops(f"failed retry transactions {selection} --dry-run --json")
        after_dry = _parked(ops)
        retried = ops(f"failed retry transactions {selection} --yes --json")
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)

    # THEN the dry run changed nothing; the retry sent exactly those three, each processed once
    assert dry.exit_code == 0, dry.stderr
    assert sorted(key for message in dry.json()["messages"] for key in message["keys"]) == sorted(flaky)
    assert set(after_dry) == set(parked)
    assert retried.exit_code == 0, retried.stderr
    assert (retried.json()["retried"], retried.json()["left"]) == (3, 0)
    remaining = _parked(ops)
    assert poison in remaining
    assert not set(flaky) & set(remaining)
    for key in flaky:
        assert output_versions(running, key) == 1
        assert file_state(running, key)[StateAttribute.STATUS] == FileStatus.SUCCEEDED


def _replace_without_attributes(sqs: Any, dlq_url: str, body: str) -> None:
    """Swap the DLQ message with ``body`` for a copy without message attributes; others stay as they were."""
    held: list[str] = []
    while batch := sqs.receive_message(
        QueueUrl=dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=120
    ).get("Messages", []):
        for message in batch:
            if message["Body"] == body:
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            else:
                held.append(message["ReceiptHandle"])
    for handle in held:
        sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=handle, VisibilityTimeout=0)
    sqs.send_message(QueueUrl=dlq_url, MessageBody=body)


def test_a_message_moved_by_sqs_redrive_without_attributes_is_listed_and_retried_from_its_body(
    running: RunningStack, ops: Ops
) -> None:
    # GIVEN a parked file whose DLQ message lost the handler's attributes (as SQS's own redrive moves it)
    [key] = _park_flaky(running, ["redriven/flaky.json"])
    dlq_url = running.pipeline_outputs("transactions")["dlqUrl"]
    sqs = running.address.client("sqs")
    with paused(running):
        exported = [json.loads(line) for line in ops("failed export transactions -").stdout.splitlines()]
        [body] = [line["body"] for line in exported if key in line["keys"]]
        _replace_without_attributes(sqs, dlq_url, body)
        listed = _parked(ops)[key]

        # WHEN it is retried by its key
        retried = ops("failed retry transactions --key '*/redriven/*' --yes --json")
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)

    # THEN its key came from the body, and the file was reset and processed once
    assert (listed["errorType"], listed["attributes"]) == ("", {})
    assert retried.exit_code == 0, retried.stderr
    assert retried.json()["retried"] == 1
    assert output_versions(running, key) == 1
    assert file_state(running, key)[StateAttribute.STATUS] == FileStatus.SUCCEEDED


@pytest.mark.parametrize("interrupted", ["SendMessageBatch", "DeleteMessageBatch"])
def test_an_interrupted_retry_loses_nothing_and_resumes(
    running: RunningStack, ops: Ops, monkeypatch: pytest.MonkeyPatch, interrupted: str
) -> None:
    # GIVEN more parked files than one batch, and a retry interrupted (Ctrl-C) at its second send or delete
    flaky = _park_flaky(running, [f"resume-{interrupted}/flaky-{i:02d}.json" for i in range(12)])
    calls: list[str] = []

    def interrupt(**_: Any) -> None:
        calls.append(interrupted)
        if len(calls) == 2:
            raise KeyboardInterrupt

    original = Stack.client

    def client(self: Stack, service: str) -> Any:
        made = original(self, service)
        if service == "sqs" and not calls and made not in hooked:
            made.meta.events.register(f"before-call.sqs.{interrupted}", interrupt)
            hooked.append(made)
        return made

    hooked: list[Any] = []
    monkeypatch.setattr(Stack, "client", client)
    selection = f"--key '*/resume-{interrupted}/*' --yes --json"

    # WHEN the retry is interrupted, then run again
    with paused(running):
        first = ops(f"failed retry transactions {selection}")
    monkeypatch.undo()
    with paused(running):
        resumed = ops(f"failed retry transactions {selection}")
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)

    # THEN every file was processed exactly once and none is left in the DLQ
    assert first.exit_code == 130
    assert resumed.exit_code == 0, resumed.stderr
    assert not set(flaky) & set(_parked(ops))
    for key in flaky:
        assert output_versions(running, key) == 1, key
        assert file_state(running, key)[StateAttribute.STATUS] == FileStatus.SUCCEEDED


def test_purge_without_yes_and_without_a_terminal_deletes_nothing(running: RunningStack, ops: Ops) -> None:
    upload(running, "transactions", "purge/poison.json", POISON_TRANSACTIONS)
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    before = _parked(ops)

    result = ops("failed purge transactions")

    assert result.exit_code != 0
    assert "nothing purged" in result.stderr
    assert set(_parked(ops)) == set(before)


def test_purge_with_yes_empties_the_dlq(running: RunningStack, ops: Ops) -> None:
    outputs = running.pipeline_outputs("invoices")
    running.address.client("sqs").send_message(QueueUrl=outputs["dlqUrl"], MessageBody="{}")

    result = ops("failed purge invoices --yes")

    assert result.exit_code == 0, result.stderr
    assert "60 s" in result.stdout
    assert ops("failed list invoices --json").json()["count"] == 0
