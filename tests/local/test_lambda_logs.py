"""Function output to CloudWatch Logs: attributed by invocation, batched, sent on stop."""

from __future__ import annotations

import io
import re
import threading
from typing import Any

import boto3

from filepipe.local.lambda_logs import (
    FunctionOutput,
    LogShipper,
    LogTarget,
    environment_stream,
    invocation_output,
    report_line,
)
from tests.conftest import REGION


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


def test_stream_names_and_report_lines_look_like_lambdas() -> None:
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]{32}", environment_stream())
    line = report_line("r-1", 12.3, 512)
    assert re.match(
        r"REPORT RequestId: r-1\tDuration: 12\.30 ms\tBilled Duration: 13 ms\tMemory Size: 512 MB\t", line
    )
