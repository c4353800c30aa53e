"""``filepipe graph``: the stack's resource graph as the program declares it, for review.

The stack program runs under Pulumi mocks through the same capture ``filepipe local`` uses
(:func:`filepipe.local.capture.capture_stack`), which records what the engine knows about each
registration: its URN, parent, dependencies and the resources each input was computed from. The result is
the graph ``pulumi preview`` and a policy pack see, rendered as Mermaid or Graphviz DOT: components with
their children, and the data path bucket -> queue -> function -> dead-letter queue -> alarm -> topic.
The one difference: the capture does not build the handler's dependency layer, so its ``LayerVersion``
is not in the graph.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pulumi_policy import PolicyResource, PolicyResourceOptions
from pulumi_policy.policy import PolicyCustomTimeouts

from filepipe.local.capture import CaptureError, aws_address, capture_stack, load_stack_config
from filepipe.policy import wiring as w

FORMATS: Final = ("mermaid", "dot")


@dataclass(frozen=True, slots=True)
class GraphNode:
    """One registration, with what the engine records about it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str | None
    """The parent's URN (the stack's for top-level resources)."""
    dependencies: tuple[str, ...]
    property_dependencies: Mapping[str, tuple[str, ...]]
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    resource_id: str | None


@dataclass(frozen=True, slots=True)
class ResourceGraph:
    project: str
    stack: str
    region: str
    stack_urn: str
    nodes: list[GraphNode]
    """Registration order: every resource after the ones its inputs and ``depends_on`` refer to."""
    outputs: Mapping[str, Any] = field(default_factory=dict)

    def by_urn(self) -> dict[str, GraphNode]:
        return {node.urn: node for node in self.nodes}


def capture_graph(project_dir: Path, stack: str) -> ResourceGraph:
    """Run the stack program under mocks and return its resource graph as the engine would record it.

    Identifiers take their AWS shape in the stack's region (``https://sqs.<region>.amazonaws.com/...``
    queue URLs), since nothing is deployed anywhere.
    """
    project_dir = project_dir.resolve()
    _, _, config = load_stack_config(project_dir, stack, local_overrides=False)
    region = config.get("aws:region", "us-east-1")
    captured = capture_stack(project_dir, stack, aws_address(region))
    nodes = [
        GraphNode(
            urn=resource.urn,
            type=resource.type,
            name=resource.name,
            custom=resource.custom,
            parent=resource.parent,
            dependencies=resource.dependencies,
            property_dependencies=resource.property_dependencies,
            inputs=resource.inputs,
            outputs=resource.outputs,
            resource_id=resource.resource_id if resource.custom else None,
        )
        for resource in captured.resources
    ]
    return ResourceGraph(
        project=captured.project,
        stack=captured.stack,
        region=region,
        stack_urn=captured.urn,
        nodes=nodes,
        outputs=captured.outputs,
    )


def policy_resources(graph: ResourceGraph) -> list[PolicyResource]:
    """The graph as a stack policy receives it: outputs as properties (with the provider's ``id``),
    parents, dependencies and property dependencies as resource references."""
    resources: dict[str, PolicyResource] = {}
    for node in graph.nodes:
        props = dict(node.outputs)
        if node.resource_id is not None:
            props["id"] = node.resource_id
        options = PolicyResourceOptions(
            protect=False,
            ignore_changes=[],
            delete_before_replace=None,
            aliases=[],
            custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
            additional_secret_outputs=[],
            parent=node.parent,
        )
        resources[node.urn] = PolicyResource(
            node.type, props, node.urn, node.name, options, None, None, [], {}
        )
    for node in graph.nodes:
        resource = resources[node.urn]
        resource.parent = resources.get(node.parent or "")
        resource.dependencies = [resources[urn] for urn in node.dependencies if urn in resources]
        resource.property_dependencies = {
            key: [resources[urn] for urn in urns if urn in resources]
            for key, urns in node.property_dependencies.items()
        }
    return list(resources.values())


# --- the data path ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str


def data_path(graph: ResourceGraph) -> list[Edge]:
    """bucket -> (topic ->) queue -> function -> dead-letter queue -> alarm -> topic, as the resources wire it."""
    wiring = w.Wiring(policy_resources(graph))
    edges: list[Edge] = []

    def add(source: w.Node, target: w.Node, label: str) -> None:
        edge = Edge(source.urn, target.urn, label)
        if edge not in edges:
            edges.append(edge)

    for queue in wiring.of_type(w.QUEUE):
        for notification in wiring.referrers(queue, w.BUCKET_NOTIFICATION, "queues"):
            for bucket in wiring.targets(notification, "bucket", w.BUCKET):
                add(bucket, queue, "S3 notification")
        for subscription in wiring.sqs_subscriptions(queue):
            topic = wiring.subscription_topic(subscription)
            if topic is not None:
                for notification in wiring.referrers(topic, w.BUCKET_NOTIFICATION, "topics"):
                    for bucket in wiring.targets(notification, "bucket", w.BUCKET):
                        add(bucket, topic, "S3 notification")
                add(topic, queue, "filtered subscription")
                dlq = wiring.subscription_dead_letter_queue(subscription)
                if dlq is not None:
                    add(topic, dlq, "subscription redrive")
        for target in wiring.referrers(queue, w.EVENT_TARGET, "arn"):
            for rule in wiring.targets(target, "rule", w.EVENT_RULE):
                for bucket in wiring.targets(rule, "eventPattern", w.BUCKET):
                    add(bucket, rule, "EventBridge")
                add(rule, queue, "rule target")
        dlq = wiring.dead_letter_queue(queue)
        if dlq is not None:
            add(queue, dlq, "redrive")
        for alarm in wiring.queue_alarms(queue):
            add(queue, alarm, str(alarm.get("metricName", "")))
    for queue, _mapping, function in wiring.consumed_queues():
        if function is not None:
            add(queue, function, "event source mapping")
            dlq = wiring.dead_letter_queue(queue)
            if dlq is not None and wiring.refers(function, "environment", dlq):
                add(function, dlq, "park")
            for alarm in wiring.referrers(function, w.METRIC_ALARM, "dimensions"):
                add(function, alarm, str(alarm.get("metricName", "")))
    for alarm in wiring.of_type(w.METRIC_ALARM):
        for topic in wiring.alarm_topics(alarm):
            add(alarm, topic, "alarm action")
    for topic in wiring.of_type(w.TOPIC):
        for subscription in wiring.referrers(topic, w.TOPIC_SUBSCRIPTION, "topic"):
            add(topic, subscription, str(subscription.get("protocol", "")))
    return sorted(edges, key=lambda edge: (edge.source, edge.target, edge.label))


# --- rendering ----------------------------------------------------------------------------------------------


def short_type(type_token: str) -> str:
    """``aws:sqs/queue:Queue`` -> ``sqs.Queue``; ``filepipe:index:PipelineGroup`` -> ``PipelineGroup``."""
    package, module, name = [*type_token.split(":"), "", ""][:3]
    if package == "aws":
        return f"{module.split('/')[0]}.{name}"
    return name or type_token


class _Layout:
    """Node ids and the component tree both renderers walk, in URN order: registrations arrive in a
    different order on every run, and the rendering must not (a reviewer diffs it)."""

    def __init__(self, graph: ResourceGraph) -> None:
        nodes = sorted(graph.nodes, key=lambda node: node.urn)
        self.ids = {node.urn: f"r{index}" for index, node in enumerate(nodes)}
        self.children: dict[str | None, list[GraphNode]] = {}
        known = set(self.ids)
        for node in nodes:
            parent = node.parent if node.parent in known else None
            self.children.setdefault(parent, []).append(node)

    def walk(self, parent: str | None = None, depth: int = 1) -> Iterator[tuple[str, str, GraphNode]]:
        """``(indent, event, node)`` in nesting order: ``resource``, or ``open``/``close`` of a component."""
        pad = "    " * depth
        for node in self.children.get(parent, []):
            if node.custom:
                yield pad, "resource", node
            else:
                yield pad, "open", node
                yield from self.walk(node.urn, depth + 1)
                yield pad, "close", node


def _mermaid_text(value: str) -> str:
    """Names are user text: Mermaid's entity codes keep quotes and brackets from closing the label."""
    return re.sub(r'["<>|]', lambda match: f"#{ord(match.group())};", value)


def render_mermaid(graph: ResourceGraph) -> str:
    layout = _Layout(graph)
    lines = ["flowchart LR"]
    for pad, event, node in layout.walk():
        node_id = layout.ids[node.urn]
        label = f"{_mermaid_text(node.name)}<br/><i>{_mermaid_text(short_type(node.type))}</i>"
        lines.append(
            {
                "resource": f'{pad}{node_id}["{label}"]',
                "open": f'{pad}subgraph {node_id}["{label}"]',
                "close": f"{pad}end",
            }[event]
        )
    for edge in data_path(graph):
        lines.append(
            f"    {layout.ids[edge.source]} -->|{_mermaid_text(edge.label)}| {layout.ids[edge.target]}"
        )
    return "\n".join(lines) + "\n"


def _dot_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def render_dot(graph: ResourceGraph) -> str:
    layout = _Layout(graph)
    name = f"{_dot_text(graph.project)}-{_dot_text(graph.stack)}"
    lines = [f'digraph "{name}" {{', "    rankdir=LR;", "    node [shape=box];"]
    for pad, event, node in layout.walk():
        node_id = layout.ids[node.urn]
        label = f"{_dot_text(node.name)}\\n{_dot_text(short_type(node.type))}"
        lines.append(
            {
                "resource": f'{pad}{node_id} [label="{label}"];',
                "open": f'{pad}subgraph cluster_{node_id} {{\n{pad}    label="{label}";',
                "close": f"{pad}}}",
            }[event]
        )
    for edge in data_path(graph):
        lines.append(
            f'    {layout.ids[edge.source]} -> {layout.ids[edge.target]} [label="{_dot_text(edge.label)}"];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


RENDERERS: Final = {"mermaid": render_mermaid, "dot": render_dot}


# --- the command ------------------------------------------------------------------------------------------


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    graph = groups.add_parser("graph", help="print the stack's resource graph (Mermaid or Graphviz DOT)")
    graph.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to use (default: dev)")
    graph.add_argument(
        "--format", choices=FORMATS, default="mermaid", help="output format (default: mermaid)"
    )
    graph.add_argument(
        "--project-dir", type=Path, default=Path.cwd(), help="folder holding Pulumi.yaml (default: .)"
    )
    graph.set_defaults(command=_graph)


def _graph(args: argparse.Namespace) -> int:
    try:
        graph = capture_graph(args.project_dir, args.stack)
    except CaptureError as error:
        print(f"filepipe graph: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(RENDERERS[args.format](graph))
    return 0
