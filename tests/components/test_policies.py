"""Policy documents are pure functions: tested without Pulumi."""

import json

from filepipe.policies import (
    bucket_tls_only_policy,
    function_role_policy,
    kms_key_policy,
    s3_to_queue_policy,
    wildcard_findings,
)

QUEUE = "arn:aws:sqs:eu-west-1:123456789012:orders-queue"
DLQ = "arn:aws:sqs:eu-west-1:123456789012:orders-dlq"
BUCKET_ARN = "arn:aws:s3:::data-bucket"


def _role_policy(**overrides):
    arguments = {
        "partition": "aws",
        "bucket": "data-bucket",
        "input_prefix": "incoming/orders/",
        "output_prefix": "processed/incoming/orders/",
        "queue_arn": QUEUE,
        "dlq_arn": DLQ,
        "log_group_arn": "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/orders",
        "table_arn": "arn:aws:dynamodb:eu-west-1:123456789012:table/orders-state",
        "kms_key_arn": None,
    }
    return function_role_policy(**{**arguments, **overrides})


def _statement(document, sid):
    return next(s for s in document["Statement"] if s.get("Sid") == sid)


def test_queue_policy_admits_only_s3_from_this_bucket_and_account():
    document = s3_to_queue_policy(QUEUE, BUCKET_ARN, "123456789012")

    allow = _statement(document, "AllowS3Notifications")
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    assert allow["Resource"] == QUEUE
    assert allow["Condition"] == {
        "ArnLike": {"aws:SourceArn": BUCKET_ARN},
        "StringEquals": {"aws:SourceAccount": "123456789012"},
    }
    assert [s["Effect"] for s in document["Statement"]] == ["Allow", "Deny"]


def test_bucket_policy_denies_requests_without_tls():
    (statement,) = bucket_tls_only_policy(BUCKET_ARN)["Statement"]

    assert statement["Effect"] == "Deny"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [BUCKET_ARN, f"{BUCKET_ARN}/*"]


def test_role_policy_reads_only_input_and_writes_only_output():
    document = _role_policy()

    assert _statement(document, "ReadInput")["Resource"] == "arn:aws:s3:::data-bucket/incoming/orders/*"
    assert _statement(document, "WriteOutput")["Resource"] == (
        "arn:aws:s3:::data-bucket/processed/incoming/orders/*"
    )
    assert _statement(document, "ConsumeQueue")["Resource"] == QUEUE
    assert _statement(document, "ParkInDeadLetterQueue")["Resource"] == DLQ
    assert "sqs:SendMessage" not in _statement(document, "ConsumeQueue")["Action"]
    assert wildcard_findings(document) == []


def test_role_policy_grants_the_table_and_key_only_when_present():
    without = _role_policy(table_arn=None)
    with_key = _role_policy(kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k")

    assert "TrackState" not in {s["Sid"] for s in without["Statement"]}
    # the state table: the handler's conditional updates and the read after a refused one, nothing else
    assert _statement(with_key, "TrackState")["Action"] == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert _statement(with_key, "UseQueueKey")["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert _statement(with_key, "UseQueueKey")["Resource"] == "arn:aws:kms:eu-west-1:123456789012:key/k"


def test_key_policy_lets_s3_and_cloudwatch_use_the_key():
    document = kms_key_policy(partition="aws", account_id="123456789012")
    services = {
        s["Principal"]["Service"]: s["Action"] for s in document["Statement"] if "Service" in s["Principal"]
    }

    assert services["s3.amazonaws.com"] == ["kms:GenerateDataKey", "kms:Decrypt"]
    assert services["cloudwatch.amazonaws.com"] == ["kms:GenerateDataKey", "kms:Decrypt"]


def test_wildcard_findings_flags_star_actions_and_resources():
    document = {
        "Statement": [
            {"Sid": "A", "Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b"},
            {"Sid": "B", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "*"},
            {"Sid": "C", "Effect": "Deny", "Action": "*", "Resource": "*"},
        ]
    }

    assert wildcard_findings(document) == ["A: action s3:*", "B: resource *"]


def test_a_deleted_input_reads_as_not_found_not_access_denied():
    # GIVEN the role policy
    document = _role_policy()

    # WHEN S3 decides between 404 and 403 for a missing key: does the caller have s3:ListBucket on the
    # bucket, evaluated for a GetObject request (which has no s3:prefix context key)?
    grants = [
        s
        for s in document["Statement"]
        if s["Effect"] == "Allow" and "s3:ListBucket" in s["Action"] and s["Resource"] == BUCKET_ARN
    ]

    # THEN a grant exists whose conditions do not depend on s3:prefix (any condition on it fails there)
    assert grants
    assert any("s3:prefix" not in json.dumps(s.get("Condition", {})) for s in grants)
