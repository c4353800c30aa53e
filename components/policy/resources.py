"""Rules that judge one resource from its own inputs (``ResourceValidationPolicy``).

Properties are read through the pack's unknown-checking proxy: when a value a rule needs is still unknown
during a preview, the engine reports that the rule could not run instead of a false violation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.deserialize import serialize_properties

from filepipe.handler.settings import EnvVar, HandlerSettings, SettingsError
from filepipe.lambda_code import HANDLER_ENTRY_POINT

from . import documents as doc
from .wiring import FUNCTION, KMS_KEY, LOG_GROUP, QUEUE, QUEUE_POLICY, TOPIC, TOPIC_POLICY, unknown

MANDATORY: Final = EnforcementLevel.MANDATORY
ADVISORY: Final = EnforcementLevel.ADVISORY

ROLE: Final = "aws:iam/role:Role"
IDENTITY_POLICIES: Final = (
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/policy:Policy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
TABLE: Final = "aws:dynamodb/table:Table"

RESOURCE_WILDCARD_ONLY_ACTIONS: Final = frozenset(
    {
        "cloudwatch:putmetricdata",
        "xray:puttracesegments",
        "xray:puttelemetryrecords",
        "xray:getsamplingrules",
        "xray:getsamplingtargets",
        "ec2:createnetworkinterface",
        "ec2:describenetworkinterfaces",
        "ec2:deletenetworkinterface",
        "sts:getcalleridentity",
    }
)
"""Actions that support no resource-level permissions (AWS Service Authorization Reference): for these
``Resource: "*"`` is the only possible value, so it is not a finding."""

Validate = Callable[[ResourceValidationArgs, ReportViolation], None]


def _only(types: tuple[str, ...], validate: Validate) -> Validate:
    def validate_matching(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type in types:
            validate(args, report)

    return validate_matching


def _documents(
    args: ResourceValidationArgs, report: ReportViolation, *keys: str
) -> list[tuple[str, Mapping[str, Any]]]:
    """``(where, document)`` for each policy property present; an unreadable one is itself a violation,
    since AWS would reject it (or a rule would otherwise pass it unread)."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    for key in keys:
        value = args.props.get(key)
        if value in (None, ""):
            continue
        try:
            found.append((key, doc.parse_document(value)))
        except doc.DocumentError as error:
            report(f"{args.name}: {key} is not a policy document: {error}.", None)
    return found


# --- SQS and SNS ----------------------------------------------------------------------------------------


def _queue_encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.props.get("kmsMasterKeyId") or args.props.get("sqsManagedSseEnabled") is True:
        return
    report(
        f"{args.name}: the queue sets neither sqsManagedSseEnabled=true nor kmsMasterKeyId. "
        "Set sqs_managed_sse_enabled=True (SSE-SQS), or a customer-managed key; never alias/aws/sqs for a "
        "queue S3, SNS or EventBridge writes to.",
        None,
    )


def _topic_encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not args.props.get("kmsMasterKeyId"):
        report(
            f"{args.name}: the topic is not encrypted at rest. Set kms_master_key_id to a customer-managed key "
            "whose policy admits cloudwatch.amazonaws.com (CloudWatch cannot publish under alias/aws/sns).",
            None,
        )


def _not_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    # Queue and topic resources may carry their policy inline; the policy resources always do.
    for where, document in _documents(args, report, "policy"):
        for index, statement in enumerate(doc.statements(document)):
            if not doc.allows(statement) or not doc.is_wildcard_principal(statement):
                continue
            if doc.condition_keys(statement) & doc.ACCOUNT_CONDITION_KEYS:
                continue
            report(
                f'{args.name}: {where} {doc.label(statement, index)} allows Principal "*" without an '
                "aws:SourceAccount / aws:PrincipalOrgID condition: anyone can use it. Name the service "
                "principal and restrict it by aws:SourceArn and aws:SourceAccount.",
                None,
            )


def _source_conditions(args: ResourceValidationArgs, report: ReportViolation) -> None:
    # Unreadable documents are reported once, by queue-topic-policy-not-public.
    for where, document in _documents(args, lambda message, urn: None, "policy"):
        for index, statement in enumerate(doc.statements(document)):
            _, services = doc.principals(statement)
            if not doc.allows(statement) or not services:
                continue
            missing = [
                name
                for name, key in (
                    ("aws:SourceArn", doc.SOURCE_ARN),
                    ("aws:SourceAccount", doc.SOURCE_ACCOUNT),
                )
                if key not in doc.condition_keys(statement)
            ]
            if missing:
                report(
                    f"{args.name}: {where} {doc.label(statement, index)} admits {', '.join(services)} without "
                    f"{' and '.join(missing)}: another account's bucket, rule or topic could send through it "
                    "(confused deputy). Condition on both the source ARN and the source account.",
                    None,
                )


# --- IAM -------------------------------------------------------------------------------------------------


def _wildcards(statement: doc.Statement) -> list[str]:
    findings: list[str] = []
    if "NotAction" in statement:
        findings.append("NotAction (allows every other action)")
    if "NotResource" in statement:
        findings.append("NotResource (allows every other resource)")
    actions = doc.actions(statement)
    findings.extend(f"action {action}" for action in actions if action == "*" or action.endswith(":*"))
    restrictable = [action for action in actions if action.lower() not in RESOURCE_WILDCARD_ONLY_ACTIONS]
    if restrictable and "*" in doc.resources(statement):
        findings.append('resource "*"')
    return findings


def _iam_no_wildcards(args: ResourceValidationArgs, report: ReportViolation) -> None:
    documents = _documents(args, report, "policy")
    if args.resource_type == ROLE:
        for inline in args.props.get("inlinePolicies") or []:
            try:
                documents.append(
                    (f"inline policy {inline.get('name', '')!r}", doc.parse_document(inline.get("policy")))
                )
            except doc.DocumentError as error:
                report(f"{args.name}: inline policy {inline.get('name', '')!r}: {error}.", None)
        for _, trust in _documents(args, report, "assumeRolePolicy"):
            for index, statement in enumerate(doc.statements(trust)):
                if doc.allows(statement) and doc.is_wildcard_principal(statement):
                    report(
                        f"{args.name}: assumeRolePolicy {doc.label(statement, index)} lets any principal "
                        "assume the role. Name the service or account that may assume it.",
                        None,
                    )
    for where, document in documents:
        for index, statement in enumerate(doc.statements(document)):
            if not doc.allows(statement):
                continue
            findings = _wildcards(statement)
            if findings:
                report(
                    f"{args.name}: {where} {doc.label(statement, index)} allows {', '.join(findings)}. "
                    "Grant the exact actions on the exact ARNs (an object prefix, a queue, a table).",
                    None,
                )


# --- Logs, keys, tables, functions -----------------------------------------------------------------------


def _log_group_retention(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if not args.props.get("retentionInDays"):
        report(
            f"{args.name}: the log group keeps its events forever (no retentionInDays). Set a retention "
            "(the component uses 30 days).",
            None,
        )


def _key_rotation(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = args.props.get("keySpec") or args.props.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    if spec != "SYMMETRIC_DEFAULT":
        return  # KMS rotates only symmetric encryption keys.
    if args.props.get("enableKeyRotation") is not True:
        report(f"{args.name}: automatic key rotation is off. Set enable_key_rotation=True.", None)


def _table_point_in_time_recovery(args: ResourceValidationArgs, report: ReportViolation) -> None:
    recovery = args.props.get("pointInTimeRecovery") or {}
    if recovery.get("enabled") is not True:
        report(
            f"{args.name}: point-in-time recovery is off, so a bad write or a deleted item cannot be "
            "restored. Set point_in_time_recovery={'enabled': True}.",
            None,
        )


def _table_encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    encryption = args.props.get("serverSideEncryption") or {}
    if encryption.get("kmsKeyArn") and encryption.get("enabled") is not True:
        report(
            f"{args.name}: serverSideEncryption names kmsKeyArn but enabled is not true, so DynamoDB ignores "
            "the key and uses its own. Set enabled=True with the key.",
            None,
        )


def _function_json_logs(args: ResourceValidationArgs, report: ReportViolation) -> None:
    logging = args.props.get("loggingConfig") or {}
    if logging.get("logFormat") != "JSON":
        report(
            f"{args.name}: logs are not JSON (loggingConfig.logFormat is {logging.get('logFormat', 'unset')}). "
            "Set logging_config={'log_format': 'JSON', 'log_group': <a log group with retention>}: structured "
            "logs carry the request id and level, and filter by field.",
            None,
        )


_REQUIRED_TEXT: Final = (EnvVar.PIPELINE_NAME.value, EnvVar.OUTPUT_PREFIX.value)


def _handler_settings(args: ResourceValidationArgs, report: ReportViolation) -> None:
    # Plain values (the proxy would stop the rule at the first unknown): an unknown value cannot be judged
    # yet and is left out, except the required names, which only need to be present.
    environment = serialize_properties(args.props).get("environment") or {}
    variables = environment.get("variables") if isinstance(environment, Mapping) else None
    if not isinstance(variables, Mapping):
        return
    # The file handler's entry point, or its output prefix: the circuit breaker's function shares the
    # archive and some variables, but neither of these.
    handler = serialize_properties(args.props).get("handler")
    if handler != HANDLER_ENTRY_POINT and EnvVar.OUTPUT_PREFIX.value not in variables:
        return
    known = {
        str(name): ("unknown" if name in _REQUIRED_TEXT else None) if unknown(value) else str(value)
        for name, value in variables.items()
        if isinstance(value, str | int | float)
    }
    try:
        settings = HandlerSettings.from_env(
            {name: value for name, value in known.items() if value is not None}
        )
    except SettingsError as error:
        report(
            f"{args.name}: the filepipe handler refuses its environment: {error}. Every file it is sent "
            "would fail; set the value the component documents (filepipe.args.PipelineArgs).",
            None,
        )
        return
    if settings.max_file_bytes < 1:
        report(
            f"{args.name}: {EnvVar.MAX_FILE_BYTES.value} is {settings.max_file_bytes}: every file is too large.",
            None,
        )


def _policy(
    name: str, description: str, types: tuple[str, ...], validate: Validate, level: EnforcementLevel
) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(
        name=name, description=description, validate=_only(types, validate), enforcement_level=level
    )


RESOURCE_POLICIES: Final = [
    _policy(
        "sqs-queue-encrypted",
        "SQS queues are encrypted at rest (SSE-SQS or a customer-managed KMS key).",
        QUEUE,
        _queue_encrypted,
        MANDATORY,
    ),
    _policy(
        "sns-topic-encrypted",
        "SNS topics are encrypted at rest with a customer-managed KMS key.",
        TOPIC,
        _topic_encrypted,
        ADVISORY,
    ),
    _policy(
        "queue-topic-policy-not-public",
        "Queue and topic policies never allow an unrestricted wildcard principal.",
        QUEUE + QUEUE_POLICY + TOPIC + TOPIC_POLICY,
        _not_public,
        MANDATORY,
    ),
    _policy(
        "queue-topic-policy-source-conditions",
        "Queue and topic policies admit a service only with aws:SourceArn and aws:SourceAccount conditions.",
        QUEUE + QUEUE_POLICY + TOPIC + TOPIC_POLICY,
        _source_conditions,
        MANDATORY,
    ),
    _policy(
        "iam-no-wildcards",
        'IAM policies allow no "*" action, service-wide action, "*" resource, NotAction or NotResource, and '
        "no role trusts every principal.",
        (ROLE, *IDENTITY_POLICIES),
        _iam_no_wildcards,
        MANDATORY,
    ),
    _policy(
        "log-group-retention",
        "CloudWatch log groups have a retention period.",
        LOG_GROUP,
        _log_group_retention,
        MANDATORY,
    ),
    _policy(
        "kms-key-rotation",
        "Symmetric customer-managed KMS keys rotate automatically.",
        KMS_KEY,
        _key_rotation,
        MANDATORY,
    ),
    _policy(
        "dynamodb-point-in-time-recovery",
        "DynamoDB tables have point-in-time recovery.",
        (TABLE,),
        _table_point_in_time_recovery,
        MANDATORY,
    ),
    _policy(
        "dynamodb-encryption",
        "A DynamoDB table that names a KMS key has server-side encryption enabled with it.",
        (TABLE,),
        _table_encryption,
        MANDATORY,
    ),
    _policy(
        "filepipe-handler-settings",
        "A function running filepipe's handler has FILEPIPE_* settings the handler accepts (formats, "
        "compressions, numbers).",
        FUNCTION,
        _handler_settings,
        MANDATORY,
    ),
    _policy(
        "lambda-json-logs",
        "Lambda functions log in JSON.",
        FUNCTION,
        _function_json_logs,
        MANDATORY,
    ),
]
