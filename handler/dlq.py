"""Parking a permanently failed message in the pipeline's DLQ, with the reason as attributes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .errors import DlqUnavailableError, PermanentError
from .events import ObjectRef
from .settings import DlqAttribute

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

MAX_REASON_CHARS = 1000
# SQS accepts only these characters in attribute values (#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD |
# #x10000-#x10FFFF); an S3 key may hold others, which would make every send fail.
_NOT_SQS_TEXT = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _sqs_text(value: str) -> str:
    return _NOT_SQS_TEXT.sub(lambda match: f"\\u{ord(match.group()):04x}", value)


def dlq_attributes(
    error: PermanentError, ref: ObjectRef | None, pipeline: str
) -> dict[str, MessageAttributeValueTypeDef]:
    values = {
        DlqAttribute.ERROR_TYPE: error.error_type,
        DlqAttribute.REASON: error.reason[:MAX_REASON_CHARS],
        DlqAttribute.PIPELINE: pipeline,
    }
    if ref is not None:
        values[DlqAttribute.SOURCE_BUCKET] = ref.bucket
        values[DlqAttribute.SOURCE_KEY] = ref.key
        values[DlqAttribute.SOURCE_VERSION] = ref.version_token
    # SQS rejects empty attribute values.
    return {
        name.value: {"DataType": "String", "StringValue": _sqs_text(value)}
        for name, value in values.items()
        if value
    }


def send_to_dlq(
    sqs: SQSClient,
    dlq_url: str | None,
    body: str,
    error: PermanentError,
    ref: ObjectRef | None,
    pipeline: str,
) -> str:
    """Send the original ``body`` to the DLQ; raise :class:`DlqUnavailableError` if that fails."""
    if not dlq_url:
        raise DlqUnavailableError(f"no DLQ configured to park {error.error_type}: {error.reason}")
    try:
        response = sqs.send_message(
            QueueUrl=dlq_url, MessageBody=body, MessageAttributes=dlq_attributes(error, ref, pipeline)
        )
    except Exception as exc:
        raise DlqUnavailableError(f"sending to the DLQ failed: {exc}") from exc
    return response["MessageId"]
