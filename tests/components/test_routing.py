"""notification_mode=NotificationMode.SNS: one routing topic per bucket, one filtered subscription per pipeline."""

from __future__ import annotations

import json
from typing import cast

import pytest

from filepipe import (
    Encryption,
    FileFormat,
    FileProcessingPipeline,
    NotificationMode,
    PipelineArgs,
    PipelineConfigError,
    PipelineGroup,
    PipelineGroupArgs,
)
from filepipe.routing import Route, configuration_id, filter_policy, suffix_tag, topic_configurations
from tests.components.conftest import build, policy
from tests.conftest import ACCOUNT_ID

MB = 1024 * 1024
TOPIC = "aws:sns/topic:Topic"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
NOTIFICATION = "aws:s3/bucketNotification:BucketNotification"


def _routes(**overrides: PipelineArgs) -> dict[str, PipelineArgs]:
    pipelines = {
        "json": PipelineArgs(
            input_prefix="incoming/",
            output_prefix="processed/json/",
            notification_mode=NotificationMode.SNS,
            route_max_bytes=MB,
        ),
        "csv": PipelineArgs(
            input_prefix="incoming/",
            input_format=FileFormat.CSV,
            output_prefix="processed/csv/",
            notification_mode=NotificationMode.SNS,
        ),
        "large": PipelineArgs(
            input_prefix="incoming/",
            output_prefix="processed/large/",
            notification_mode=NotificationMode.SNS,
            route_min_bytes=MB,
            memory_mb=3008,
        ),
    }
    pipelines.update(overrides)
    return pipelines


def _group(pipelines: dict[str, PipelineArgs], **group_args: object):
    return lambda: PipelineGroup("data", cast(PipelineGroupArgs, {"pipelines": pipelines, **group_args}))


def test_the_bucket_notifies_one_topic_and_each_queue_subscribes_with_its_route(mocks):
    # GIVEN three routes on one bucket, two of them overlapping (every .json under incoming/)
    build(_group(_routes()))

    # THEN one topic, owned by the group, admitting only S3 for this bucket and account
    topic = mocks.one(TOPIC, "data-routes")
    assert mocks.parent_of(topic) == "data"
    topic_policy = policy(mocks.one("aws:sns/topicPolicy:TopicPolicy", "data-routes-policy"))
    allow = topic_policy["Statement"][0]
    bucket_arn = mocks.one("aws:s3/bucket:Bucket").outputs["arn"]
    assert allow["Principal"] == {"Service": "s3.amazonaws.com"} and allow["Action"] == "sns:Publish"
    assert allow["Condition"] == {
        "ArnLike": {"aws:SourceArn": bucket_arn},
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
    }
    # ... the notification points at the topic only, once per (prefix, suffix), after the topic policy
    notification = mocks.one(NOTIFICATION)
    assert not notification.inputs.get("queues") and not notification.inputs.get("eventbridge")
    assert sorted(
        (t["id"], t["filterPrefix"], t["filterSuffix"], t["topicArn"]) for t in notification.inputs["topics"]
    ) == sorted(
        (configuration_id("incoming/", suffix), "incoming/", suffix, topic.outputs["arn"])
        # the default suffixes of JSON and CSV, plain and compressed (input_compression="auto")
        for suffix in (".json", ".json.gz", ".json.zst", ".csv", ".csv.gz", ".csv.zst")
    )
    assert {"data-routes-policy", "data-json-subscription", "data-large-subscription"} <= set(
        mocks.dependencies_of(notification)
    )
    # ... and one subscription per pipeline: raw delivery, its route on the message body, redrive to its DLQ
    queues = {q.name: q.outputs["arn"] for q in mocks.of_type("aws:sqs/queue:Queue")}
    subscriptions = {s.name: s.inputs for s in mocks.of_type(SUBSCRIPTION)}
    assert set(subscriptions) == {
        "data-json-subscription",
        "data-csv-subscription",
        "data-large-subscription",
    }
    for name in ("json", "csv", "large"):
        subscription = subscriptions[f"data-{name}-subscription"]
        assert subscription["topic"] == topic.outputs["arn"]
        assert (subscription["protocol"], subscription["endpoint"]) == ("sqs", queues[f"data-{name}-queue"])
        assert subscription["rawMessageDelivery"] is True
        assert subscription["filterPolicyScope"] == "MessageBody"
        assert json.loads(subscription["redrivePolicy"]) == {
            "deadLetterTargetArn": queues[f"data-{name}-dlq"]
        }
    assert json.loads(subscriptions["data-json-subscription"]["filterPolicy"]) == {
        "Records": {
            "s3": {
                "configurationId": [{"prefix": suffix_tag(s)} for s in (".json", ".json.gz", ".json.zst")],
                "object": {"key": [{"prefix": "incoming/"}], "size": [{"numeric": ["<", MB]}]},
            }
        }
    }
    large = json.loads(subscriptions["data-large-subscription"]["filterPolicy"])["Records"]["s3"]["object"]
    assert large["size"] == [{"numeric": [">=", MB]}]
    csv = json.loads(subscriptions["data-csv-subscription"]["filterPolicy"])["Records"]["s3"]
    assert csv["configurationId"] == [{"prefix": suffix_tag(s)} for s in (".csv", ".csv.gz", ".csv.zst")]
    assert "size" not in csv["object"]


def test_queue_and_dlq_admit_only_the_routing_topic(mocks):
    build(_group(_routes()))

    topic_arn = mocks.one(TOPIC, "data-routes").outputs["arn"]
    for name in ("data-json-queue-policy", "data-json-dlq-policy"):
        statement = policy(mocks.one(QUEUE_POLICY, name))["Statement"][0]
        assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
        assert statement["Condition"] == {
            "ArnEquals": {"aws:SourceArn": topic_arn},
            "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
        }


def test_kms_encrypts_the_topic_with_a_key_s3_may_use_and_the_queues_with_keys_sns_may_use(mocks):
    build(_group({name: {**args, "encryption": Encryption.KMS} for name, args in _routes().items()}))

    topic = mocks.one(TOPIC, "data-routes")
    topic_key = mocks.one("aws:kms/key:Key", "data-routes-key")
    assert topic.inputs["kmsMasterKeyId"] == topic_key.outputs["arn"]
    services = [s["Principal"].get("Service") for s in policy(topic_key)["Statement"]]
    assert services == [None, "s3.amazonaws.com"]
    queue_key = policy(mocks.one("aws:kms/key:Key", "data-json-key"))
    assert "sns.amazonaws.com" in [s["Principal"].get("Service") for s in queue_key["Statement"]]


def test_a_pipeline_alone_creates_its_own_routing_topic(mocks):
    build(
        lambda: FileProcessingPipeline(
            "orders", PipelineArgs(input_prefix="incoming/orders/", notification_mode=NotificationMode.SNS)
        )
    )

    topic = mocks.one(TOPIC, "orders-routes")
    notification = mocks.one(NOTIFICATION).inputs
    assert {t["topicArn"] for t in notification["topics"]} == {topic.outputs["arn"]}  # one per suffix
    assert mocks.one(SUBSCRIPTION).inputs["topic"] == topic.outputs["arn"]


def test_topic_configurations_cover_the_union_of_routes_without_overlap():
    routes = [
        Route("all", "incoming/", (".json", ".csv")),
        Route("orders", "incoming/orders/", (".json",)),
        Route("other", "landing/", (".json",)),
    ]

    assert sorted((c.prefix, c.suffix) for c in topic_configurations(routes)) == [
        ("incoming/", ".csv"),
        ("incoming/", ".json"),
        ("landing/", ".json"),
    ]
    # a route's filter matches the ids of its suffixes under any notified prefix
    assert filter_policy(routes[1])["Records"]["s3"]["configurationId"] == [{"prefix": suffix_tag(".json")}]
    assert configuration_id("landing/", ".json").startswith(suffix_tag(".json"))


def test_keys_in_a_route_are_matched_as_s3_encodes_them():
    route = Route("p", "incoming/my orders+more/", (".json",))

    assert filter_policy(route)["Records"]["s3"]["object"]["key"] == [
        {"prefix": "incoming/my+orders%2Bmore/"}
    ]


@pytest.mark.parametrize(
    ("pipelines", "message"),
    [
        pytest.param(_routes(csv=PipelineArgs(input_prefix="landing/", input_format=FileFormat.CSV)), r"\['json', 'large'\] use notification_mode='sns' and \['csv'\] do not", id="mixed-modes"),
        pytest.param(_routes(large=PipelineArgs(input_prefix="incoming/", output_prefix="big/", notification_mode=NotificationMode.SNS, route_min_bytes=MB, route_max_bytes=MB)), "'large'.*route_min_bytes=1048576 is not below route_max_bytes=1048576: the route matches no file", id="empty-size-range"),
        pytest.param(_routes(large=PipelineArgs(input_prefix="incoming/", output_prefix="big/", notification_mode=NotificationMode.SNS, route_max_bytes=0)), "'large'.*matches no file", id="max-zero"),
        pytest.param(_routes(large=PipelineArgs(input_prefix="incoming/", output_prefix="big/", notification_mode=NotificationMode.SNS, route_min_bytes=600 * MB)), "'large'.*above max_file_bytes", id="bound-above-max-file"),
        pytest.param(_routes(large=PipelineArgs(input_prefix="incoming/", output_prefix="big/", notification_mode=NotificationMode.SNS, route_max_bytes=2_000_000_000)), "'large'.*SNS filter policies compare numbers up to 1000000000", id="bound-beyond-sns-numbers"),
        pytest.param(_routes(large=PipelineArgs(input_prefix="incoming/", output_prefix="big/", notification_mode=NotificationMode.SNS, input_suffixes=[f".j{i}" for i in range(151)])), "'large'.*151 value combinations \\(SNS allows 150\\)", id="too-many-combinations"),
        pytest.param(_routes(geo=PipelineArgs(input_prefix="incoming/geo/", output_prefix="geo/", notification_mode=NotificationMode.SNS, input_suffixes=[".geo.json"])), "routes 'json' \\('.json'\\) and 'geo' \\('.geo.json'\\)|routes 'geo' \\('.geo.json'\\) and 'json' \\('.json'\\)", id="nested-suffixes"),
        pytest.param(_routes(archive=PipelineArgs(input_prefix="incoming/", notification_mode=NotificationMode.SNS, output_prefix="incoming/archive/")), "recursive loop|overlaps input_prefix", id="output-under-a-route"),
        pytest.param(_routes(archive=PipelineArgs(input_prefix="incoming/", notification_mode=NotificationMode.SNS, output_prefix="processed/json/")), "'json' and 'archive' both receive", id="shared-output-prefix"),
        pytest.param({"json": PipelineArgs(input_prefix="incoming/", route_min_bytes=MB)}, "need notification_mode='sns'", id="bounds-without-sns"),
    ],
)  # fmt: skip
def test_bad_routes_are_rejected_before_anything_is_registered(mocks, pipelines, message):
    with pytest.raises(PipelineConfigError, match=message):
        build(_group(pipelines))

    assert mocks.resources == []


def test_overlapping_routes_are_fan_out_not_an_error(mocks):
    # GIVEN an archive route that matches every file the others match
    build(
        _group(
            _routes(
                archive=PipelineArgs(
                    input_prefix="incoming/", output_prefix="archive/", notification_mode=NotificationMode.SNS
                )
            )
        )
    )

    # THEN it has its own subscription, queue, DLQ and function
    assert len(mocks.of_type(SUBSCRIPTION)) == 4
    assert len(mocks.of_type("aws:lambda/function:Function")) == 4
    assert len(mocks.of_type(NOTIFICATION)) == 1
