"""The doctor's policy evaluator, on hand-made statements and on the component's own documents."""

from __future__ import annotations

from typing import Any

import pytest

from filepipe.cli.ops.iam_check import Decision, Request, evaluate, evaluate_with_boundary, wildcard_match
from filepipe.policies import eventbridge_to_queue_policy, function_role_policy, s3_to_queue_policy

ACCOUNT = "123456789012"
QUEUE_ARN = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:data-transactions-queue"
DLQ_ARN = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:data-transactions-dlq"
BUCKET_ARN = "arn:aws:s3:::data-bucket"
RULE_ARN = f"arn:aws:events:eu-west-1:{ACCOUNT}:rule/data-transactions-rule"


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def role_policy(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "partition": "aws",
        "bucket": "data-bucket",
        "input_prefix": "incoming/transactions/",
        "output_prefix": "processed/incoming/transactions/",
        "queue_arn": QUEUE_ARN,
        "dlq_arn": DLQ_ARN,
        "log_group_arn": f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/data-transactions",
        "table_arn": None,
        "kms_key_arn": None,
    }
    return function_role_policy(**{**values, **overrides})


def from_service(service: str, source_arn: str, account: str = ACCOUNT) -> Request:
    return Request(
        "sqs:SendMessage",
        QUEUE_ARN,
        principal=("Service", service),
        context={"aws:SourceArn": source_arn, "aws:SourceAccount": account, "aws:SecureTransport": "true"},
    )


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        pytest.param("arn:aws:s3:::b/in/*", "arn:aws:s3:::b/in/x/y.json", True, id="star-spans-slashes"),
        pytest.param("arn:aws:s3:::b/in/*", "arn:aws:s3:::b/out/x.json", False, id="other-prefix"),
        pytest.param("arn:aws:s3:::b/in/?.json", "arn:aws:s3:::b/in/a.json", True, id="question-one-char"),
        pytest.param("arn:aws:s3:::b/in/?.json", "arn:aws:s3:::b/in/ab.json", False, id="question-not-two"),
        pytest.param("arn:aws:s3:::b/[a].json", "arn:aws:s3:::b/[a].json", True, id="brackets-are-literal"),
        pytest.param("arn:aws:s3:::b/in/*", "arn:aws:s3:::B/in/x", False, id="case-sensitive"),
    ],
)
def test_wildcards_match_as_iam_matches_resources(pattern: str, value: str, expected: bool) -> None:
    assert wildcard_match(pattern, value) is expected


def test_actions_match_case_insensitively_with_service_wildcards() -> None:
    policy = document({"Effect": "Allow", "Action": "S3:Get*", "Resource": "*"})

    assert evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::b/k")).decision is Decision.ALLOWED
    assert evaluate([policy], Request("s3:PutObject", "arn:aws:s3:::b/k")).decision is Decision.NOT_ALLOWED


def test_an_explicit_deny_wins_over_any_allow() -> None:
    policies = [
        document({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}),
        document(
            {
                "Sid": "NoOutput",
                "Effect": "Deny",
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::b/out/*",
            }
        ),
    ]

    evaluation = evaluate(policies, Request("s3:PutObject", "arn:aws:s3:::b/out/x"))

    assert evaluation.decision is Decision.DENIED
    assert evaluation.statements == ("statement 'NoOutput'",)


def test_not_action_and_not_resource_cover_everything_they_do_not_list() -> None:
    policy = document({"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret/*"})

    assert evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::b/k")).allowed
    assert not evaluate([policy], Request("iam:PassRole", "arn:aws:iam::1:role/r")).allowed
    assert not evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::secret/k")).allowed


def test_a_condition_on_a_key_the_request_does_not_carry_is_undetermined_not_guessed() -> None:
    policy = document(
        {
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        },
        {
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": "*",
            "Condition": {"StringEquals": {"s3:x-amz-acl": "private"}},
        },
    )

    unknown_operator = evaluate([policy], Request("s3:GetObject", "arn:aws:s3:::b/k"))
    unknown_key = evaluate([policy], Request("s3:PutObject", "arn:aws:s3:::b/k"))

    assert unknown_operator.decision is Decision.UNDETERMINED
    assert unknown_operator.unknowns == ("condition operator IpAddress",)
    assert unknown_key.decision is Decision.UNDETERMINED
    assert unknown_key.unknowns == ("condition key s3:x-amz-acl",)


def test_a_boundary_limits_what_the_role_policies_allow() -> None:
    policies = [document({"Effect": "Allow", "Action": "s3:*", "Resource": "*"})]
    boundary = document({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})

    assert evaluate_with_boundary(policies, boundary, Request("s3:GetObject", "arn:aws:s3:::b/k")).allowed
    capped = evaluate_with_boundary(policies, boundary, Request("s3:PutObject", "arn:aws:s3:::b/k"))
    assert capped.decision is Decision.NOT_ALLOWED
    assert capped.statements == ("permissions boundary",)


def test_the_components_role_policy_grants_the_handler_what_it_uses() -> None:
    policy = role_policy()

    for request in (
        Request("s3:GetObject", "arn:aws:s3:::data-bucket/incoming/transactions/a.json"),
        Request("s3:PutObject", "arn:aws:s3:::data-bucket/processed/incoming/transactions/a.json"),
        Request("sqs:ReceiveMessage", QUEUE_ARN),
        Request("sqs:DeleteMessage", QUEUE_ARN),
        Request("sqs:SendMessage", DLQ_ARN),
    ):
        assert evaluate([policy], request).allowed, request
    assert not evaluate([policy], Request("s3:PutObject", "arn:aws:s3:::data-bucket/incoming/x.json")).allowed
    assert not evaluate([policy], Request("sqs:SendMessage", QUEUE_ARN)).allowed


def test_the_components_queue_policy_admits_its_bucket_only_from_its_account() -> None:
    policy = s3_to_queue_policy(QUEUE_ARN, BUCKET_ARN, ACCOUNT)

    assert evaluate([policy], from_service("s3.amazonaws.com", BUCKET_ARN)).allowed
    other_bucket = evaluate([policy], from_service("s3.amazonaws.com", "arn:aws:s3:::other-bucket"))
    other_account = evaluate([policy], from_service("s3.amazonaws.com", BUCKET_ARN, account="999999999999"))
    other_service = evaluate([policy], from_service("sns.amazonaws.com", BUCKET_ARN))
    assert (other_bucket.decision, other_account.decision, other_service.decision) == (
        Decision.NOT_ALLOWED,
        Decision.NOT_ALLOWED,
        Decision.NOT_ALLOWED,
    )


def test_the_components_queue_policy_denies_plain_http_sends() -> None:
    policy = s3_to_queue_policy(QUEUE_ARN, BUCKET_ARN, ACCOUNT)
    request = from_service("s3.amazonaws.com", BUCKET_ARN)
    insecure = Request(
        request.action,
        request.resource,
        request.principal,
        {**request.context, "aws:SecureTransport": "false"},
    )

    assert evaluate([policy], insecure).decision is Decision.DENIED


def test_the_eventbridge_queue_policy_admits_its_rule() -> None:
    policy = eventbridge_to_queue_policy(QUEUE_ARN, RULE_ARN, ACCOUNT)

    assert evaluate([policy], from_service("events.amazonaws.com", RULE_ARN)).allowed
    assert not evaluate([policy], from_service("events.amazonaws.com", f"{RULE_ARN}-other")).allowed


def test_a_wildcard_principal_admits_a_service_and_not_principal_excludes_it() -> None:
    anyone = document(
        {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": QUEUE_ARN}
    )
    all_but_s3 = document(
        {
            "Effect": "Allow",
            "NotPrincipal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": QUEUE_ARN,
        }
    )

    assert evaluate([anyone], from_service("s3.amazonaws.com", BUCKET_ARN)).allowed
    assert not evaluate([all_but_s3], from_service("s3.amazonaws.com", BUCKET_ARN)).allowed
    assert evaluate([all_but_s3], from_service("events.amazonaws.com", RULE_ARN)).allowed
