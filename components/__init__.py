"""filepipe: event-driven file-processing pipelines on AWS, as Pulumi components.

from filepipe import FileProcessingPipeline, PipelineArgs

FileProcessingPipeline("orders", PipelineArgs(input_prefix="incoming/orders/"))
"""

from .args import CircuitBreakerArgs, PipelineArgs
from .bucket import PipelineBucket, PipelineBucketArgs
from .errors import PipelineConfigError
from .group import PipelineGroup, PipelineGroupArgs
from .handler.settings import FileFormat, InvalidRecordPolicy
from .pipeline import FileProcessingPipeline

__all__ = [
    "CircuitBreakerArgs",
    "FileFormat",
    "FileProcessingPipeline",
    "InvalidRecordPolicy",
    "PipelineArgs",
    "PipelineBucket",
    "PipelineBucketArgs",
    "PipelineConfigError",
    "PipelineGroup",
    "PipelineGroupArgs",
]
