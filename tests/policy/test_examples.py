"""The example stacks pass every mandatory rule, in an update and in a first preview."""

from __future__ import annotations

import pytest

from tests.policy.conftest import VARIANTS
from tests.policy.engine import as_first_preview


def mandatory(violations):
    return [f"{v.policy}: {v.message}" for v in violations if v.level == "mandatory"]


def test_the_dev_stack_passes_every_mandatory_rule(pack, dev_graph):
    assert mandatory(pack.evaluate(dev_graph)) == []


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
