"""End to end: a file far larger than one invocation can process, on the local endpoint.

A 300 MB NDJSON file goes through a pipeline whose function times out after 6 s. It is processed in
several invocations, each handing its checkpoint to a fresh message, into exactly the output one run
writes; an outage of S3's part uploads in a later invocation (the invocation fails after a checkpoint)
changes nothing but the number of invocations.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest
from botocore.awsrequest import AWSResponse

from filepipe.handler.settings import EnvVar, FileStatus, StateAttribute
from filepipe.local.runtime import LocalRuntime, LocalTuning
from tests.local.conftest import PROJECT_DIR, s3_error_response, wait_until

pytestmark = pytest.mark.e2e

FILE_BYTES = 300 * 1000 * 1000
FUNCTION_TIMEOUT_SECONDS = 6.0
MAX_FILE_BYTES = 5 * 1000**3
"""The pipeline's cap: far above what one invocation can read, as large-file pipelines set it."""
HANG_GUARD_SECONDS = 1800


def ndjson_body(size: int) -> bytes:
    """Compact NDJSON as the handler writes it: the output of an unchanged file is the file itself."""
    encode = msgspec.json.Encoder().encode
    lines: list[bytes] = []
    total = n = 0
    while total < size:
        line = (
            encode(
                {"id": n, "customer": f"customer-{n % 9973}", "amount": n % 100_000 / 100, "note": "é" * 20}
            )
            + b"\n"
        )
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)


def large_file_project(root: Path, timeout_seconds: int = 10) -> Path:
    """A project with one NDJSON pipeline (stack ``large``) whose function times out after
    ``timeout_seconds``, for files up to :data:`MAX_FILE_BYTES`."""
    project = root / "project"
    project.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        (project / name).write_text((PROJECT_DIR / name).read_text())
    (project / "Pulumi.large.yaml").write_text(
        "config:\n"
        "  aws:region: eu-west-1\n"
        "  filepipe:forceDestroy: true\n"
        "  filepipe:pipelines:\n"
        "    - name: events\n"
        "      inputPrefix: incoming/events/\n"
        "      inputFormat: ndjson\n"
        "      outputFormat: ndjson\n"
        f"      timeoutSeconds: {timeout_seconds}\n"
        f"      maxFileBytes: {MAX_FILE_BYTES}\n"
    )
    return project


def large_file_tuning(function_timeout_seconds: float) -> LocalTuning:
    fast = LocalTuning.fast()
    return LocalTuning.fast(
        function_timeout_seconds=function_timeout_seconds,
        # A margin a loaded machine keeps: the checkpoint (a part, a state write, a message) must end
        # before the local deadline, as it must in Lambda.
        environment={**fast.environment, EnvVar.TIMEOUT_MARGIN_MS.value: "4000"},
    )


class PartUploadOutage:
    """After the first checkpoint, S3 refuses ``failures`` part uploads with 503 (more than the SDK's
    own retries), so a later invocation fails between two checkpoints."""

    def __init__(self, failures: int) -> None:
        self.remaining = failures
        self.checkpointed = False
        self.injected = 0
        self.lock = threading.Lock()

    def hook(self, service: str, client: Any) -> None:
        if service == "s3":
            client.meta.events.register("before-send.s3.UploadPart", self.maybe_fail)
        if service == "dynamodb":
            client.meta.events.register("before-parameter-build.dynamodb.UpdateItem", self.saw_checkpoint)

    def saw_checkpoint(self, params: dict[str, Any], **_: Any) -> None:
        if "#" + StateAttribute.CONTINUATION.value in params.get("ExpressionAttributeNames", {}):
            self.checkpointed = True

    def maybe_fail(self, request: Any, **_: Any) -> AWSResponse | None:
        with self.lock:
            if not self.checkpointed or self.remaining <= 0:
                return None
            self.remaining -= 1
            self.injected += 1
        return s3_error_response(request)


def test_a_300_mb_file_takes_several_invocations_and_a_failure_between_checkpoints_changes_nothing(
    tmp_path: Path,
) -> None:
    # GIVEN a project with one NDJSON pipeline, a 6 s function timeout, and a part-upload outage that
    # makes one invocation after the first checkpoint fail (the SDK tries each call 4 times)
    project = large_file_project(tmp_path, int(FUNCTION_TIMEOUT_SECONDS))
    tuning = large_file_tuning(FUNCTION_TIMEOUT_SECONDS)
    outage = PartUploadOutage(failures=4)
    runtime = LocalRuntime(
        project, "large", state_dir=tmp_path / "state", tuning=tuning, client_hook=outage.hook
    )
    running = runtime.start()
    try:
        out = running.pipeline_outputs("events")
        bucket, table = out["bucket"], out["tableName"]
        key = f"{out['inputPrefix']}day.ndjson"
        body = ndjson_body(FILE_BYTES)
        expected_digest = hashlib.sha256(body).hexdigest()
        records, size = body.count(b"\n"), len(body)
        s3 = running.address.client("s3")
        dynamodb = running.address.client("dynamodb")

        # WHEN it arrives
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        del body

        # THEN while it runs, its state item shows where it resumes
        def item() -> dict[str, Any]:
            found = dynamodb.get_item(
                TableName=table, Key={"pk": {"S": f"{bucket}/{key}"}}, ConsistentRead=True
            )
            return found.get("Item", {})

        seen_offsets: list[int] = []

        def progressed() -> bool:
            current = item()
            if StateAttribute.RESUME_OFFSET.value in current:
                seen_offsets.append(int(current[StateAttribute.RESUME_OFFSET.value]["N"]))
            # A file that failed is final too: the assertions below say why, at once.
            return current.get(StateAttribute.STATUS.value, {}).get("S") in (
                FileStatus.SUCCEEDED,
                FileStatus.FAILED,
            )

        assert wait_until(progressed, timeout=HANG_GUARD_SECONDS, interval=0.5)
        assert running.wait_until_idle(timeout=HANG_GUARD_SECONDS)

        # ... and when it is done, the output is the single-run output, written once
        final = item()
        assert final[StateAttribute.STATUS.value]["S"] == FileStatus.SUCCEEDED, final.get(
            StateAttribute.ERROR.value
        )
        assert int(final[StateAttribute.RECORDS.value]["N"]) == records
        assert int(final[StateAttribute.BYTES_READ.value]["N"]) == size
        output = s3.get_object(Bucket=bucket, Key=f"{out['outputPrefix']}day.ndjson")["Body"]
        digest = hashlib.sha256()
        for chunk in iter(lambda: output.read(8 * 1024 * 1024), b""):
            digest.update(chunk)
        assert digest.hexdigest() == expected_digest
        versions = s3.list_object_versions(Bucket=bucket, Prefix=out["outputPrefix"]).get("Versions", [])
        assert len(versions) == 1
        assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        # it took several invocations, one of them failed after a checkpoint, and nothing was parked
        stats = running.runner("events").stats
        assert outage.injected == 4
        assert stats.invocations >= 4
        assert seen_offsets and 0 < min(seen_offsets) < size
        assert running.queue_depth(out["dlqUrl"]) == 0
        assert StateAttribute.CONTINUATION.value not in final
    finally:
        runtime.stop()
