"""SNS behaviour that moto (5.2) lacks, added so that a routing topic behaves locally as on AWS.

What moto does as SNS does (and is left alone): S3 -> SNS notifications (keys encoded by
:mod:`filepipe.local.s3_fidelity`, as for queues), SNS -> SQS delivery, raw message delivery, filter
policies on the message body with nested keys and ``prefix``, ``suffix`` and ``numeric`` matching.

What it lacks:

- a subscription's ``RedrivePolicy`` is stored but never used: a delivery that fails (the queue is gone)
  is dropped silently, and the exception stops the topic from delivering to its remaining subscriptions
  (one broken consumer would starve the others). Here a failed SQS delivery goes to the subscription's
  dead-letter queue, as the subscription would have delivered it, and the other subscriptions still get
  the message;
- moto multiplies each array's number of values by its nesting depth when it checks a filter policy's
  complexity, so it refuses body policies SNS accepts (SNS multiplies the numbers of values only). Here a
  body policy is checked with its nested keys flattened, so every operator is still validated by moto
  and the count is SNS's.

:func:`apply` patches moto in place for the whole process and is idempotent; the local endpoint calls it
when it starts, tests that run moto in-process call it before their first request.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_apply_lock = threading.Lock()
_applied: list[bool] = []


def apply() -> None:
    """Patch moto's SNS (subscription redrive, filter-policy complexity) to behave as SNS does."""
    with _apply_lock:
        if _applied:
            return
        _patch_redrive()
        _patch_filter_policy_complexity()
        _applied.append(True)


def _dead_letter_arn(subscription: Any) -> str | None:
    raw = subscription.attributes.get("RedrivePolicy")
    if not raw:
        return None
    try:
        target = json.loads(raw).get("deadLetterTargetArn")
    except (ValueError, AttributeError):
        return None
    return str(target) if target else None


def _patch_redrive() -> None:
    from moto.sns.models import Subscription
    from moto.sqs.models import sqs_backends

    original: Callable[..., None] = Subscription.publish

    def publish(self: Any, message: str, message_id: str, *args: Any, **kwargs: Any) -> None:
        try:
            original(self, message, message_id, *args, **kwargs)
        except Exception as error:  # a failed delivery to one endpoint never affects the others
            target = _dead_letter_arn(self) if self.protocol == "sqs" else None
            if target is None:
                log.warning("SNS delivery to %s failed and was dropped: %s", self.endpoint, error)
                return
            _, _, _, region, account, queue = target.split(":", 5)
            try:
                sqs_backends[account][region].send_message(queue, message)
            except Exception as dlq_error:  # as on AWS: a missing dead-letter queue loses the message
                log.warning("SNS could not redrive to %s: %s", target, dlq_error)

    setattr(Subscription, "publish", publish)  # noqa: B010 - moto's method, replaced on purpose


def _flattened(policy: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested keys as one level of dotted keys (``$or`` branches kept as they are)."""
    flat: dict[str, Any] = {}
    for key, value in policy.items():
        if isinstance(value, dict) and key != "$or":
            flat.update(_flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _patch_filter_policy_complexity() -> None:
    from moto.sns.models import SNSBackend

    original: Callable[..., None] = SNSBackend._validate_filter_policy

    def validate(self: Any, value: Any, scope: str | None) -> None:
        if scope == "MessageBody" and isinstance(value, dict):
            value = _flattened(value)
        original(self, value, scope)

    setattr(SNSBackend, "_validate_filter_policy", validate)  # noqa: B010 - replaced on purpose
