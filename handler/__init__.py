"""The Lambda handler of a filepipe pipeline (``handler.app.lambda_handler`` in Lambda).

Only the pure, standard-library pieces are re-exported here, so that ``import filepipe.handler``
(and the component's ``filepipe.handler.settings``) never pulls in boto3 or Powertools. The entry
point and the AWS-facing modules are imported explicitly: ``from filepipe.handler.app import ...``.
"""

from .errors import FilepipeError, PermanentError, TransientError
from .events import ObjectRef, ParsedBody, parse_body
from .keys import output_key, rejects_key
from .settings import (
    ATTENTION_INDEX,
    DlqAttribute,
    EnvVar,
    FileFormat,
    FileStatus,
    HandlerSettings,
    InvalidRecordPolicy,
    Metric,
    SettingsError,
    StateAttribute,
)

__all__ = [
    "ATTENTION_INDEX",
    "DlqAttribute",
    "EnvVar",
    "FileFormat",
    "FileStatus",
    "FilepipeError",
    "HandlerSettings",
    "InvalidRecordPolicy",
    "Metric",
    "ObjectRef",
    "ParsedBody",
    "PermanentError",
    "SettingsError",
    "StateAttribute",
    "TransientError",
    "output_key",
    "parse_body",
    "rejects_key",
]
