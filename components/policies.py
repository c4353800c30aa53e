"""Resource and IAM policy documents, as small pure functions of plain values.

They take resolved strings (call them inside ``Output.all(...).apply``) and return dicts, so each is
unit-tested without Pulumi. No statement uses a ``*`` action or a bare ``*`` resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PolicyDocument = dict[str, Any]


def _document(*statements: dict[str, Any]) -> PolicyDocument:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def deny_insecure_transport(sid: str, action: str, resources: Sequence[str]) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": list(resources),
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def bucket_tls_only_policy(bucket_arn: str) -> PolicyDocument:
    """Deny every request to the bucket that does not use TLS."""
    return _document(
        deny_insecure_transport("DenyInsecureTransport", "s3:*", [bucket_arn, f"{bucket_arn}/*"])
    )


def _service_to_queue_policy(
    sid: str, service: str, queue_arn: str, source_condition: dict[str, Any], account_id: str
) -> PolicyDocument:
    return _document(
        {
            "Sid": sid,
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {**source_condition, "StringEquals": {"aws:SourceAccount": account_id}},
        },
        deny_insecure_transport("DenyInsecureTransport", "sqs:*", [queue_arn]),
    )


def s3_to_queue_policy(queue_arn: str, bucket_arn: str, account_id: str) -> PolicyDocument:
    """Let only S3 notifications from this bucket, in this account, send to the queue.

    Both conditions are needed: ``aws:SourceArn`` alone would admit a bucket of the same name
    re-created in another account (confused deputy).
    """
    return _service_to_queue_policy(
        "AllowS3Notifications",
        "s3.amazonaws.com",
        queue_arn,
        {"ArnLike": {"aws:SourceArn": bucket_arn}},
        account_id,
    )


def eventbridge_to_queue_policy(queue_arn: str, rule_arn: str, account_id: str) -> PolicyDocument:
    """Let only this pipeline's EventBridge rule send to the queue."""
    return _service_to_queue_policy(
        "AllowEventBridgeRule",
        "events.amazonaws.com",
        queue_arn,
        {"ArnEquals": {"aws:SourceArn": rule_arn}},
        account_id,
    )


def sns_to_queue_policy(queue_arn: str, topic_arn: str, account_id: str) -> PolicyDocument:
    """Let only the bucket's routing topic deliver to the queue (its subscription, or its redrive)."""
    return _service_to_queue_policy(
        "AllowRoutingTopic",
        "sns.amazonaws.com",
        queue_arn,
        {"ArnEquals": {"aws:SourceArn": topic_arn}},
        account_id,
    )


def s3_to_topic_policy(topic_arn: str, bucket_arn: str, account_id: str) -> PolicyDocument:
    """Let only S3 notifications from this bucket, in this account, publish to the routing topic (the
    same confused-deputy conditions as a queue's)."""
    return _document(
        {
            "Sid": "AllowS3Notifications",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {
                "ArnLike": {"aws:SourceArn": bucket_arn},
                "StringEquals": {"aws:SourceAccount": account_id},
            },
        },
        deny_insecure_transport("DenyInsecureTransport", "sns:Publish", [topic_arn]),
    )


def lambda_assume_role_policy() -> PolicyDocument:
    return _document(
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    )


def function_role_policy(
    *,
    partition: str,
    bucket: str,
    input_prefix: str,
    output_prefix: str,
    queue_arn: str,
    dlq_arn: str,
    log_group_arn: str,
    table_arn: str | None,
    kms_key_arn: str | None,
    breaker_table_arn: str | None = None,
) -> PolicyDocument:
    """Least privilege for the handler: exactly the objects, queues, table, logs and key it uses."""
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadInput",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": f"{bucket_arn}/{input_prefix}*",
        },
        {
            # Without ListBucket S3 answers a missing key with 403 instead of 404, and the handler
            # could not tell "deleted before processing" (permanent) from a permissions fault. S3 checks
            # ListBucket in the context of the GetObject request, which carries no s3:prefix key, so a
            # prefix condition here would never match: the grant is bucket-wide. It lets the function
            # list key names (not read objects) of this one bucket; that is the price of a truthful 404.
            "Sid": "ListBucketForNotFound",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
        },
        {
            "Sid": "WriteOutput",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:AbortMultipartUpload"],
            "Resource": f"{bucket_arn}/{output_prefix}*",
        },
        {
            "Sid": "ConsumeQueue",
            "Effect": "Allow",
            "Action": [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:GetQueueUrl",
            ],
            "Resource": queue_arn,
        },
        {
            "Sid": "ParkInDeadLetterQueue",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage", "sqs:GetQueueUrl"],
            "Resource": dlq_arn,
        },
        {
            "Sid": "WriteLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group_arn}:log-stream:*",
        },
    ]
    if table_arn is not None:
        statements.append(
            {
                "Sid": "TrackState",
                "Effect": "Allow",
                # Exactly what the handler calls: conditional UpdateItem, and GetItem when a refused
                # condition returns no item.
                "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                "Resource": table_arn,
            }
        )
    if breaker_table_arn is not None:
        statements.extend(
            [
                {
                    # On a last delivery while the circuit breaker is not closed, a fresh copy goes back
                    # to the queue instead of the DLQ: the breaker's probes count as deliveries.
                    "Sid": "RequeueWhileBreakerOpen",
                    "Effect": "Allow",
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                },
                {
                    "Sid": "ReadBreakerState",
                    "Effect": "Allow",
                    "Action": "dynamodb:GetItem",
                    "Resource": breaker_table_arn,
                },
            ]
        )
    if kms_key_arn is not None:
        statements.append(
            {
                # Decrypt: receiving from the queues, and DynamoDB decrypting the state table's key on
                # the caller's behalf (reads and writes alike); GenerateDataKey: sending to the DLQ.
                # Creating the table (grants, DescribeKey) is the deployer's job, not the function's.
                "Sid": "UseQueueKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": kms_key_arn,
            }
        )
    return _document(*statements)


def breaker_role_policy(
    *,
    mapping_arn: str,
    topic_arn: str,
    table_arn: str,
    alarm_arns: Sequence[str],
    log_group_arn: str,
    kms_key_arn: str | None,
) -> PolicyDocument:
    """The breaker function: this pipeline's mapping, its topic, its own state item and alarms, its logs."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "SwitchOwnMapping",
            "Effect": "Allow",
            "Action": ["lambda:GetEventSourceMapping", "lambda:UpdateEventSourceMapping"],
            "Resource": mapping_arn,
        },
        {"Sid": "Alert", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn},
        {
            "Sid": "KeepState",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem"],
            "Resource": table_arn,
        },
        {
            "Sid": "ReadOwnAlarms",
            "Effect": "Allow",
            "Action": "cloudwatch:DescribeAlarms",
            "Resource": list(alarm_arns),
        },
        {
            "Sid": "WriteLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{log_group_arn}:log-stream:*",
        },
    ]
    if kms_key_arn is not None:
        statements.append(
            {
                # The alert topic and the state table are encrypted with the pipeline's key.
                "Sid": "UseKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": kms_key_arn,
            }
        )
    return _document(*statements)


KEY_SERVICES: dict[str, str] = {
    "S3": "s3.amazonaws.com",
    "CloudWatch": "cloudwatch.amazonaws.com",
    "EventBridge": "events.amazonaws.com",
    "SNS": "sns.amazonaws.com",
}
"""The services that may encrypt with a customer-managed key, by the label of their statement."""
PIPELINE_KEY_SERVICES = ("S3", "CloudWatch", "EventBridge")
"""What a pipeline's key admits: S3 and EventBridge write its queue, CloudWatch its alert topic; SNS is
added when a routing topic delivers to its queues."""


def kms_key_policy(
    *, partition: str, account_id: str, services: Sequence[str] = PIPELINE_KEY_SERVICES
) -> PolicyDocument:
    """A customer-managed key usable by the AWS ``services`` (labels of :data:`KEY_SERVICES`) that write
    what it encrypts.

    The account statement is the AWS default key policy: it delegates access to IAM (the function role's
    policy grants it ``kms:Decrypt``) and keeps the key manageable.
    """
    service_use = ["kms:GenerateDataKey", "kms:Decrypt"]
    return _document(
        {
            "Sid": "EnableIamPolicies",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        *(
            {
                "Sid": f"Allow{label}",
                "Effect": "Allow",
                "Principal": {"Service": KEY_SERVICES[label]},
                "Action": service_use,
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
            for label in services
        ),
    )


def wildcard_findings(document: PolicyDocument) -> list[str]:
    """Describe every Allow statement whose action is ``*``/``service:*`` or whose resource is ``*``.

    Used by the tests and (later) the policy pack; key policies are exempt because ``Resource: "*"`` there
    means "this key".
    """
    findings: list[str] = []
    for statement in document["Statement"]:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        for action in [actions] if isinstance(actions, str) else actions:
            if action == "*" or action.endswith(":*"):
                findings.append(f"{statement.get('Sid', '?')}: action {action}")
        for resource in [resources] if isinstance(resources, str) else resources:
            if resource == "*":
                findings.append(f"{statement.get('Sid', '?')}: resource *")
    return findings
