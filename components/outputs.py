"""The names of a pipeline's stack outputs: what ``pulumi stack output --json`` shows for each pipeline.

The component writes them and the ``filepipe`` ops commands read them (from the Pulumi CLI, an outputs
file or the local endpoint's ``outputs.json``), so the names are defined once, here.
"""

from __future__ import annotations

from enum import StrEnum


class PipelineOutput(StrEnum):
    """Keys of one pipeline's exported outputs (camelCase, as Pulumi shows exported values)."""

    PIPELINE = "pipeline"
    BUCKET = "bucket"
    INPUT_PREFIX = "inputPrefix"
    INPUT_SUFFIXES = "inputSuffixes"
    """The suffixes a file must end with to be processed; empty: every key under the prefix."""
    OUTPUT_PREFIX = "outputPrefix"
    QUEUE_URL = "queueUrl"
    QUEUE_ARN = "queueArn"
    DLQ_URL = "dlqUrl"
    DLQ_ARN = "dlqArn"
    FUNCTION_NAME = "functionName"
    FUNCTION_ARN = "functionArn"
    LOG_GROUP_NAME = "logGroupName"
    """The function's log group (the component creates it and points the function's logging at it)."""
    EVENT_SOURCE_MAPPING_ID = "eventSourceMappingId"
    TOPIC_ARN = "topicArn"
    TABLE_NAME = "tableName"
    """The state table; empty when the pipeline keeps no state."""
    ALARM_NAMES = "alarmNames"
    DASHBOARD_NAME = "dashboardName"
    BREAKER_TABLE_NAME = "breakerTableName"
    """The circuit breaker's state table; absent when the pipeline has no breaker."""
    BREAKER_FUNCTION_NAME = "breakerFunctionName"
    """The circuit breaker's function; absent when the pipeline has no breaker."""
