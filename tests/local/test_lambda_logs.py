"""Function output to CloudWatch Logs: attributed by invocation, batched, sent on stop."""

from __future__ import annotations

import io
import json
import re
import threading
from typing import Any

import boto3
import pytest

from filepipe.local.esm import FunctionSpec
from filepipe.local.lambda_logs import (
    FunctionOutput,
    LogShipper,
    LogTarget,
    SystemLogs,
    environment_stream,
    invocation_output,
)
from tests.conftest import REGION
from tests.local.conftest import captured

FUNCTION = "aws:lambda/function:Function"


def _messages(logs: Any, target: LogTarget) -> list[str]:
    events = logs.get_log_events(logGroupName=target.group, logStreamName=target.stream)["events"]
    return [event["message"] for event in events]


def test_lines_go_to_the_stream_of_the_invocation_that_wrote_them(aws: None) -> None:
    # GIVEN two functions' environments (one group exists, the other is Lambda's default, created on use)
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName="/custom/a")
    a = LogTarget("/custom/a", environment_stream())
    b = LogTarget("/aws/lambda/b", environment_stream())
    shipper = LogShipper(lambda: boto3.client("logs", region_name=REGION))
    terminal = io.StringIO()
    output = FunctionOutput(terminal)
    shipper.start()

    def invoke(target: LogTarget, name: str) -> None:
        with invocation_output(shipper, target):
            for index in range(50):
                print(f"{name} line {index}", file=output)

    # WHEN both write at once, and something else writes outside any invocation
    threads = [threading.Thread(target=invoke, args=(t, n)) for t, n in ((a, "a"), (b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("not a function's", file=output)
    shipper.stop()
    # THEN each stream has exactly its function's lines, in order, and the terminal saw everything
    assert _messages(logs, a) == [f"a line {index}" for index in range(50)]
    assert _messages(logs, b) == [f"b line {index}" for index in range(50)]
    assert terminal.getvalue().count("\n") == 101
    assert "not a function's" in terminal.getvalue()


def _records(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def test_stream_names_look_like_lambdas() -> None:
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", environment_stream())


def test_plain_text_records_are_lambdas_start_end_and_report_lines() -> None:
    # GIVEN a function with Lambda's default log format
    system = SystemLogs()
    # WHEN an invocation starts and finishes
    start = system.start("r-1")
    end, report = system.finish("r-1", 12.3, 512)
    # THEN the records are the text lines
    assert start == ["START RequestId: r-1 Version: $LATEST"]
    assert end == "END RequestId: r-1"
    assert re.match(
        r"REPORT RequestId: r-1\tDuration: 12\.30 ms\tBilled Duration: 13 ms\tMemory Size: 512 MB\t"
        r"Max Memory Used: \d+ MB\t$",
        report,
    )


def test_plain_text_timeout_is_a_line_before_end_and_never_filtered() -> None:
    # GIVEN a text-format function whose level would drop INFO records were it JSON
    system = SystemLogs("Text", "WARN")
    # WHEN an invocation overruns its timeout
    lines = system.finish("r-1", 3000.4, 128, timed_out_after=3)
    # THEN every line is there, the timeout first
    assert re.fullmatch(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z r-1 Task timed out after 3\.00 seconds", lines[0]
    )
    assert lines[1] == "END RequestId: r-1"
    assert lines[2].startswith("REPORT RequestId: r-1\t")
    assert system.start("r-1") == ["START RequestId: r-1 Version: $LATEST"]


def test_json_records_are_platform_start_and_report_at_info() -> None:
    # GIVEN a function with LogFormat JSON and the default system log level
    system = SystemLogs("JSON", "INFO")
    # WHEN an invocation starts and succeeds
    start = _records(system.start("r-1"))
    finish = _records(system.finish("r-1", 12.3456, 512))
    # THEN there is a platform.start and a platform.report (runtimeDone of a success is DEBUG)
    assert [record["type"] for record in start + finish] == ["platform.start", "platform.report"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", start[0]["time"])
    assert start[0]["record"] == {"requestId": "r-1", "version": "$LATEST"}
    report = finish[0]["record"]
    assert report["requestId"] == "r-1"
    assert report["status"] == "success" and "errorType" not in report
    metrics = report["metrics"]
    assert metrics["durationMs"] == 12.346
    assert metrics["billedDurationMs"] == 13
    assert metrics["memorySizeMB"] == 512
    assert isinstance(metrics["maxMemoryUsedMB"], int) and metrics["maxMemoryUsedMB"] > 0


def test_json_timeout_is_in_the_report_and_a_warn_runtime_done() -> None:
    # GIVEN a JSON-format function at INFO
    system = SystemLogs("JSON", "INFO")
    # WHEN an invocation overruns its timeout
    finish = _records(system.finish("r-1", 3000.4, 128, timed_out_after=3))
    # THEN runtimeDone and report both say timeout, with Lambda's error type; there is no text line
    assert [record["type"] for record in finish] == ["platform.runtimeDone", "platform.report"]
    for record in finish:
        assert record["record"]["requestId"] == "r-1"
        assert record["record"]["status"] == "timeout"
        assert record["record"]["errorType"] == "Sandbox.Timedout"
    assert finish[1]["record"]["metrics"]["billedDurationMs"] == 3001


@pytest.mark.parametrize(
    ("level", "success_types", "timeout_types"),
    [
        pytest.param(
            "DEBUG",
            ["platform.start", "platform.runtimeDone", "platform.report"],
            ["platform.start", "platform.runtimeDone", "platform.report"],
            id="debug-everything",
        ),
        pytest.param(
            "INFO",
            ["platform.start", "platform.report"],
            ["platform.start", "platform.runtimeDone", "platform.report"],
            id="info-start-and-report",
        ),
        pytest.param("WARN", [], ["platform.runtimeDone"], id="warn-only-failures"),
    ],
)
def test_json_records_below_the_system_log_level_are_not_written(
    level: str, success_types: list[str], timeout_types: list[str]
) -> None:
    system = SystemLogs("JSON", level)

    def types(timed_out_after: float | None) -> list[str]:
        lines = system.start("r") + system.finish("r", 1.0, 128, timed_out_after=timed_out_after)
        return [record["type"] for record in _records(lines)]

    assert types(None) == success_types
    assert types(3) == timeout_types


def test_function_spec_carries_the_logging_config() -> None:
    # GIVEN a captured function with a JSON logging config, and one without any
    logging_config = {"logFormat": "JSON", "systemLogLevel": "WARN", "logGroup": "/custom/fn"}
    configured = FunctionSpec.from_resource(captured(FUNCTION, "fn", name="fn", loggingConfig=logging_config))
    default = FunctionSpec.from_resource(captured(FUNCTION, "fn", name="fn"))
    # THEN the first writes JSON filtered at WARN to its group, the second plain text to Lambda's
    assert configured.system_logs == SystemLogs("JSON", "WARN")
    assert configured.log_group_name == "/custom/fn"
    assert default.system_logs == SystemLogs("Text", "INFO")
    assert default.log_group_name == "/aws/lambda/fn"
