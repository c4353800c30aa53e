from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from filepipe.local.esm import (
    EventSourceMappingRunner,
    FunctionSpec,
    MappingConfigError,
    MappingSpec,
    check_mapping,
    failed_message_ids,
)
from filepipe.local.metrics import LAMBDA_NAMESPACE, LocalMetrics, MetricQuery
from tests.conftest import REGION
from tests.local.conftest import make_queues, queue_depth, visible_messages, wait_until

FUNCTION = FunctionSpec(name="fn", arn="arn:aws:lambda:eu-west-1:123456789012:function:fn", timeout_seconds=2)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(None, set(), id="null-response"),
        pytest.param({}, set(), id="no-key"),
        pytest.param({"batchItemFailures": None}, set(), id="null-list"),
        pytest.param({"batchItemFailures": []}, set(), id="empty-list"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}, id="one-failed"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": "zz"}]}, {"a", "b"}, id="unknown-id"),
        pytest.param({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}, id="empty-id"),
        pytest.param({"batchItemFailures": [{}]}, {"a", "b"}, id="missing-id"),
        pytest.param({"batchItemFailures": "b"}, {"a", "b"}, id="not-a-list"),
        pytest.param("oops", {"a", "b"}, id="not-a-mapping"),
    ],
)
def test_failed_message_ids_follow_lambda_rules(response: Any, expected: set[str]) -> None:
    assert failed_message_ids(response, ["a", "b"]) == expected


def _runner(
    sqs_factory: Callable[[], Any],
    handler: Callable[[dict[str, Any], Any], Any],
    queue_url: str,
    queue_arn: str,
    *,
    function: FunctionSpec = FUNCTION,
    metrics: LocalMetrics | None = None,
    **mapping: Any,
) -> EventSourceMappingRunner:
    spec = MappingSpec(
        name="m", queue_url=queue_url, queue_arn=queue_arn, function_name=function.name, **mapping
    )
    return EventSourceMappingRunner(spec, function, handler, sqs_factory, region=REGION, metrics=metrics)


def test_successful_batches_are_deleted_and_records_have_lambda_shape(sqs_factory: Callable[[], Any]) -> None:
    # GIVEN 25 messages and a mapping with batch size 10
    sqs = sqs_factory()
    queues = make_queues(sqs, visibility_timeout=30)  # no redelivery of a batch slowed by a busy host
    for index in range(25):
        sqs.send_message(QueueUrl=queues.url, MessageBody=f"m{index}")
    seen: list[dict[str, Any]] = []
    sizes: list[int] = []
    remaining_ms: list[int] = []
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            sizes.append(len(event["Records"]))
            seen.extend(event["Records"])
            remaining_ms.append(context.get_remaining_time_in_millis())
        return {"batchItemFailures": []}

    runner = _runner(sqs_factory, handler, queues.url, queues.arn, batch_size=10, batching_window_seconds=0.5)
    # WHEN the mapping runs until the queue is empty
    runner.start()
    try:
        assert wait_until(lambda: queue_depth(sqs, queues.url) == 0 and not runner.busy)
    finally:
        runner.stop()
    # THEN every message was delivered once in batches of at most 10, in Lambda's record shape
    assert sorted(record["body"] for record in seen) == sorted(f"m{index}" for index in range(25))
    assert max(sizes) <= 10
    # ... each invocation seeing the deadline of the function's 2 s timeout
    assert all(0 < remaining <= 2000 for remaining in remaining_ms)
    record = seen[0]
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queues.arn
    assert record["awsRegion"] == REGION
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert {"messageId", "receiptHandle", "md5OfBody", "messageAttributes"} <= record.keys()
    assert runner.stats.messages_deleted == 25


def test_reported_failures_are_redelivered_then_redriven_to_the_dlq(sqs_factory: Callable[[], Any]) -> None:
    # GIVEN a poison message among good ones, and a handler that reports it as a batch item failure
    sqs = sqs_factory()
    queues = make_queues(sqs, visibility_timeout=1, max_receive_count=2)
    for body in ("good-1", "poison", "good-2"):
        sqs.send_message(QueueUrl=queues.url, MessageBody=body)
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        failures = []
        with lock:
            for record in event["Records"]:
                attempts[record["body"]] = attempts.get(record["body"], 0) + 1
                if record["body"] == "poison":
                    failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    runner = _runner(
        sqs_factory, handler, queues.url, queues.arn, function_response_types=("ReportBatchItemFailures",)
    )
    # WHEN the mapping runs
    runner.start()
    try:
        assert wait_until(lambda: queue_depth(sqs, queues.dlq_url) == 1)
        assert wait_until(lambda: queue_depth(sqs, queues.url) == 0 and not runner.busy)
    finally:
        runner.stop()
    # THEN good messages were processed once and the poison one maxReceiveCount times, then redriven
    assert attempts == {"good-1": 1, "good-2": 1, "poison": 2}
    moved = sqs.receive_message(QueueUrl=queues.dlq_url)["Messages"]
    assert moved[0]["Body"] == "poison"


def test_without_report_batch_item_failures_a_response_is_ignored(sqs_factory: Callable[[], Any]) -> None:
    sqs = sqs_factory()
    queues = make_queues(sqs)
    sqs.send_message(QueueUrl=queues.url, MessageBody="x")
    calls: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(1)
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}

    runner = _runner(sqs_factory, handler, queues.url, queues.arn)
    runner.start()
    try:
        assert wait_until(lambda: queue_depth(sqs, queues.url) == 0 and not runner.busy)
    finally:
        runner.stop()
    assert calls == [1]


def test_a_handler_that_raises_gets_the_whole_batch_again(sqs_factory: Callable[[], Any]) -> None:
    sqs = sqs_factory()
    # Visibility well above the batching window: on a busy host a poller holding a message in its
    # window must not see it come back to another poller (each receive counts toward the redrive).
    queues = make_queues(sqs, visibility_timeout=3, max_receive_count=5)
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=queues.url, MessageBody=body)
    delivered: list[str] = []
    failed_once = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> None:
        if not failed_once.is_set():
            failed_once.set()
            raise RuntimeError("boom")
        delivered.extend(record["body"] for record in event["Records"])

    runner = _runner(sqs_factory, handler, queues.url, queues.arn, batch_size=2, batching_window_seconds=1)
    runner.start()
    try:
        assert wait_until(lambda: sorted(delivered) == ["a", "b"] and queue_depth(sqs, queues.url) == 0)
    finally:
        runner.stop()
    assert runner.stats.errors >= 1
    assert queue_depth(sqs, queues.dlq_url) == 0


def test_a_timed_out_invocation_deletes_nothing_and_messages_come_back(
    sqs_factory: Callable[[], Any],
) -> None:
    # GIVEN a handler that overruns the function timeout on its first invocation only
    sqs = sqs_factory()
    queues = make_queues(sqs, max_receive_count=5)
    sqs.send_message(QueueUrl=queues.url, MessageBody="slow")
    function = FunctionSpec(name="fn", arn=FUNCTION.arn, timeout_seconds=0.3)
    processed: list[str] = []
    first = threading.Event()
    metrics = LocalMetrics()

    def handler(event: dict[str, Any], context: Any) -> None:
        if not first.is_set():
            first.set()
            time.sleep(1.0)  # dies mid-batch: the runner gives up at 0.3 s
            return
        processed.extend(record["body"] for record in event["Records"])

    runner = _runner(sqs_factory, handler, queues.url, queues.arn, function=function, metrics=metrics)
    # WHEN the mapping runs
    runner.start()
    try:
        assert wait_until(lambda: processed == ["slow"] and queue_depth(sqs, queues.url) == 0)
    finally:
        runner.stop()
    # THEN the message was processed on redelivery and the timeout counted as a Lambda error
    assert runner.stats.timeouts == 1
    errors = metrics.datapoint(MetricQuery(LAMBDA_NAMESPACE, "Errors", {"FunctionName": "fn"}, "Sum"), 60)
    assert errors == 1


def test_a_disabled_mapping_leaves_messages_until_enabled(sqs_factory: Callable[[], Any]) -> None:
    sqs = sqs_factory()
    queues = make_queues(sqs)
    for index in range(3):
        sqs.send_message(QueueUrl=queues.url, MessageBody=str(index))
    processed: list[str] = []
    runner = _runner(
        sqs_factory,
        lambda event, context: processed.extend(r["body"] for r in event["Records"]),
        queues.url,
        queues.arn,
        enabled=False,
    )
    runner.start()
    try:
        assert runner.wait_until_paused()  # every poller parked: nothing can be received any more
        assert processed == []
        assert queue_depth(sqs, queues.url) == 3
        runner.set_enabled(True)
        assert wait_until(lambda: queue_depth(sqs, queues.url) == 0 and not runner.busy)
    finally:
        runner.stop()
    assert sorted(processed) == ["0", "1", "2"]


def test_maximum_concurrency_bounds_parallel_invocations(sqs_factory: Callable[[], Any]) -> None:
    sqs = sqs_factory()
    queues = make_queues(sqs, visibility_timeout=30)
    for index in range(12):
        sqs.send_message(QueueUrl=queues.url, MessageBody=str(index))
    active = 0
    peak = 0
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.2)
        with lock:
            active -= 1

    runner = _runner(sqs_factory, handler, queues.url, queues.arn, batch_size=1, maximum_concurrency=2)
    runner.start()
    try:
        assert wait_until(lambda: queue_depth(sqs, queues.url) == 0 and not runner.busy)
    finally:
        runner.stop()
    assert peak == 2
    assert runner.stats.invocations == 12


def _no_sqs() -> Any:
    raise AssertionError("a refused mapping never polls")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"visibility_timeout_seconds": 2},
            "visibility timeout \\(2 s\\) is below",
            id="timeout>visibility",
        ),
        pytest.param({"batch_size": 11}, "without a batching window", id="batch>10-no-window"),
        pytest.param({"maximum_concurrency": 1}, "maximumConcurrency 1 is outside", id="concurrency-1"),
        pytest.param({"maximum_concurrency": 1001}, "maximumConcurrency 1001", id="concurrency-1001"),
    ],
)
def test_a_mapping_lambda_would_refuse_is_rejected_by_name(changes: dict[str, Any], message: str) -> None:
    function = FunctionSpec(name="fn", arn=FUNCTION.arn, timeout_seconds=10)
    mapping = MappingSpec(name="orders-esm", queue_url="u", queue_arn="a", function_name="fn", **changes)
    with pytest.raises(MappingConfigError, match=f"orders-esm: .*{message}"):
        check_mapping(mapping, function)
    with pytest.raises(MappingConfigError, match="orders-esm"):
        EventSourceMappingRunner(mapping, function, lambda e, c: None, _no_sqs, region=REGION)


def test_mappings_lambda_accepts_pass_the_check() -> None:
    function = FunctionSpec(name="fn", arn=FUNCTION.arn, timeout_seconds=10)
    for mapping in (
        MappingSpec(
            name="m", queue_url="u", queue_arn="a", function_name="fn", visibility_timeout_seconds=10
        ),
        MappingSpec(
            name="m",
            queue_url="u",
            queue_arn="a",
            function_name="fn",
            batch_size=100,
            batching_window_seconds=1,
        ),
        MappingSpec(name="m", queue_url="u", queue_arn="a", function_name="fn", maximum_concurrency=2),
    ):
        check_mapping(mapping, function)  # raises MappingConfigError for what Lambda would refuse
        runner = EventSourceMappingRunner(mapping, function, lambda e, c: None, _no_sqs, region=REGION)
        assert runner.mapping is mapping


def test_a_timed_out_invocation_holds_its_poller_until_it_really_ends(sqs_factory: Callable[[], Any]) -> None:
    # GIVEN one poller and a first invocation that overruns the timeout until it is released
    sqs = sqs_factory()
    queues = make_queues(sqs, visibility_timeout=1, max_receive_count=10)
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=queues.url, MessageBody=body)
    release = threading.Event()
    calls = 0
    active = 0
    peak = 0
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> None:
        nonlocal calls, active, peak
        with lock:
            calls += 1
            first = calls == 1
            active += 1
            peak = max(peak, active)
        if first:
            release.wait(30)
        with lock:
            active -= 1

    function = FunctionSpec(name="fn", arn=FUNCTION.arn, timeout_seconds=0.2)
    spec = MappingSpec(name="m", queue_url=queues.url, queue_arn=queues.arn, function_name="fn", batch_size=1)
    runner = EventSourceMappingRunner(spec, function, handler, sqs_factory, region=REGION, concurrency=1)
    runner.start()
    try:
        # WHEN the first invocation times out and keeps running
        assert wait_until(lambda: runner.stats.timeouts == 1)
        # THEN both messages wait in the queue ("a" back after its visibility timeout, "b" untouched):
        # a poller that ignored the live thread would have taken "b" at once
        assert wait_until(lambda: visible_messages(sqs, queues.url) == 2)
        assert calls == 1
        assert runner.abandoned_invocations == 1
        release.set()
        assert wait_until(lambda: queue_depth(sqs, queues.url) == 0 and not runner.busy)
    finally:
        release.set()
        runner.stop()
    assert peak == 1
    assert runner.abandoned_invocations == 0


def test_stop_waits_for_abandoned_invocations(sqs_factory: Callable[[], Any]) -> None:
    sqs = sqs_factory()
    queues = make_queues(sqs, visibility_timeout=30)
    sqs.send_message(QueueUrl=queues.url, MessageBody="slow")
    finished = threading.Event()

    def handler(event: dict[str, Any], context: Any) -> None:
        time.sleep(1.0)
        finished.set()

    function = FunctionSpec(name="fn", arn=FUNCTION.arn, timeout_seconds=0.2)
    runner = _runner(sqs_factory, handler, queues.url, queues.arn, function=function)
    runner.start()
    try:
        assert wait_until(lambda: runner.stats.timeouts == 1)
    finally:
        runner.stop()
    # THEN nothing of the mapping runs after stop(), and the late result counted as a failure
    assert finished.is_set()
    assert runner.abandoned_invocations == 0
    assert runner.stats.messages_deleted == 0
    assert queue_depth(sqs, queues.url) == 1


def test_stopping_a_disabled_mapping_ends_its_pollers_without_enabling_it(
    sqs_factory: Callable[[], Any],
) -> None:
    # GIVEN a disabled mapping whose pollers are parked, and a message waiting
    sqs = sqs_factory()
    queues = make_queues(sqs)
    sqs.send_message(QueueUrl=queues.url, MessageBody="waiting")
    calls: list[dict[str, Any]] = []
    runner = _runner(
        sqs_factory, lambda event, context: calls.append(event), queues.url, queues.arn, enabled=False
    )
    runner.start()
    assert runner.wait_until_paused()
    # WHEN it is stopped (which wakes the parked pollers so that they can exit)
    runner.stop()
    # THEN the pollers are gone, nothing was invoked, and the mapping still reports disabled
    assert not any(thread.name.startswith("esm-m-") and thread.is_alive() for thread in threading.enumerate())
    assert calls == []
    assert queue_depth(sqs, queues.url) == 1
    assert runner.enabled is False
