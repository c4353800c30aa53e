"""The filepipe stack program: one PipelineGroup per bucket, from the stack's `filepipe:` config."""

import pulumi

from filepipe import PipelineGroup
from filepipe.stack_config import load_stack_config

for group_name, group_args in load_stack_config().groups.items():
    group = PipelineGroup(group_name, group_args)
    for pipeline_name, pipeline in group.pipelines.items():
        pulumi.export(pipeline_name, pipeline.outputs)
