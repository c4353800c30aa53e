"""The example stacks pass every mandatory rule, in an update and in a first preview."""

from __future__ import annotations

import pytest

from tests.policy.conftest import VARIANTS
from tests.policy.engine import as_first_preview, without


def mandatory(violations):
    return [f"{v.policy}: {v.message}" for v in violations if v.level == "mandatory"]


def test_the_dev_stack_passes_every_mandatory_rule(pack, dev_graph):
    assert mandatory(pack.evaluate(dev_graph)) == []


def test_the_routing_stack_passes_every_mandatory_rule(pack, routing_graph):
    assert mandatory(pack.evaluate(routing_graph)) == []
    assert mandatory(pack.evaluate(as_first_preview(routing_graph))) == []


def test_the_formats_stack_passes_every_mandatory_rule(pack, formats_graph):
    assert mandatory(pack.evaluate(formats_graph)) == []
    assert mandatory(pack.evaluate(as_first_preview(formats_graph))) == []


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_component_built_directly_passes_every_mandatory_rule(pack, variant_graphs, variant):
    assert mandatory(pack.evaluate(variant_graphs[variant])) == []


def test_the_dev_stack_is_judged_on_what_it_declares(pack, dev_graph):
    # GIVEN the dev stack's own resources WHEN the pack runs THEN only the advisory rule the default
    # settings knowingly break fires, on each alert topic: they are encrypted only with encryption="kms".
    violations = pack.evaluate(dev_graph)
    topics = {node.urn for node in dev_graph.nodes if node.type == "aws:sns/topic:Topic"}

    assert {(v.policy, v.level) for v in violations} == {("sns-topic-encrypted", "advisory")}
    assert {v.urn for v in violations} == topics and len(topics) == 2


@pytest.mark.parametrize("variant", ["dev", *VARIANTS])
def test_a_first_preview_raises_no_false_violation(pack, dev_graph, variant_graphs, variant):
    # GIVEN a first preview, where every computed value is still unknown
    graph = as_first_preview(dev_graph if variant == "dev" else variant_graphs[variant])

    # WHEN the pack runs THEN nothing is reported as broken that is only not known yet
    assert mandatory(pack.evaluate(graph)) == []


def test_a_routing_stack_whose_redrive_queue_is_unwatched_fails_with_a_clear_message(pack, routing_graph):
    # GIVEN the routing stack without the depth alarm of the queue a subscription redrives to
    subscription = next(
        n
        for n in routing_graph.nodes
        if n.type == "aws:sns/topicSubscription:TopicSubscription" and n.inputs["protocol"] == "sqs"
    )
    dlq_urn = subscription.property_dependencies["redrivePolicy"][0]
    alarm = next(
        n
        for n in routing_graph.nodes
        if n.type == "aws:cloudwatch/metricAlarm:MetricAlarm"
        and dlq_urn in n.property_dependencies.get("dimensions", ())
        and n.inputs["metricName"] == "ApproximateNumberOfMessagesVisible"
    )

    # WHEN the pack runs THEN the subscription is reported: a failed delivery would go unnoticed
    messages = [
        v.message
        for v in pack.evaluate(without(routing_graph, alarm.name))
        if v.policy == "sns-subscription-redrive"
    ]
    assert len(messages) == 1 and "no depth alarm with actions watches that queue" in messages[0]
