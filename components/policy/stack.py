"""Rules over the whole stack (``StackValidationPolicy``): how buckets, queues, functions, alarms, topics
and keys are wired together, whoever declared them.

A stack rule must not stop at the first value that is unknown during a preview (the engine would then skip
the whole rule): each check skips only what it cannot judge yet and judges everything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from filepipe.handler.keys import compressed_suffixes
from filepipe.handler.settings import EnvVar, InputCompression

from . import documents as doc
from .wiring import (
    BUCKET,
    BUCKET_ENCRYPTION,
    BUCKET_LIFECYCLE,
    BUCKET_NOTIFICATION,
    BUCKET_POLICY,
    BUCKET_PUBLIC_ACCESS_BLOCK,
    BUCKET_VERSIONING,
    EVENT_RULE,
    EVENT_TARGET,
    FUNCTION,
    IDENTITY_POLICY_ATTACHMENT,
    KMS_KEY,
    LOG_GROUP,
    MANAGED_POLICY,
    QUEUE,
    ROLE,
    ROLE_POLICY,
    TOPIC,
    TOPIC_SUBSCRIPTION,
    Node,
    Wiring,
    unknown,
)

MANDATORY: Final = EnforcementLevel.MANDATORY
ADVISORY: Final = EnforcementLevel.ADVISORY

# AWS defaults for what a resource leaves unset.
DEFAULT_VISIBILITY_TIMEOUT: Final = 30
DEFAULT_RETENTION: Final = 345_600
DEFAULT_FUNCTION_TIMEOUT: Final = 3
RECOMMENDED_VISIBILITY_FACTOR: Final = 6
RECOMMENDED_MAX_RECEIVE_COUNT: Final = 5
PUBLIC_ACCESS_FLAGS: Final = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)
SSE_ALGORITHMS: Final = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
AWS_MANAGED_KEYS: Final = {"aws:sqs/queue:Queue": "alias/aws/sqs", "aws:sns/topic:Topic": "alias/aws/sns"}

Finding = tuple[Node, str]
Check = Callable[[Wiring], Iterator[Finding]]


def _number(node: Node, key: str, default: float) -> float | None:
    """A numeric property (AWS's default when unset), or ``None`` while it is unknown."""
    if node.is_unknown(key):
        return None
    value = node.get(key, default)
    return float(value) if isinstance(value, int | float) else None


def _redrive(queue: Node) -> Mapping[str, Any] | None:
    value = queue.get("redrivePolicy")
    if isinstance(value, str) and value:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return value if isinstance(value, Mapping) else None


# --- S3 buckets ---------------------------------------------------------------------------------------------


def _public_access_block(wiring: Wiring) -> Iterator[Finding]:
    for bucket in wiring.of_type(BUCKET):
        blocks = wiring.bucket_settings(bucket, BUCKET_PUBLIC_ACCESS_BLOCK)
        if not blocks:
            yield (
                bucket,
                f"{bucket.name}: no BucketPublicAccessBlock: a later ACL or policy could make it public.",
            )
        for block in blocks:
            off = [
                flag
                for flag in PUBLIC_ACCESS_FLAGS
                if block.get(flag) is not True and not block.is_unknown(flag)
            ]
            if off:
                yield (
                    block,
                    f"{block.name}: {', '.join(off)} not true for bucket {bucket.name}: set all four.",
                )


def _denies_insecure_transport(document: Mapping[str, Any]) -> bool:
    for statement in doc.statements(document):
        condition = statement.get("Condition")
        if statement.get("Effect") != "Deny" or not isinstance(condition, Mapping):
            continue
        secure = {str(key).lower(): value for key, value in (condition.get("Bool") or {}).items()}
        if str(secure.get("aws:securetransport")).lower() != "false":
            continue
        if doc.is_wildcard_principal(statement) and {"s3:*", "*"} & set(doc.actions(statement)):
            return True
    return False


def _tls_only(wiring: Wiring) -> Iterator[Finding]:
    for bucket in wiring.of_type(BUCKET):
        policies = [policy.props.get("policy") for policy in wiring.bucket_settings(bucket, BUCKET_POLICY)]
        policies.append(bucket.props.get("policy"))
        if any(unknown(policy) for policy in policies):
            continue
        documents = []
        for policy in policies:
            try:
                documents.append(doc.parse_document(policy))
            except doc.DocumentError:
                continue
        if not any(_denies_insecure_transport(document) for document in documents):
            yield (
                bucket,
                (
                    f"{bucket.name}: no bucket policy denies requests without TLS. Add a BucketPolicy statement "
                    'Deny Principal "*" Action "s3:*" on the bucket and its objects when aws:SecureTransport is false.'
                ),
            )


def _versioning_enabled(wiring: Wiring, bucket: Node) -> bool | None:
    settings = wiring.bucket_settings(bucket, BUCKET_VERSIONING)
    statuses = [(setting.get("versioningConfiguration") or {}).get("status") for setting in settings]
    if any(unknown(status) for status in statuses):
        return None
    return "Enabled" in statuses or (bucket.get("versioning") or {}).get("enabled") is True


def _versioning(wiring: Wiring) -> Iterator[Finding]:
    for bucket in wiring.of_type(BUCKET):
        if _versioning_enabled(wiring, bucket) is False:
            yield (
                bucket,
                (
                    f"{bucket.name}: versioning is not enabled: an overwrite or delete loses the previous object. "
                    "Add a BucketVersioning with status Enabled."
                ),
            )


def _encryption(wiring: Wiring) -> Iterator[Finding]:
    for bucket in wiring.of_type(BUCKET):
        configurations = [
            setting.get("rules", []) for setting in wiring.bucket_settings(bucket, BUCKET_ENCRYPTION)
        ]
        inline = (bucket.get("serverSideEncryptionConfiguration") or {}).get("rule")
        if inline:
            configurations.append([inline])
        algorithms = {
            (rule.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm")
            for rules in configurations
            for rule in rules
            if isinstance(rule, Mapping)
        }
        if not algorithms & SSE_ALGORITHMS and not any(unknown(value) for value in algorithms):
            yield (
                bucket,
                (
                    f"{bucket.name}: no default encryption configuration. Add a "
                    "BucketServerSideEncryptionConfiguration (AES256, or aws:kms with a customer-managed key)."
                ),
            )


def _lifecycle_rules(wiring: Wiring, bucket: Node) -> list[Mapping[str, Any]] | None:
    """The bucket's enabled lifecycle rules (``None`` while unknown); inline v6-style rules included."""
    enabled: list[Mapping[str, Any]] = []
    for configuration in wiring.bucket_settings(bucket, BUCKET_LIFECYCLE):
        if configuration.is_unknown("rules"):
            return None
        enabled.extend(
            rule
            for rule in configuration.get("rules", [])
            if isinstance(rule, Mapping) and rule.get("status") == "Enabled"
        )
    enabled.extend(
        rule
        for rule in bucket.get("lifecycleRules", [])
        if isinstance(rule, Mapping) and rule.get("enabled") is True
    )
    return enabled


def _lifecycle(wiring: Wiring) -> Iterator[Finding]:
    for bucket in wiring.of_type(BUCKET):
        if _lifecycle_rules(wiring, bucket) == []:
            yield (
                bucket,
                (
                    f"{bucket.name}: no enabled lifecycle rule: inputs, outputs and incomplete multipart uploads are "
                    "kept (and billed) forever. Add a BucketLifecycleConfiguration."
                ),
            )


def _noncurrent_versions(wiring: Wiring) -> Iterator[Finding]:
    for bucket in wiring.of_type(BUCKET):
        rules = _lifecycle_rules(wiring, bucket)
        # No rule at all is s3-lifecycle's finding; this one is about versioned buckets that have rules.
        if not rules or _versioning_enabled(wiring, bucket) is not True:
            continue
        if not any(rule.get("noncurrentVersionExpiration") for rule in rules):
            yield (
                bucket,
                (
                    f"{bucket.name}: versioned, but no lifecycle rule expires noncurrent versions: every overwrite "
                    "and delete keeps the old version forever. Add a noncurrent_version_expiration."
                ),
            )


# --- Functions and keys ---------------------------------------------------------------------------------


def _function_log_groups(wiring: Wiring) -> Iterator[Finding]:
    groups = wiring.of_type(LOG_GROUP)
    for function in wiring.of_type(FUNCTION):
        logging = function.get("loggingConfig") or {}
        if wiring.targets(function, "loggingConfig", LOG_GROUP):
            continue
        name = logging.get("logGroup") or (
            f"/aws/lambda/{function.get('name')}" if function.get("name") else None
        )
        if name is None or unknown(name):
            continue
        if not any(group.get("name") == name for group in groups):
            yield (
                function,
                (
                    f"{function.name}: its log group {name} is not declared in the stack, so Lambda creates it on "
                    "first invocation with no retention. Declare an aws.cloudwatch.LogGroup with retention_in_days "
                    "and point logging_config.log_group at it."
                ),
            )


def _aws_managed_keys(wiring: Wiring) -> Iterator[Finding]:
    for node in wiring.of_type(QUEUE + TOPIC):
        key = node.get("kmsMasterKeyId")
        managed = AWS_MANAGED_KEYS[node.type]
        if not isinstance(key, str) or not (key == managed or key.endswith(f":{managed}")):
            continue
        writers = wiring.queue_writers(node) if node.type in QUEUE else wiring.topic_writers(node)
        if writers:
            yield (
                node,
                (
                    f"{node.name}: encrypted with {managed}, whose key policy cannot be changed, but "
                    f"{', '.join(sorted(writers))} writes to it: those messages are lost. Use "
                    + ("SSE-SQS or " if node.type in QUEUE else "")
                    + "a customer-managed key that admits the writers."
                ),
            )


def _key_admits(document: Mapping[str, Any], service: str) -> bool:
    for statement in doc.statements(document):
        _, services = doc.principals(statement)
        if (
            service in services
            and doc.grants(statement, "kms:GenerateDataKey")
            and doc.grants(statement, "kms:Decrypt")
        ):
            return True
    return False


def _key_writers(wiring: Wiring) -> Iterator[Finding]:
    for key in wiring.of_type(KMS_KEY):
        policy = key.props.get("policy")
        if unknown(policy) or not policy:
            continue  # No policy: the AWS default admits no service at all, which the users below report.
        try:
            document = doc.parse_document(policy)
        except doc.DocumentError:
            continue
        for node in wiring.of_type(QUEUE + TOPIC):
            if key not in wiring.encrypting_keys(node):
                continue
            writers = wiring.queue_writers(node) if node.type in QUEUE else wiring.topic_writers(node)
            missing = sorted(service for service in writers if not _key_admits(document, service))
            if missing:
                yield (
                    key,
                    (
                        f"{key.name}: encrypts {node.name}, which {', '.join(missing)} writes to, but its key policy "
                        "does not allow that service kms:GenerateDataKey and kms:Decrypt: its messages are dropped."
                    ),
                )


# --- Queues and the functions that consume them ---------------------------------------------------------


def _redrive_configured(wiring: Wiring) -> Iterator[Finding]:
    for queue, _, function in wiring.consumed_queues():
        if queue.is_unknown("redrivePolicy"):
            continue
        redrive = _redrive(queue)
        if not redrive or not redrive.get("deadLetterTargetArn"):
            consumer = function.name if function else "a function"
            yield (
                queue,
                (
                    f"{queue.name}: consumed by {consumer} but has no redrive policy: a poison message is retried "
                    "until it expires and is lost. Set redrive_policy with deadLetterTargetArn and maxReceiveCount."
                ),
            )


def _dlq_alarm(wiring: Wiring) -> Iterator[Finding]:
    for queue, _, _ in wiring.consumed_queues():
        dlq = wiring.dead_letter_queue(queue)
        if dlq is None:
            continue
        alarms = wiring.queue_alarms(dlq)
        depth = [alarm for alarm in alarms if alarm.get("metricName") == "ApproximateNumberOfMessagesVisible"]
        if any(alarm.is_unknown("alarmActions") for alarm in depth):
            continue
        acting = [
            alarm
            for alarm in depth
            if alarm.get("alarmActions") and alarm.get("actionsEnabled", True) is not False
        ]
        if acting:
            continue
        if depth:
            problem = "its depth alarm has no (enabled) alarm actions, so nobody is told"
        elif alarms:
            problem = (
                f"it is alarmed only on {', '.join(sorted({str(alarm.get('metricName')) for alarm in alarms}))}, "
                "which a redrive does not move"
            )
        else:
            problem = "nothing alarms on it"
        yield (
            dlq,
            (
                f"{dlq.name}: dead-letter queue of {queue.name}, but {problem}. Alarm on "
                "ApproximateNumberOfMessagesVisible (Maximum >= 1) with alarm_actions to a topic."
            ),
        )


def _subscription_redrive(wiring: Wiring) -> Iterator[Finding]:
    for subscription in wiring.of_type(TOPIC_SUBSCRIPTION):
        if subscription.get("protocol") != "sqs" or subscription.is_unknown("redrivePolicy"):
            continue
        dlq = (
            wiring.subscription_dead_letter_queue(subscription) if subscription.get("redrivePolicy") else None
        )
        if dlq is None:
            yield (
                subscription,
                (
                    f"{subscription.name}: an SNS -> SQS subscription without a redrive policy: a message SNS "
                    "cannot deliver (queue deleted, key or policy refusing SNS) is lost without a trace. Set "
                    'redrive_policy to {"deadLetterTargetArn": <an alarmed queue>}.'
                ),
            )
            continue
        depth = [
            alarm
            for alarm in wiring.queue_alarms(dlq)
            if alarm.get("metricName") == "ApproximateNumberOfMessagesVisible"
        ]
        if any(alarm.is_unknown("alarmActions") for alarm in depth):
            continue
        if not any(
            alarm.get("alarmActions") and alarm.get("actionsEnabled", True) is not False for alarm in depth
        ):
            yield (
                subscription,
                (
                    f"{subscription.name}: redrives undeliverable messages to {dlq.name}, but no depth alarm with "
                    "actions watches that queue, so a failed delivery goes unnoticed. Alarm on "
                    "ApproximateNumberOfMessagesVisible (Maximum >= 1) with alarm_actions to a topic."
                ),
            )


def _visibility(wiring: Wiring, *, recommended: bool) -> Iterator[Finding]:
    for queue, mapping, function in wiring.consumed_queues():
        if function is None:
            continue
        visibility = _number(queue, "visibilityTimeoutSeconds", DEFAULT_VISIBILITY_TIMEOUT)
        timeout = _number(function, "timeout", DEFAULT_FUNCTION_TIMEOUT)
        window = _number(mapping, "maximumBatchingWindowInSeconds", 0)
        if visibility is None or timeout is None or window is None:
            continue
        wanted = RECOMMENDED_VISIBILITY_FACTOR * timeout + window
        if not recommended and visibility < timeout:
            yield (
                queue,
                (
                    f"{queue.name}: visibility timeout {visibility:g}s is shorter than the timeout of "
                    f"{function.name} ({timeout:g}s): Lambda refuses the mapping. Use at least {wanted:g}s."
                ),
            )
        if recommended and timeout <= visibility < wanted:
            yield (
                queue,
                (
                    f"{queue.name}: visibility timeout {visibility:g}s is below 6 x the timeout of {function.name} "
                    f"+ batching window ({wanted:g}s): retries of throttled batches can redeliver messages still "
                    "being processed."
                ),
            )


def _max_receive_count(wiring: Wiring) -> Iterator[Finding]:
    for queue, _, _ in wiring.consumed_queues():
        redrive = _redrive(queue) or {}
        count = redrive.get("maxReceiveCount")
        if isinstance(count, int | float) and count < RECOMMENDED_MAX_RECEIVE_COUNT:
            yield (
                queue,
                (
                    f"{queue.name}: maxReceiveCount {count:g} is below {RECOMMENDED_MAX_RECEIVE_COUNT}: throttled "
                    "receives count too, so healthy messages reach the dead-letter queue."
                ),
            )


def _dlq_retention(wiring: Wiring) -> Iterator[Finding]:
    for queue, _, _ in wiring.consumed_queues():
        dlq = wiring.dead_letter_queue(queue)
        if dlq is None:
            continue
        source = _number(queue, "messageRetentionSeconds", DEFAULT_RETENTION)
        parked = _number(dlq, "messageRetentionSeconds", DEFAULT_RETENTION)
        if source is not None and parked is not None and parked <= source:
            yield (
                dlq,
                (
                    f"{dlq.name}: keeps messages {parked:g}s, not longer than its source {queue.name} ({source:g}s): "
                    "a message keeps its enqueue time when moved, so it can expire on arrival. Use 14 days "
                    "(1209600s)."
                ),
            )


def _partial_batch_responses(wiring: Wiring) -> Iterator[Finding]:
    for mapping in wiring.sqs_mappings():
        if mapping.is_unknown("functionResponseTypes"):
            continue
        if "ReportBatchItemFailures" not in (mapping.get("functionResponseTypes") or []):
            yield (
                mapping,
                (
                    f"{mapping.name}: the SQS mapping does not report batch item failures: one failed message "
                    'redelivers its whole batch. Set function_response_types=["ReportBatchItemFailures"].'
                ),
            )


# --- Buckets and their notifications ---------------------------------------------------------------------


def _key_filter_from_pattern(pattern: Any) -> Iterator[str]:
    """Key prefixes an EventBridge pattern matches: ``prefix``, ``wildcard`` up to its first ``*``, exact keys."""
    for matcher in doc.as_list(pattern):
        if isinstance(matcher, str):
            yield matcher
        elif isinstance(matcher, Mapping):
            if isinstance(matcher.get("prefix"), str):
                yield matcher["prefix"]
            elif isinstance(matcher.get("wildcard"), str):
                yield matcher["wildcard"].split("*", 1)[0]
            elif "anything-but" in matcher or "suffix" in matcher:
                yield ""


def _bucket_filters(wiring: Wiring, bucket_name: str) -> list[tuple[str, str]]:
    """``(who, key prefix)`` for every notification and EventBridge rule that fires on ``bucket_name``."""
    filters: list[tuple[str, str]] = []
    for notification in wiring.of_type(BUCKET_NOTIFICATION):
        if notification.get("bucket") != bucket_name:
            continue
        for kind in ("queues", "topics", "lambdaFunctions"):
            for configuration in notification.get(kind) or []:
                filters.append(
                    (
                        f"{notification.name} ({configuration.get('id') or kind})",
                        configuration.get("filterPrefix") or "",
                    )
                )
    for rule in wiring.of_type(EVENT_RULE):
        try:
            pattern = json.loads(rule.get("eventPattern") or "{}")
        except json.JSONDecodeError:
            continue
        detail = pattern.get("detail") or {}
        if bucket_name not in doc.as_list((detail.get("bucket") or {}).get("name")):
            continue
        keys = (detail.get("object") or {}).get("key")
        for prefix in _key_filter_from_pattern(keys) if keys is not None else [""]:
            filters.append((f"{rule.name} (EventBridge)", prefix))
    return filters


def _source_buckets(wiring: Wiring, queue: Node) -> set[str]:
    """Names of the buckets whose notifications (directly or through EventBridge) reach ``queue``."""
    notifications = wiring.referrers(queue, BUCKET_NOTIFICATION, "queues")
    # bucket -> topic -> subscription -> queue: the buckets that notify a topic the queue subscribes to
    for subscription in wiring.sqs_subscriptions(queue):
        topic = wiring.subscription_topic(subscription)
        if topic is not None:
            notifications.extend(wiring.referrers(topic, BUCKET_NOTIFICATION, "topics"))
    names = {name for notification in notifications if isinstance(name := notification.get("bucket"), str)}
    for target in wiring.referrers(queue, EVENT_TARGET, "arn"):
        for rule in wiring.targets(target, "rule", EVENT_RULE):
            try:
                detail = json.loads(rule.get("eventPattern") or "{}").get("detail") or {}
            except json.JSONDecodeError:
                continue
            names.update(str(name) for name in doc.as_list((detail.get("bucket") or {}).get("name")))
    return {name for name in names if not unknown(name)}


def _output_prefixes(wiring: Wiring) -> Iterator[Finding]:
    for queue, _, function in wiring.consumed_queues():
        if function is None:
            continue
        variables = (function.get("environment") or {}).get("variables") or {}
        output_prefix = variables.get(EnvVar.OUTPUT_PREFIX.value)
        if not isinstance(output_prefix, str) or unknown(output_prefix):
            continue
        for bucket in sorted(_source_buckets(wiring, queue)):
            for who, prefix in _bucket_filters(wiring, bucket):
                if prefix.startswith(output_prefix) or output_prefix.startswith(prefix):
                    yield (
                        function,
                        (
                            f"{function.name}: writes under {output_prefix!r} in bucket {bucket}, which {who} "
                            f"watches (prefix {prefix!r}): every output triggers processing again, a loop AWS "
                            "stops only after ~16 rounds. Move the output prefix out of every notification filter."
                        ),
                    )


def _one_notification(wiring: Wiring) -> Iterator[Finding]:
    seen: dict[str, Node] = {}
    for notification in wiring.of_type(BUCKET_NOTIFICATION):
        buckets = wiring.targets(notification, "bucket", BUCKET)
        key = buckets[0].urn if buckets else notification.get("bucket")
        if not isinstance(key, str) or unknown(key):
            continue
        if key in seen:
            yield (
                notification,
                (
                    f"{notification.name}: a second notification configuration for bucket "
                    f"{notification.get('bucket') or buckets[0].name} (the first is {seen[key].name}): S3 keeps one "
                    "per bucket, so one silently replaces the other. Merge them (a PipelineGroup does)."
                ),
            )
        else:
            seen[key] = notification


# --- Compressed inputs and whole-file processors ----------------------------------------------------------

OBJECT_WRITES: Final = ("s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl")
"""What lets a role change objects: a whole-file processor's role must have them on its outputs only."""


def _variables(function: Node) -> Mapping[str, Any]:
    environment = function.get("environment") or {}
    variables = environment.get("variables") if isinstance(environment, Mapping) else None
    return variables if isinstance(variables, Mapping) else {}


def _compressed_input_suffixes(wiring: Wiring) -> Iterator[Finding]:
    for queue, _, function in wiring.consumed_queues():
        if function is None:
            continue
        setting = _variables(function).get(EnvVar.INPUT_COMPRESSION.value)
        if setting not in (InputCompression.GZIP.value, InputCompression.ZSTD.value):
            continue
        marks = compressed_suffixes(InputCompression(setting))
        for notification in wiring.referrers(queue, BUCKET_NOTIFICATION, "queues"):
            for configuration in notification.get("queues") or []:
                arn, suffix = configuration.get("queueArn"), configuration.get("filterSuffix") or ""
                if unknown(arn) or unknown(suffix) or arn not in queue.identifiers():
                    continue
                if not str(suffix).lower().endswith(marks):
                    shown = f"every file ending {suffix!r}" if suffix else "every file"
                    yield (
                        function,
                        (
                            f"{function.name}: reads every file as {setting} ({EnvVar.INPUT_COMPRESSION.value}), "
                            f"but {notification.name} sends it {shown}: a plain one fails as corrupt. Give "
                            f"the filter the {marks[0]} suffix, or use input_compression auto."
                        ),
                    )


def _role_documents(wiring: Wiring, role: Node) -> Iterator[tuple[str, Mapping[str, Any]]] | None:
    """``(where, document)`` of every policy the role has in this stack; ``None`` while one is unknown."""
    found: list[tuple[str, Any]] = [
        (f"inline policy {inline.get('name', '')!r}", inline.get("policy"))
        for inline in role.get("inlinePolicies") or []
        if isinstance(inline, Mapping)
    ]
    found += [
        (policy.name, policy.props.get("policy")) for policy in wiring.referrers(role, ROLE_POLICY, "role")
    ]
    for attachment in wiring.referrers(role, IDENTITY_POLICY_ATTACHMENT, "role"):
        found += [
            (policy.name, policy.props.get("policy"))
            for policy in wiring.targets(attachment, "policyArn", MANAGED_POLICY)
        ]
    if any(unknown(value) for _, value in found):
        return None
    documents = []
    for where, value in found:
        try:
            documents.append((where, doc.parse_document(value)))
        except doc.DocumentError:
            continue  # reported by iam-no-wildcards
    return iter(documents)


def _outside(resource: str, output_prefix: str) -> bool:
    """Whether an object-write grant on ``resource`` reaches beyond ``output_prefix`` in its bucket."""
    if not resource.startswith("arn:") or resource.count(":") < 5:
        return True  # "*", or not an S3 object ARN: any object
    bucket_and_key = resource.split(":", 5)[5]
    bucket, _, key = bucket_and_key.partition("/")
    fixed = key.split("*", 1)[0].split("?", 1)[0]
    return "*" in bucket or "?" in bucket or not fixed.startswith(output_prefix)


def _file_processor_writes(wiring: Wiring) -> Iterator[Finding]:
    for function in wiring.of_type(FUNCTION):
        variables = _variables(function)
        processor = variables.get(EnvVar.FILE_PROCESSOR.value)
        output_prefix = variables.get(EnvVar.OUTPUT_PREFIX.value)
        if not isinstance(processor, str) or not isinstance(output_prefix, str) or unknown(output_prefix):
            continue
        for role in wiring.targets(function, "role", ROLE):
            documents = _role_documents(wiring, role)
            if documents is None:
                continue
            for where, document in documents:
                for index, statement in enumerate(doc.statements(document)):
                    granted = [action for action in OBJECT_WRITES if doc.grants(statement, action)]
                    if not granted:
                        continue
                    broad = [
                        r for r in doc.resources(statement) if not unknown(r) and _outside(r, output_prefix)
                    ]
                    if "NotResource" in statement:
                        broad.append("NotResource")
                    if broad:
                        yield (
                            function,
                            (
                                f"{function.name}: runs the whole-file processor {processor} with "
                                f"{', '.join(granted)} on {', '.join(broad)} ({where} {doc.label(statement, index)}), "
                                f"beyond its output prefix {output_prefix!r}: the processor's code can overwrite "
                                "inputs and other pipelines' outputs. Grant object writes on "
                                f"<bucket>/{output_prefix}* only."
                            ),
                        )


def _stack_policy(
    name: str, description: str, check: Check, level: EnforcementLevel
) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        for node, message in check(Wiring(args.resources)):
            report(message, node.urn)

    return StackValidationPolicy(
        name=name, description=description, validate=validate, enforcement_level=level
    )


STACK_POLICIES: Final = [
    _stack_policy(
        "s3-public-access-block",
        "S3 buckets block all public access (all four settings).",
        _public_access_block,
        MANDATORY,
    ),
    _stack_policy("s3-tls-only", "S3 bucket policies deny requests without TLS.", _tls_only, MANDATORY),
    _stack_policy("s3-versioning", "S3 buckets are versioned.", _versioning, MANDATORY),
    _stack_policy("s3-encryption", "S3 buckets have default encryption.", _encryption, MANDATORY),
    _stack_policy("s3-lifecycle", "S3 buckets have an enabled lifecycle rule.", _lifecycle, MANDATORY),
    _stack_policy(
        "s3-noncurrent-versions-expire",
        "Versioned S3 buckets expire noncurrent versions.",
        _noncurrent_versions,
        ADVISORY,
    ),
    _stack_policy(
        "lambda-log-group-retention",
        "Every Lambda function logs to a log group the stack declares (with retention).",
        _function_log_groups,
        MANDATORY,
    ),
    _stack_policy(
        "no-aws-managed-key-for-service-writers",
        "Queues and topics that S3, SNS, EventBridge or CloudWatch write to do not use the AWS-managed key.",
        _aws_managed_keys,
        MANDATORY,
    ),
    _stack_policy(
        "kms-key-admits-writers",
        "A KMS key's policy admits every service that writes to what the key encrypts.",
        _key_writers,
        MANDATORY,
    ),
    _stack_policy(
        "sqs-consumer-redrive",
        "Every queue a function consumes has a redrive policy to a dead-letter queue.",
        _redrive_configured,
        MANDATORY,
    ),
    _stack_policy(
        "dlq-depth-alarm",
        "Every dead-letter queue of a consumed queue has a depth alarm with actions.",
        _dlq_alarm,
        MANDATORY,
    ),
    _stack_policy(
        "sns-subscription-redrive",
        "Every SNS -> SQS subscription redrives undeliverable messages to a queue with a depth alarm.",
        _subscription_redrive,
        MANDATORY,
    ),
    _stack_policy(
        "sqs-visibility-timeout",
        "A consumed queue's visibility timeout is at least its function's timeout.",
        lambda wiring: _visibility(wiring, recommended=False),
        MANDATORY,
    ),
    _stack_policy(
        "sqs-visibility-timeout-recommended",
        "A consumed queue's visibility timeout is at least 6 x its function's timeout + batching window.",
        lambda wiring: _visibility(wiring, recommended=True),
        ADVISORY,
    ),
    _stack_policy(
        "sqs-max-receive-count",
        "A consumed queue redrives after at least 5 receives.",
        _max_receive_count,
        ADVISORY,
    ),
    _stack_policy(
        "dlq-retention-exceeds-source",
        "A dead-letter queue keeps messages longer than its source queue.",
        _dlq_retention,
        MANDATORY,
    ),
    _stack_policy(
        "sqs-mapping-partial-batch-responses",
        "Every SQS event source mapping reports batch item failures.",
        _partial_batch_responses,
        MANDATORY,
    ),
    _stack_policy(
        "output-prefix-outside-notification-filters",
        "No function's output prefix matches a notification filter of the bucket it reads from.",
        _output_prefixes,
        MANDATORY,
    ),
    _stack_policy(
        "compressed-input-suffixes",
        "A function that reads every file as gzip or zstd is sent only files with that compression's suffix.",
        _compressed_input_suffixes,
        MANDATORY,
    ),
    _stack_policy(
        "file-processor-writes-only-its-outputs",
        "A whole-file processor's role changes objects only under its output prefix.",
        _file_processor_writes,
        MANDATORY,
    ),
    _stack_policy(
        "one-notification-per-bucket",
        "A bucket has at most one notification configuration.",
        _one_notification,
        MANDATORY,
    ),
]
