"""The filepipe stack program: one PipelineGroup per bucket, from the stack's `filepipe:` config."""

import pulumi

from filepipe import PipelineGroup
from filepipe.stack_config import stack_config_from_pulumi

for group_name, group_args in stack_config_from_pulumi().groups.items():
    group = PipelineGroup(group_name, group_args)
    for pipeline_name, pipeline in group.pipelines.items():
        pulumi.export(pipeline_name, pipeline.outputs)
