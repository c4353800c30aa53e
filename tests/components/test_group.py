"""Several pipelines on one bucket: one notification resource, validated together."""

from typing import cast

import pytest

from filepipe import (
    FileFormat,
    NotificationMode,
    PipelineArgs,
    PipelineConfigError,
    PipelineGroup,
    PipelineGroupArgs,
)
from tests.components.conftest import build


def _group(pipelines, **group_args):
    return lambda: PipelineGroup("data", cast(PipelineGroupArgs, {"pipelines": pipelines, **group_args}))


def test_n_pipelines_share_exactly_one_notification_with_every_filter(mocks):
    build(
        _group(
            {
                "transactions": PipelineArgs(input_prefix="incoming/transactions/"),
                "invoices": PipelineArgs(input_prefix="incoming/invoices/", input_format=FileFormat.CSV),
                "events": PipelineArgs(input_prefix="incoming/events/", input_suffixes=[".ndjson", ".jsonl"]),
            }
        )
    )

    notification = mocks.one("aws:s3/bucketNotification:BucketNotification")
    queues = {q["id"]: q for q in notification.inputs["queues"]}
    arn = {r.name: r.outputs["arn"] for r in mocks.of_type("aws:sqs/queue:Queue")}
    assert {(q["filterPrefix"], q["filterSuffix"], q["queueArn"]) for q in queues.values()} == {
        # the default suffixes: each format's plain and compressed forms (input_compression="auto")
        *(
            ("incoming/transactions/", s, arn["data-transactions-queue"])
            for s in (".json", ".json.gz", ".json.zst")
        ),
        *(("incoming/invoices/", s, arn["data-invoices-queue"]) for s in (".csv", ".csv.gz", ".csv.zst")),
        ("incoming/events/", ".ndjson", arn["data-events-queue"]),
        ("incoming/events/", ".jsonl", arn["data-events-queue"]),
    }
    assert set(mocks.dependencies_of(notification)) >= {
        "data-transactions-queue-policy",
        "data-invoices-queue-policy",
        "data-events-queue-policy",
    }
    assert len(mocks.of_type("aws:s3/bucket:Bucket")) == 1
    assert mocks.parent_of(notification) == "data"


def test_mixed_modes_share_the_one_notification(mocks):
    build(
        _group(
            {
                "orders": PipelineArgs(input_prefix="incoming/orders/"),
                # Its own output prefix: by default it would write exactly where orders writes.
                "audit": PipelineArgs(
                    input_prefix="incoming/",
                    output_prefix="audit/",
                    notification_mode=NotificationMode.EVENTBRIDGE,
                ),
            }
        )
    )

    notification = mocks.one("aws:s3/bucketNotification:BucketNotification").inputs
    assert notification["eventbridge"] is True
    assert {q["filterPrefix"] for q in notification["queues"]} == {"incoming/orders/"}  # one per suffix
    assert len(mocks.of_type("aws:cloudwatch/eventRule:EventRule")) == 1


def test_overlapping_pipelines_are_rejected_before_anything_is_registered(mocks):
    with pytest.raises(PipelineConfigError, match="'all' .*'orders' .*overlapping"):
        build(
            _group(
                {
                    "all": PipelineArgs(input_prefix="incoming/"),
                    "orders": PipelineArgs(input_prefix="incoming/orders/"),
                }
            )
        )

    assert mocks.resources == []


def test_a_pipeline_consuming_anothers_output_is_rejected(mocks):
    with pytest.raises(PipelineConfigError, match="recursive loop"):
        build(
            _group(
                {
                    "orders": PipelineArgs(
                        input_prefix="incoming/orders/", output_prefix="processed/orders/"
                    ),
                    "reports": PipelineArgs(input_prefix="processed/", input_suffixes=[".csv"]),
                }
            )
        )


def test_pipelines_in_a_group_may_not_bring_their_own_bucket(mocks):
    with pytest.raises(PipelineConfigError, match="leave bucket_name and bucket unset"):
        build(_group({"orders": PipelineArgs(input_prefix="incoming/orders/", bucket_name="elsewhere")}))


def test_group_on_an_existing_bucket_creates_no_bucket(mocks):
    build(
        _group(
            {"orders": PipelineArgs(input_prefix="incoming/orders/")},
            bucket_name="landing-zone",
            take_over_bucket_notification=True,
        )
    )

    assert mocks.of_type("aws:s3/bucket:Bucket") == []
    assert mocks.one("aws:s3/bucketNotification:BucketNotification").inputs["bucket"] == "landing-zone"
    assert "pipelines" in mocks.component_outputs["data"]
