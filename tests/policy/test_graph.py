"""`filepipe graph`: components with their children, and the data path, as the program declares them."""

from __future__ import annotations

import re

from filepipe.cli.graph import data_path, render_dot, render_mermaid
from filepipe.cli.main import main
from tests.policy.engine import REPO

PIPELINE = "filepipe:index:FileProcessingPipeline"


def typed_edges(graph):
    types = {node.urn: node.type.rsplit(":", 1)[-1] for node in graph.nodes}
    return {(types[edge.source], edge.label, types[edge.target]) for edge in data_path(graph)}


def test_the_data_path_runs_from_bucket_to_topic(dev_graph):
    edges = typed_edges(dev_graph)

    assert {
        ("Bucket", "S3 notification", "Queue"),
        ("Queue", "event source mapping", "Function"),
        ("Queue", "redrive", "Queue"),
        ("Function", "park", "Queue"),
        ("Queue", "ApproximateNumberOfMessagesVisible", "MetricAlarm"),
        ("MetricAlarm", "alarm action", "Topic"),
        ("Topic", "email", "TopicSubscription"),
    } <= edges


def test_each_pipeline_has_its_own_path(dev_graph):
    by_urn = {node.urn: node for node in dev_graph.nodes}
    pipelines = [node.urn for node in dev_graph.nodes if node.type == PIPELINE]
    mappings = [e for e in data_path(dev_graph) if e.label == "event source mapping"]

    # Each queue -> function edge stays inside one pipeline component.
    assert len(pipelines) == len(mappings) == 2
    assert (
        {by_urn[e.source].parent for e in mappings}
        == {by_urn[e.target].parent for e in mappings}
        == set(pipelines)
    )


def test_eventbridge_pipelines_go_through_their_rule(variant_graphs):
    edges = typed_edges(variant_graphs["eventbridge"])

    assert ("Bucket", "EventBridge", "EventRule") in edges
    assert ("EventRule", "rule target", "Queue") in edges
    assert ("Bucket", "S3 notification", "Queue") not in edges


def test_routed_pipelines_go_through_the_buckets_topic(routing_graph):
    edges = typed_edges(routing_graph)
    topics = [e for e in data_path(routing_graph) if e.label == "filtered subscription"]

    assert ("Bucket", "S3 notification", "Topic") in edges
    assert ("Topic", "filtered subscription", "Queue") in edges
    assert ("Topic", "subscription redrive", "Queue") in edges
    assert ("Bucket", "S3 notification", "Queue") not in edges
    # one topic for the bucket, one filtered subscription per pipeline
    assert len({e.source for e in topics}) == 1 and len(topics) == 5


def test_mermaid_nests_every_resource_in_its_component(dev_graph):
    text = render_mermaid(dev_graph)
    parents: list[str] = []
    seen: dict[str, str | None] = {}
    for line in text.splitlines()[1:]:
        if match := re.match(r"\s*subgraph (r\d+)\[", line):
            seen[match.group(1)] = parents[-1] if parents else None
            parents.append(match.group(1))
        elif line.strip() == "end":
            parents.pop()
        elif match := re.match(r"\s*(r\d+)\[", line):
            seen[match.group(1)] = parents[-1] if parents else None

    assert text.startswith("flowchart LR\n") and not parents
    assert len(seen) == len(dev_graph.nodes)  # every resource, once
    components = [node for node in dev_graph.nodes if not node.custom]
    assert sum(line.strip().startswith("subgraph") for line in text.splitlines()) == len(components)


def test_dot_is_one_cluster_per_component(dev_graph):
    text = render_dot(dev_graph)

    assert text.startswith('digraph "filepipe-dev" {') and text.rstrip().endswith("}")
    assert text.count("{") == text.count("}")
    assert text.count("subgraph cluster_") == sum(not node.custom for node in dev_graph.nodes)
    assert text.count(" -> ") == len(data_path(dev_graph))


def test_the_command_prints_the_same_graph_every_run(capsys):
    outputs = []
    for _ in range(2):
        assert main(["graph", "--stack", "dev", "--format", "dot", "--project-dir", str(REPO)]) == 0
        outputs.append(capsys.readouterr().out)

    assert outputs[0] == outputs[1] and outputs[0].startswith("digraph")


def test_an_unknown_stack_is_one_line_on_stderr(capsys):
    assert main(["graph", "--stack", "nope", "--project-dir", str(REPO)]) == 1

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no stack 'nope'" in captured.err and captured.err.count("\n") == 1
