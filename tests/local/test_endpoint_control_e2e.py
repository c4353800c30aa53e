"""End to end: the running local stack operated as AWS is, with boto3 from another session.

One runtime for the module (the dev stack: two pipelines); each test leaves both mappings enabled with
their declared concurrency. Every client below is a new boto3 session on the endpoint's URL, as an ops
command in another process would make it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from filepipe.local.apply import EVENT_SOURCE_MAPPING, FUNCTION
from filepipe.local.endpoint import FAKE_CREDENTIALS
from filepipe.local.runtime import LocalRuntime, LocalTuning, RunningStack
from tests.local.conftest import PROJECT_DIR, visible_messages, wait_until

pytestmark = pytest.mark.e2e

GOOD = {
    "transactions": json.dumps([{"id": "t-1", "amount": 10.5, "currency": "EUR"}]).encode(),
    "invoices": b"id,amount\n1,2.5\n",
}
HANG_GUARD_SECONDS = 120


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, e2e_tier: None) -> Iterator[RunningStack]:
    # DEBUG: the handler logs a line naming each processed file (the default level logs none).
    runtime = LocalRuntime(
        PROJECT_DIR,
        "dev",
        state_dir=tmp_path_factory.mktemp("control") / "state",
        tuning=LocalTuning.fast(log_level="DEBUG"),
    )
    with runtime as started:
        assert started.wait_until_idle(timeout=HANG_GUARD_SECONDS)
        yield started


def _client(running: RunningStack, service: str) -> Any:
    """A client as another process makes it: its own session, only the endpoint's URL and region."""
    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
        region_name=running.address.region,
    )
    return session.client(service, endpoint_url=running.address.url)  # type: ignore[call-overload]


def _state(lambda_: Any, uuid: str) -> str:
    return str(lambda_.get_event_source_mapping(UUID=uuid)["State"])


def _put(running: RunningStack, pipeline: str, name: str) -> str:
    out = running.pipeline_outputs(pipeline)
    key = f"{out['inputPrefix']}{name}"
    _client(running, "s3").put_object(Bucket=out["bucket"], Key=key, Body=GOOD[pipeline])
    return key


def test_functions_and_mappings_are_on_the_endpoint_as_declared(running: RunningStack) -> None:
    lambda_ = _client(running, "lambda")
    for pipeline in ("transactions", "invoices"):
        # GIVEN what the stack declared for the pipeline's function and mapping
        out = running.pipeline_outputs(pipeline)
        function = next(
            f for f in running.captured.of_type(FUNCTION.token) if f.get("arn") == out["functionArn"]
        )
        mapping = next(
            m
            for m in running.captured.of_type(EVENT_SOURCE_MAPPING.token)
            if m.get("uuid") == out["eventSourceMappingId"]
        )
        # WHEN another process reads them
        config = lambda_.get_function_configuration(FunctionName=out["functionName"])
        listed = lambda_.list_event_source_mappings(FunctionName=out["functionName"])["EventSourceMappings"]
        by_arn = lambda_.list_event_source_mappings(FunctionName=out["functionArn"])["EventSourceMappings"]
        got = lambda_.get_event_source_mapping(UUID=out["eventSourceMappingId"])
        # THEN the function has the captured settings, its log group included, and no layers
        assert config["FunctionArn"] == out["functionArn"]
        assert config["Role"] == function.inputs["role"]
        assert config["Runtime"] == function.inputs["runtime"]
        assert config["Handler"] == function.inputs["handler"]
        assert config["Timeout"] == int(function.inputs["timeout"])
        assert config["MemorySize"] == int(function.inputs["memorySize"])
        assert config["Environment"]["Variables"] == function.inputs["environment"]["variables"]
        assert config["LoggingConfig"]["LogGroup"] == function.inputs["loggingConfig"]["logGroup"]
        assert config["LoggingConfig"]["LogFormat"] == function.inputs["loggingConfig"]["logFormat"]
        assert config.get("Layers", []) == []
        tags = lambda_.get_function(FunctionName=out["functionName"])["Tags"]
        assert tags == function.inputs["tags"]
        # AND the one mapping, under the UUID the outputs carry, by name or ARN, with the captured settings
        assert [m["UUID"] for m in listed] == [m["UUID"] for m in by_arn] == [out["eventSourceMappingId"]]
        assert got["UUID"] == out["eventSourceMappingId"]
        assert got["EventSourceArn"] == out["queueArn"]
        assert got["FunctionArn"] == out["functionArn"]
        assert got["BatchSize"] == int(mapping.inputs["batchSize"])
        assert got["MaximumBatchingWindowInSeconds"] == int(mapping.inputs["maximumBatchingWindowInSeconds"])
        assert got["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert got["State"] == "Enabled"


def test_a_mapping_disabled_from_another_process_holds_files_until_enabled(running: RunningStack) -> None:
    out = running.pipeline_outputs("transactions")
    uuid = out["eventSourceMappingId"]
    runner = running.runner("transactions")
    lambda_ = _client(running, "lambda")
    sqs = _client(running, "sqs")
    before = runner.stats.invocations
    # WHEN another process disables the mapping
    response = lambda_.update_event_source_mapping(UUID=uuid, Enabled=False)
    seen = [response["State"]]

    def disabled() -> bool:
        seen.append(_state(lambda_, uuid))
        return bool(seen[-1] == "Disabled")

    assert wait_until(disabled, HANG_GUARD_SECONDS)
    # THEN it reports Disabling until the pollers have stopped, then Disabled, as Lambda does
    assert seen[0] == "Disabling"
    assert set(seen) == {"Disabling", "Disabled"}
    assert seen.index("Disabled") == len(seen) - 1
    # AND files that arrive wait in the queue, nothing is invoked
    keys = [_put(running, "transactions", f"held-{index}.json") for index in range(3)]
    assert wait_until(lambda: visible_messages(sqs, out["queueUrl"]) == 3, HANG_GUARD_SECONDS)
    assert _state(lambda_, uuid) == "Disabled"
    assert runner.stats.invocations == before
    assert visible_messages(sqs, out["queueUrl"]) == 3
    # WHEN it is enabled again, THEN it is Enabled and the files are processed
    assert lambda_.update_event_source_mapping(UUID=uuid, Enabled=True)["State"] in {"Enabling", "Enabled"}
    assert wait_until(lambda: _state(lambda_, uuid) == "Enabled", HANG_GUARD_SECONDS)
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    s3 = _client(running, "s3")
    for key in keys:
        s3.head_object(Bucket=out["bucket"], Key=out["outputPrefix"] + key[len(out["inputPrefix"]) :])


def test_the_runners_set_enabled_goes_through_the_endpoint(running: RunningStack) -> None:
    out = running.pipeline_outputs("invoices")
    lambda_ = _client(running, "lambda")
    runner = running.runner("invoices")
    # WHEN the runtime pauses its runner in-process
    runner.set_enabled(False)
    assert runner.wait_until_paused(timeout=HANG_GUARD_SECONDS)
    # THEN the endpoint's mapping says so, and resuming is seen there too
    got = lambda_.get_event_source_mapping(UUID=out["eventSourceMappingId"])
    assert got["State"] == "Disabled"
    runner.set_enabled(True)
    assert wait_until(lambda: _state(lambda_, out["eventSourceMappingId"]) == "Enabled", HANG_GUARD_SECONDS)
    assert runner.enabled


def test_maximum_concurrency_set_from_another_process_moves_the_pollers(running: RunningStack) -> None:
    out = running.pipeline_outputs("transactions")
    uuid = out["eventSourceMappingId"]
    runner = running.runner("transactions")
    lambda_ = _client(running, "lambda")
    declared = runner.concurrency
    assert declared > 2
    try:
        # WHEN another process lowers the mapping's maximum concurrency
        lambda_.update_event_source_mapping(UUID=uuid, ScalingConfig={"MaximumConcurrency": 2})
        # THEN the runner polls with that many pollers once the others have finished their receive
        assert runner.concurrency == 2
        assert wait_until(lambda: runner.pollers == 2, HANG_GUARD_SECONDS)
        assert wait_until(lambda: _state(lambda_, uuid) == "Enabled", HANG_GUARD_SECONDS)
        got = lambda_.get_event_source_mapping(UUID=uuid)
        assert got["ScalingConfig"] == {"MaximumConcurrency": 2}
        # AND a file is still processed
        key = _put(running, "transactions", "two-pollers.json")
        assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
        _client(running, "s3").head_object(
            Bucket=out["bucket"], Key=out["outputPrefix"] + key[len(out["inputPrefix"]) :]
        )
        # WHEN it is raised, THEN pollers are added
        lambda_.update_event_source_mapping(UUID=uuid, ScalingConfig={"MaximumConcurrency": 4})
        assert wait_until(lambda: runner.pollers == 4, HANG_GUARD_SECONDS)
        # AND a value Lambda refuses is refused
        with pytest.raises(lambda_.exceptions.InvalidParameterValueException):
            lambda_.update_event_source_mapping(UUID=uuid, ScalingConfig={"MaximumConcurrency": 1001})
    finally:
        lambda_.update_event_source_mapping(UUID=uuid, ScalingConfig={})
    # WHEN the maximum is removed, THEN the runner polls with its default again
    assert wait_until(lambda: runner.pollers == declared, HANG_GUARD_SECONDS)


def test_a_files_log_lines_are_in_its_functions_log_group(running: RunningStack) -> None:
    logs = _client(running, "logs")
    lambda_ = _client(running, "lambda")
    # GIVEN one file for each pipeline, processed concurrently
    keys = {
        pipeline: _put(running, pipeline, f"logged{suffix}")
        for pipeline, suffix in (("transactions", ".json"), ("invoices", ".csv"))
    }
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    for pipeline, key in keys.items():
        out = running.pipeline_outputs(pipeline)
        group = lambda_.get_function_configuration(FunctionName=out["functionName"])["LoggingConfig"][
            "LogGroup"
        ]
        other = next(k for p, k in keys.items() if p != pipeline)

        def lines(pattern: str, group: str = group) -> list[dict[str, Any]]:
            return list(logs.filter_log_events(logGroupName=group, filterPattern=pattern)["events"])

        def shipped(key: str = key) -> bool:
            return bool(lines(f'"{key}"'))

        # WHEN another process searches the function's log group for the file
        assert wait_until(shipped, HANG_GUARD_SECONDS)
        found = lines(f'"{key}"')
        # THEN its lines are there, in a stream named as Lambda names them, between Lambda's own lines
        stream = found[0]["logStreamName"]
        assert stream.split("]")[0].endswith("[$LATEST") and len(stream.split("]")[1]) == 32
        assert json.loads(found[0]["message"])["service"] == pipeline
        assert not lines(f'"{other}"')  # the other pipeline's file is not in this group
        stream_lines = [
            event["message"]
            for event in logs.get_log_events(logGroupName=group, logStreamName=stream)["events"]
        ]
        at = next(index for index, line in enumerate(stream_lines) if key in line)
        # the function's LoggingConfig is JSON at system level INFO: platform.start and .report records
        start = next(
            r for r in map(_system_record, reversed(stream_lines[:at])) if r["type"] == "platform.start"
        )
        request_id = start["record"]["requestId"]
        report = next(
            r
            for r in map(_system_record, stream_lines[at:])
            if r["type"] == "platform.report" and r["record"]["requestId"] == request_id
        )
        assert report["record"]["status"] == "success"
        assert report["record"]["metrics"]["durationMs"] > 0
        assert not any(line.startswith(("START ", "END ", "REPORT ")) for line in stream_lines)


def _system_record(line: str) -> dict[str, Any]:
    """A JSON system log record, or an empty-typed stand-in for any other line."""
    try:
        record = json.loads(line)
    except ValueError:
        return {"type": ""}
    return record if isinstance(record, dict) and "record" in record else {"type": ""}


def test_moto_never_runs_a_mapping_itself(running: RunningStack) -> None:
    from moto.sqs.models import sqs_backends

    # GIVEN the stack's queues on the endpoint (this process)
    queues = sqs_backends[running.address.account_id][running.address.region].queues
    out = running.pipeline_outputs("transactions")
    # THEN no mapping is registered where moto's SQS would invoke a function (in Docker) per message
    assert all(not queue.lambda_event_source_mappings for queue in queues.values())
    # AND a file is processed by the runner alone
    before = running.runner("transactions").stats.invocations
    key = _put(running, "transactions", "runner-only.json")
    assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)
    assert running.runner("transactions").stats.invocations > before
    _client(running, "s3").head_object(
        Bucket=out["bucket"], Key=out["outputPrefix"] + key[len(out["inputPrefix"]) :]
    )


def test_the_endpoint_state_file_points_other_processes_at_these_mappings(running: RunningStack) -> None:
    # GIVEN what another process reads: endpoint.json and outputs.json
    endpoint = json.loads(Path(running.state_dir / "endpoint.json").read_text(encoding="utf-8"))
    outputs = json.loads(Path(running.state_dir / "outputs.json").read_text(encoding="utf-8"))
    session = boto3.session.Session(
        aws_access_key_id=FAKE_CREDENTIALS["aws_access_key_id"],
        aws_secret_access_key=FAKE_CREDENTIALS["aws_secret_access_key"],
        region_name=endpoint["region"],
    )
    lambda_ = session.client("lambda", endpoint_url=endpoint["endpoint"])
    # THEN every pipeline's mapping id in the outputs is a mapping on the endpoint
    for pipeline in ("transactions", "invoices"):
        uuid = outputs[pipeline]["eventSourceMappingId"]
        assert lambda_.get_event_source_mapping(UUID=uuid)["FunctionArn"] == outputs[pipeline]["functionArn"]
