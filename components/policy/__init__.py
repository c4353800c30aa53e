"""filepipe.policy: CrossGuard rules for S3 -> SQS -> Lambda -> DLQ -> alarm -> SNS pipelines.

Import the rules into any policy pack; importing this module starts nothing (only ``PolicyPack(...)``
serves them, which the pack's ``__main__.py`` does)::

    from pulumi_policy import PolicyPack
    from filepipe.policy import POLICIES

    PolicyPack("my-pack", policies=[*POLICIES, *my_policies])

Resource rules judge one resource's inputs wherever the program declares it; stack rules follow the
wiring (bucket notification -> queue -> mapping -> function, redrive -> dead-letter queue -> alarm -> topic,
key -> what it encrypts -> who writes to it). Every rule carries its own enforcement level.
"""

from typing import Final

from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from .resources import RESOURCE_POLICIES
from .stack import STACK_POLICIES

POLICIES: Final[list[ResourceValidationPolicy | StackValidationPolicy]] = [
    *RESOURCE_POLICIES,
    *STACK_POLICIES,
]
"""Every rule, resource rules first."""

__all__ = ["POLICIES", "RESOURCE_POLICIES", "STACK_POLICIES"]
