"""A user's stack running on the local twin, as a test drives it: send a file, wait for its outcome, look.

:class:`LocalStack` wraps the :class:`~filepipe.local.runtime.RunningStack` that the ``local_stack``
fixture starts. It reads everything through the services, as the ops commands do (the state table,
the DLQ, the log groups, the alert topic), so a test asserts what an operator would see. Every wait
polls an observable condition and, when its deadline passes, raises :class:`PipelineTimeoutError` with
the pipeline's status (``filepipe status --json``) in the message.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from filepipe.cli.ops.logs import log_events
from filepipe.cli.ops.parked import read_parked
from filepipe.cli.ops.stack import Pipeline, Stack
from filepipe.cli.ops.status import pipeline_status
from filepipe.handler.settings import FileStatus, OutputFormat, StateAttribute
from filepipe.handler.writers import CONTENT_TYPES
from filepipe.local.alerts import Alert
from filepipe.local.runtime import RunningStack

DEFAULT_TIMEOUT_SECONDS: Final = 60.0
"""Generous on a loaded machine: a small file takes well under a second, a retry a few (fast tuning)."""
POLL_SECONDS: Final = 0.2
FINAL_STATUSES: Final = frozenset({FileStatus.SUCCEEDED, FileStatus.FAILED, FileStatus.SUPERSEDED})

_T = TypeVar("_T")


class PipelineTimeoutError(AssertionError):
    """A wait's condition did not hold in time; the message carries the pipeline's status."""


@dataclass(frozen=True, slots=True)
class FinalState:
    """A file's outcome: its state-table item (plain values) and, when it succeeded, its output records."""

    item: dict[str, Any]
    output: list[Any] | None

    @property
    def status(self) -> str:
        return str(self.item[StateAttribute.STATUS])

    @property
    def error_type(self) -> str | None:
        value = self.item.get(StateAttribute.ERROR_TYPE)
        return None if value is None else str(value)

    @property
    def error(self) -> str | None:
        value = self.item.get(StateAttribute.ERROR)
        return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Parked:
    """One message in a pipeline's dead-letter queue, with the handler's reason for parking it."""

    message_id: str
    keys: list[str]
    error_type: str
    """The handler's error class (``SchemaValidationError``...); empty if SQS's redrive moved it."""
    reason: str
    attributes: dict[str, str]
    body: str


_FORMATS_BY_CONTENT_TYPE: Final = {
    content_type: file_format for file_format, content_type in CONTENT_TYPES.items()
}


def decode_output(content: bytes, content_type: str, content_encoding: str | None = None) -> list[Any]:
    """The records of an output object, as the handler wrote them in its format (``content_encoding``:
    the object's ``Content-Encoding``, when ``output_compression`` compressed it)."""
    if content_encoding:
        from filepipe.handler.decompression import Decompressed
        from filepipe.handler.settings import InputCompression

        # The handler's own decompressor, as it reads a compressed input (a gzip/zstd Content-Encoding).
        content = Decompressed(io.BytesIO(content), InputCompression(content_encoding)).read()
    file_format = _FORMATS_BY_CONTENT_TYPE.get(content_type)
    if file_format is OutputFormat.PARQUET:
        import pyarrow.parquet as pq  # only a Parquet output needs pyarrow

        # ParquetFile, not read_table: pyarrow 26 can abort at exit after read_table's thread pool ran.
        rows: list[Any] = pq.ParquetFile(io.BytesIO(content)).read().to_pylist()
        return rows
    text = content.decode("utf-8")
    if file_format is OutputFormat.JSON:
        document = json.loads(text)
        records: list[Any] = document["data"]
        return records
    if file_format is OutputFormat.NDJSON:
        # Records end at "\n" only: str.splitlines() would also split at U+2028 and other separators
        # that JSON strings hold as they are.
        return [json.loads(line) for line in text.split("\n") if line]
    if file_format is OutputFormat.CSV:
        return list(csv.DictReader(io.StringIO(text)))
    raise ValueError(f"not a filepipe output (content type {content_type!r})")


class LocalStack:
    """The stack the ``local_stack`` fixture runs; pipelines are named as in the stack's outputs."""

    def __init__(self, running: RunningStack, alerts: list[Alert]) -> None:
        self.running = running
        self.address = running.address
        self.ops = Stack.from_outputs(
            running.stack_name, f"local endpoint {running.address.url}", running.outputs, running.address
        )
        """The stack as the ops commands see it (their functions take it)."""
        self._alerts = alerts
        """Appended to by the runtime's alert subscriber (its ``on_alert``), from its own thread."""

    # --- looking ----------------------------------------------------------------------------------

    @property
    def outputs(self) -> dict[str, Any]:
        """The stack outputs (``pulumi stack output --json``)."""
        return self.running.outputs

    def pipeline(self, name: str) -> Pipeline:
        return self.ops.pipeline(name)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on the local endpoint."""
        return self.ops.client(service)

    def status(self, pipeline: str) -> dict[str, Any]:
        """What ``filepipe status --json`` reports for the pipeline."""
        return pipeline_status(self.ops, self.pipeline(pipeline))

    def state(self, pipeline: str, key: str) -> dict[str, Any] | None:
        """The file's state-table item (plain values), or ``None`` before the handler has seen it."""
        target = self._with_table(pipeline)
        item = (
            self.ops.dynamodb()
            .get_item(
                TableName=target.table_name,
                Key={StateAttribute.PK.value: {"S": f"{target.bucket}/{key}"}},
                ConsistentRead=True,
            )
            .get("Item")
        )
        if item is None:
            return None
        return {name: _plain(value) for name, value in item.items()}

    def output(self, pipeline: str, key: str) -> list[Any]:
        """The records of the output the handler wrote for the input ``key`` (its state item names it),
        decompressed if the pipeline compresses its outputs. A whole-file processor's outputs are
        objects, not records: see :meth:`file_outputs`."""
        output_key = self._output_key(pipeline, key)
        if output_key.endswith("/"):
            raise LookupError(
                f"{pipeline}: {key!r} was processed by a whole-file processor into the objects under"
                f" {output_key!r}; read them with file_outputs()"
            )
        response = self.ops.s3().get_object(Bucket=self.pipeline(pipeline).bucket, Key=output_key)
        return decode_output(
            response["Body"].read(), response.get("ContentType", ""), response.get("ContentEncoding")
        )

    def file_outputs(self, pipeline: str, key: str) -> dict[str, bytes]:
        """What a whole-file processor wrote for the input ``key``: each object's bytes, by its name
        below ``<output prefix><input key>/``."""
        folder = self._output_key(pipeline, key)
        s3 = self.ops.s3()
        bucket = self.pipeline(pipeline).bucket
        written: dict[str, bytes] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
            for listed in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=listed["Key"])["Body"].read()
                written[listed["Key"][len(folder) :]] = body
        return written

    def _output_key(self, pipeline: str, key: str) -> str:
        item = self.state(pipeline, key)
        output_key = None if item is None else item.get(StateAttribute.OUTPUT_KEY)
        if not output_key:
            raise LookupError(
                f"{pipeline}: no output recorded for {key!r} (state: {item}); wait_until_final first"
            )
        return str(output_key)

    def parked(self, pipeline: str) -> list[Parked]:
        """Every message in the pipeline's DLQ, oldest first (each left there, as ``filepipe failed``)."""
        snapshot = read_parked(self.ops, self.pipeline(pipeline))
        return [
            Parked(m.message_id, m.keys, m.error_type, m.reason, dict(m.attributes), m.body)
            for m in snapshot.messages
        ]

    def alerts(self) -> list[Alert]:
        """Every alert delivered so far (alarm state changes and other topic messages), oldest first."""
        return list(self._alerts)

    def logs(self, pipeline: str) -> list[str]:
        """The pipeline function's log lines in CloudWatch Logs so far (shipped in the background: wait
        for a line with :meth:`wait_for_log`)."""
        return [
            str(event.get("message", "")) for event in log_events(self.ops, self.pipeline(pipeline), 0, None)
        ]

    # --- acting -----------------------------------------------------------------------------------

    def send(self, pipeline: str, name: str, body: bytes | str | list[Any] | dict[str, Any]) -> str:
        """Upload ``body`` as ``name`` under the pipeline's input prefix; returns the object key.

        ``bytes`` and ``str`` are uploaded as they are; a list or dict as JSON.
        """
        target = self.pipeline(pipeline)
        if isinstance(body, bytes):
            content = body
        elif isinstance(body, str):
            content = body.encode("utf-8")
        else:
            content = json.dumps(body).encode("utf-8")
        key = f"{target.input_prefix}{name}"
        self.ops.s3().put_object(Bucket=target.bucket, Key=key, Body=content)
        return key

    # --- waiting ----------------------------------------------------------------------------------

    def wait_until_final(
        self, pipeline: str, key: str, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> FinalState:
        """Wait until the file's outcome is final (succeeded, failed and parked, or superseded); returns
        its state item and, when it succeeded, its output records."""

        def final() -> dict[str, Any] | None:
            item = self.state(pipeline, key)
            if item is None or item.get(StateAttribute.STATUS) not in FINAL_STATUSES:
                return None
            if item[StateAttribute.STATUS] == FileStatus.FAILED and not item.get(
                StateAttribute.DLQ_MESSAGE_ID
            ):
                return None  # failed, not yet parked: parked() would not show it yet
            return item

        item = self._wait(pipeline, f"{key!r} to reach a final state", final, timeout)
        records = None
        if item[StateAttribute.STATUS] == FileStatus.SUCCEEDED:
            # A whole-file processor's output is a folder of objects, not records (file_outputs() reads them).
            whole_file = str(item.get(StateAttribute.OUTPUT_KEY, "")).endswith("/")
            records = None if whole_file else self.output(pipeline, key)
        return FinalState(item, records)

    def wait_until_parked(self, pipeline: str, key: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Parked:
        """Wait until a message naming ``key`` is in the pipeline's DLQ (also one SQS's redrive moved)."""

        def found() -> Parked | None:
            return next((p for p in self.parked(pipeline) if key in p.keys), None)

        return self._wait(pipeline, f"{key!r} to be parked in the DLQ", found, timeout)

    def wait_for_alert(
        self, alarm_name_contains: str = "", state: str = "ALARM", timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> Alert:
        """Wait for an alarm notification into ``state`` whose alarm name contains the text."""

        def found() -> Alert | None:
            return next(
                (
                    alert
                    for alert in self.alerts()
                    if alert.state == state and alarm_name_contains in (alert.alarm_name or "")
                ),
                None,
            )

        what = f"an alert {state} for an alarm named *{alarm_name_contains}*"
        return self._wait(None, what, found, timeout)

    def wait_for_log(self, pipeline: str, contains: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> str:
        """Wait until the pipeline's log group has a line containing ``contains``; returns it."""

        def found() -> str | None:
            return next((line for line in self.logs(pipeline) if contains in line), None)

        return self._wait(pipeline, f"a log line containing {contains!r}", found, timeout)

    def wait_until_idle(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        """Wait until no message is waiting or in flight on any pipeline's queue."""
        if not self.running.wait_until_idle(timeout=timeout):
            raise PipelineTimeoutError(
                f"the stack was still busy after {timeout:g} s\n{self._statuses(list(self.ops.pipelines))}"
            )

    def _wait(
        self, pipeline: str | None, what: str, condition: Callable[[], _T | None], timeout: float
    ) -> _T:
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value is not None:
                return value
            if time.monotonic() >= deadline:
                names = [pipeline] if pipeline is not None else list(self.ops.pipelines)
                raise PipelineTimeoutError(
                    f"waited {timeout:g} s for {what}; it did not happen\n{self._statuses(names)}"
                )
            time.sleep(POLL_SECONDS)

    def _statuses(self, pipelines: list[str]) -> str:
        return "\n".join(
            f"pipeline {name} status: {json.dumps(self.status(name), indent=2, default=str)}"
            for name in pipelines
        )

    def _with_table(self, pipeline: str) -> Pipeline:
        target = self.pipeline(pipeline)
        if not target.table_name:
            raise LookupError(f"pipeline {pipeline} keeps no state table: its files' states cannot be read")
        return target


def _plain(value: Any) -> Any:
    """A DynamoDB attribute value as a plain Python value (numbers as int or float)."""
    kind, inner = next(iter(value.items()))
    if kind == "N":
        return int(inner) if inner.lstrip("-").isdigit() else float(inner)
    if kind == "M":
        return {name: _plain(item) for name, item in inner.items()}
    if kind == "L":
        return [_plain(item) for item in inner]
    if kind == "NULL":
        return None
    return inner
