"""A pipeline's largest file against its function's memory and timeout, checked at construction.

Expected times come from ``filepipe.handler.capacity`` (the handler's measured rates), so these tests hold
whatever the rates are.
"""

import re
from typing import Any

import pulumi
import pytest

from filepipe import FileProcessingPipeline, PipelineArgs, PipelineConfigError, defaults
from filepipe.handler.capacity import expected_invocations, expected_seconds
from filepipe.handler.settings import EnvVar, FileFormat
from filepipe.resolved import resolve_pipeline
from filepipe.validation import capacity, capacity_warnings, validate_pipeline
from tests.components.conftest import build, pipeline_args

GB = 10**9
MB = 10**6


@pytest.fixture
def warnings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """What the component tells ``pulumi preview`` (``pulumi.log.warn``), with the resource it names."""
    seen: list[tuple[str, Any]] = []
    monkeypatch.setattr(
        pulumi.log, "warn", lambda message, resource=None, **_: seen.append((message, resource))
    )
    return seen


def _pipeline(**overrides: Any):
    return lambda: FileProcessingPipeline(
        "orders", pipeline_args({"input_prefix": "incoming/orders/", **overrides})
    )


def _bytes_for(seconds: float, input_format: FileFormat, memory_mb: int) -> int:
    """A file size the handler is expected to need ``seconds`` for."""
    return int(seconds / expected_seconds(MB, input_format, memory_mb) * MB)


@pytest.mark.parametrize("input_format", list(FileFormat))
def test_without_a_state_table_a_cap_beyond_one_invocation_is_an_error_naming_pipeline_and_seconds(
    mocks, input_format
):
    # GIVEN a pipeline that cannot continue a file, whose cap needs far more than one invocation
    args = {"input_format": input_format, "state_table": False, "max_file_bytes": 4 * GB}
    seconds = expected_seconds(4 * GB, input_format, defaults.MEMORY_MB)

    # WHEN it is constructed
    with pytest.raises(PipelineConfigError) as error:
        build(_pipeline(**args))

    # THEN nothing registers, and the message names the pipeline, the time and every way out
    assert mocks.resources == []
    message = str(error.value)
    assert message.startswith("pipeline 'orders':")
    assert f"about {seconds:.0f} s at memory_mb={defaults.MEMORY_MB}" in message
    assert "timeout_seconds (up to 900)" in message
    assert "memory_mb" in message
    assert "lower max_file_bytes" in message
    assert "state_table=True" in message


def test_the_cap_the_error_suggests_is_accepted():
    # GIVEN the error for a cap that is too large
    args: dict[str, Any] = {"input_prefix": "in/", "state_table": False, "max_file_bytes": 4 * GB}
    with pytest.raises(PipelineConfigError) as error:
        validate_pipeline("orders", resolve_pipeline(pipeline_args(args), "orders"))
    suggested = int(re.search(r"to at most (\d+)", str(error.value)).group(1))  # type: ignore[union-attr]

    # WHEN the pipeline uses the suggested cap THEN it validates; a little more does not
    validate_pipeline(
        "orders", resolve_pipeline(pipeline_args({**args, "max_file_bytes": suggested}), "orders")
    )
    with pytest.raises(PipelineConfigError):
        validate_pipeline(
            "orders",
            resolve_pipeline(pipeline_args({**args, "max_file_bytes": int(suggested * 1.01)}), "orders"),
        )


@pytest.mark.parametrize(
    "fix",
    [
        pytest.param({"timeout_seconds": 900, "memory_mb": 10_240}, id="timeout-and-memory"),
        pytest.param({"state_table": True}, id="state-table"),
    ],
)
def test_the_fixes_the_error_names_make_the_pipeline_valid(fix):
    args: dict[str, Any] = {"input_prefix": "in/", "state_table": False, "max_file_bytes": 4 * GB}

    settings = resolve_pipeline(pipeline_args({**args, **fix}), "orders")

    assert validate_pipeline("orders", settings).pipeline == "orders"  # no PipelineConfigError
    # the cap now fits one invocation, or it is continued (and said so at preview)
    assert capacity(settings).fits or capacity_warnings("orders", settings)


def test_the_usable_time_is_the_timeout_minus_the_margin_the_function_gets(mocks):
    # GIVEN a cap that needs less than the timeout but more than the timeout minus the handler's margin
    margin_s = defaults.TIMEOUT_MARGIN_MS / 1000
    cap = _bytes_for(60 - margin_s / 2, FileFormat.NDJSON, defaults.MEMORY_MB)
    args = {"input_format": "ndjson", "state_table": False, "timeout_seconds": 60}

    # WHEN / THEN it does not fit one invocation, and the margin is the one the function is given
    with pytest.raises(PipelineConfigError, match=f"minus the handler's {margin_s:g} s margin"):
        build(_pipeline(**args, max_file_bytes=cap))
    build(_pipeline(**args, max_file_bytes=_bytes_for(60 - margin_s * 1.1, FileFormat.NDJSON, 512)))
    env = mocks.one("aws:lambda/function:Function").inputs["environment"]["variables"]
    assert env[EnvVar.TIMEOUT_MARGIN_MS] == str(defaults.TIMEOUT_MARGIN_MS)


def test_a_short_timeout_is_checked_against_its_shorter_margin(mocks):
    # GIVEN a 20 s function: the handler keeps a quarter of it (5 s) as its margin, not the default 10 s
    cap = _bytes_for(12, FileFormat.CSV, defaults.MEMORY_MB)

    # WHEN a cap needing 12 s is built THEN it fits the 15 s left
    build(_pipeline(input_format=FileFormat.CSV, state_table=False, timeout_seconds=20, max_file_bytes=cap))

    env = mocks.one("aws:lambda/function:Function").inputs["environment"]["variables"]
    assert env[EnvVar.TIMEOUT_MARGIN_MS] == "5000"


@pytest.mark.parametrize("input_format", list(FileFormat))
def test_a_continued_pipeline_builds_and_warns_with_the_invocations_a_file_at_the_cap_needs(
    mocks, warnings, input_format
):
    # GIVEN a state table (files are continued) and a cap beyond one invocation
    expected = expected_invocations(4 * GB, input_format, defaults.MEMORY_MB, 50)

    # WHEN it is constructed
    build(_pipeline(input_format=input_format, max_file_bytes=4 * GB))

    # THEN it deploys, and preview shows one warning on the component with the number of invocations
    assert mocks.one("aws:lambda/function:Function")
    assert expected > 1
    [(message, resource)] = warnings
    assert isinstance(resource, FileProcessingPipeline)
    assert message.startswith("pipeline 'orders':")
    assert f"continued across about {expected} invocations" in message


def test_a_json_pipeline_warns_that_a_document_which_is_not_an_array_must_fit_one_invocation(mocks, warnings):
    # GIVEN a JSON pipeline whose cap needs several invocations
    fits_mb = 50 / expected_seconds(MB, FileFormat.JSON, 1024)

    # WHEN it is constructed
    build(_pipeline(input_format="json", memory_mb=1024, max_file_bytes=4 * GB))

    # THEN the warning says such a document is one record, cannot be continued, and how large it may be
    [(message, _)] = warnings
    assert "A JSON document that is not an array is one record and cannot be continued" in message
    assert f"it must fit one invocation (about {fits_mb:.0f} MB at this memory and timeout)" in message


@pytest.mark.parametrize("input_format", [FileFormat.NDJSON, FileFormat.CSV])
def test_line_formats_do_not_mention_json_documents(mocks, warnings, input_format):
    build(_pipeline(input_format=input_format, max_file_bytes=4 * GB))

    [(message, _)] = warnings
    assert "JSON document" not in message


def test_a_cap_that_fits_one_invocation_does_not_warn(mocks, warnings):
    build(_pipeline(max_file_bytes=_bytes_for(40, FileFormat.JSON, defaults.MEMORY_MB)))

    assert warnings == []


@pytest.mark.parametrize("state_table", [True, False])
@pytest.mark.parametrize("input_format", list(FileFormat))
def test_the_defaults_fit_together_in_every_format(mocks, warnings, input_format, state_table):
    # GIVEN the default cap, memory and timeout
    args = PipelineArgs(input_prefix="incoming/orders/", input_format=input_format, state_table=state_table)
    settings = resolve_pipeline(args, "orders")
    assert (settings.max_file_bytes, settings.memory_mb, settings.timeout_seconds) == (256 * 1024**2, 512, 60)

    # WHEN the pipeline is built
    build(lambda: FileProcessingPipeline("orders", args))

    # THEN a file at the cap finishes in one invocation: no error, no warning
    assert expected_seconds(settings.max_file_bytes, FileFormat(input_format), settings.memory_mb) <= 50
    assert warnings == []
