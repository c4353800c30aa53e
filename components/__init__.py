"""filepipe: event-driven file-processing pipelines on AWS, as Pulumi components.

from filepipe import FileProcessingPipeline, PipelineArgs

FileProcessingPipeline("orders", PipelineArgs(input_prefix="incoming/orders/"))
"""

from .args import (
    Architecture,
    CircuitBreakerArgs,
    Encryption,
    NotificationMode,
    PipelineArgs,
    PipelineBucketArgs,
    PipelineGroupArgs,
    PrefixLifecycleRule,
)
from .bucket import PipelineBucket
from .errors import PipelineConfigError
from .group import PipelineGroup
from .handler.settings import FileFormat, InvalidRecordPolicy
from .pipeline import FileProcessingPipeline

__all__ = [
    "Architecture",
    "CircuitBreakerArgs",
    "Encryption",
    "FileFormat",
    "FileProcessingPipeline",
    "InvalidRecordPolicy",
    "NotificationMode",
    "PipelineArgs",
    "PipelineBucket",
    "PipelineBucketArgs",
    "PipelineConfigError",
    "PipelineGroup",
    "PipelineGroupArgs",
    "PrefixLifecycleRule",
]
