"""The filepipe policy pack: `pulumi preview --policy-pack policy` (from the repository root).

Only this file constructs the PolicyPack, which serves the rules to the Pulumi CLI until it is stopped;
the rules themselves live in the importable module filepipe.policy.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from filepipe.policy import POLICIES

PolicyPack(
    name="filepipe",
    policies=POLICIES,
    # Each rule sets its own level; this applies only to a rule a future version adds without one.
    enforcement_level=EnforcementLevel.MANDATORY,
    description="Misconfigurations of S3 -> SQS -> Lambda -> DLQ -> alarm -> SNS pipelines, in any program.",
)
