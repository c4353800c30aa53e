"""SNS behaviour moto lacks, added by ``filepipe.local.sns_fidelity`` (moto in-process, no network)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from filepipe.local import s3_fidelity, sns_fidelity
from filepipe.routing import Route, configuration_id, filter_policy
from tests.conftest import REGION
from tests.local.conftest import make_queues

BUCKET = "routing-bucket"


@pytest.fixture
def clients(aws: None) -> dict[str, Any]:
    s3_fidelity.apply()
    sns_fidelity.apply()
    return {service: boto3.client(service, region_name=REGION) for service in ("s3", "sns", "sqs")}


def _subscribe(sns: Any, topic: str, queue_arn: str, route: Route, dlq_arn: str) -> None:
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn,
        Attributes={
            "RawMessageDelivery": "true",
            "FilterPolicyScope": "MessageBody",
            "FilterPolicy": json.dumps(filter_policy(route)),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn}),
        },
    )


def _bodies(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def _keys(sqs: Any, url: str) -> list[str]:
    return [body["Records"][0]["s3"]["object"]["key"] for body in _bodies(sqs, url)]


def test_s3_notifies_the_topic_and_routes_reach_their_queues_with_keys_encoded_as_s3_does(clients):
    # GIVEN a bucket notifying a topic for .json and .csv under incoming/, and two routes subscribed
    s3, sns, sqs = clients["s3"], clients["sns"], clients["sqs"]
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    topic = sns.create_topic(Name="routes")["TopicArn"]
    small, large = make_queues(sqs, "small"), make_queues(sqs, "large")
    _subscribe(sns, topic, small.arn, Route("small", "incoming/", (".json",), max_bytes=10), small.dlq_arn)
    _subscribe(
        sns, topic, large.arn, Route("large", "incoming/", (".json", ".csv"), min_bytes=10), large.dlq_arn
    )
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "TopicConfigurations": [
                {
                    "Id": configuration_id("incoming/", suffix),
                    "TopicArn": topic,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {
                            "FilterRules": [
                                {"Name": "prefix", "Value": "incoming/"},
                                {"Name": "suffix", "Value": suffix},
                            ]
                        }
                    },
                }
                for suffix in (".json", ".csv")
            ]
        },
    )

    # WHEN objects of both sizes and formats arrive
    s3.put_object(Bucket=BUCKET, Key="incoming/a b.json", Body=b"{}")
    s3.put_object(Bucket=BUCKET, Key="incoming/big.json", Body=b"x" * 20)
    s3.put_object(Bucket=BUCKET, Key="incoming/big.csv", Body=b"x" * 20)
    s3.put_object(Bucket=BUCKET, Key="incoming/big.txt", Body=b"x" * 20)

    # THEN each queue holds the raw S3 events of exactly its route (the s3:TestEvent matched none)
    assert _keys(sqs, small.url) == ["incoming/a+b.json"]
    assert sorted(_keys(sqs, large.url)) == ["incoming/big.csv", "incoming/big.json"]


def test_a_failed_delivery_goes_to_the_subscriptions_dlq_and_the_other_routes_still_get_it(clients):
    # GIVEN two routes for the same file, the first one's queue deleted
    sns, sqs = clients["sns"], clients["sqs"]
    topic = sns.create_topic(Name="routes")["TopicArn"]
    broken, working = make_queues(sqs, "broken"), make_queues(sqs, "working")
    route = Route("any", "incoming/", (".json",))
    _subscribe(sns, topic, broken.arn, route, broken.dlq_arn)
    _subscribe(sns, topic, working.arn, route, working.dlq_arn)
    sqs.delete_queue(QueueUrl=broken.url)
    event = {
        "Records": [
            {
                "s3": {
                    "configurationId": configuration_id("incoming/", ".json"),
                    "object": {"key": "incoming/a.json", "size": 2},
                }
            }
        ]
    }

    # WHEN the topic publishes the event
    sns.publish(TopicArn=topic, Message=json.dumps(event))

    # THEN the broken route's DLQ has it as the subscription would have delivered it, and the other route too
    assert _bodies(sqs, broken.dlq_url) == [event]
    assert _bodies(sqs, working.url) == [event]


def test_a_body_policy_sns_accepts_is_accepted_as_sns_counts_its_combinations(clients):
    # GIVEN a route whose policy has 4 x 1 x 1 value combinations (moto alone counts 192: it multiplies by
    # each key's nesting depth)
    sns, sqs = clients["sns"], clients["sqs"]
    topic = sns.create_topic(Name="routes")["TopicArn"]
    queues = make_queues(sqs, "wide")
    route = Route("wide", "incoming/", (".json", ".jsonl", ".ndjson", ".csv"), min_bytes=1)

    # WHEN it subscribes THEN it is accepted
    _subscribe(sns, topic, queues.arn, route, queues.dlq_arn)
    # ... while operators are still validated
    with pytest.raises(ClientError, match="Unrecognized numeric range operator"):
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queues.arn,
            Attributes={
                "FilterPolicyScope": "MessageBody",
                "FilterPolicy": json.dumps(
                    {"Records": {"s3": {"object": {"size": [{"numeric": ["!", 1]}]}}}}
                ),
            },
        )
