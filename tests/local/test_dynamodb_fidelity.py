"""The DynamoDB behaviour ``filepipe.local.dynamodb_fidelity`` corrects in moto, checked on moto
in-process (no network): UpdateItem is all or nothing, and the item size is DynamoDB's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from filepipe.local import dynamodb_fidelity
from tests.conftest import REGION

TABLE = "state"
KiB = 1024


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    dynamodb_fidelity.apply()
    with mock_aws():
        client: Any = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def _set(client: Any, pk: str, values: dict[str, Any]) -> None:
    names = {f"#{name}": name for name in values}
    client.update_item(
        TableName=TABLE,
        Key={"pk": {"S": pk}},
        UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in values),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":{name}": value for name, value in values.items()},
    )


def _item(client: Any, pk: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = client.get_item(
        TableName=TABLE, Key={"pk": {"S": pk}}, ConsistentRead=True
    ).get("Item")
    return found


def test_replacing_a_large_binary_attribute_with_one_as_large_is_accepted(dynamodb: Any) -> None:
    # GIVEN an item holding a 250 KB binary attribute (DynamoDB: 250 KB of a 400 KB item)
    _set(dynamodb, "a", {"carry": {"B": b"x" * 250 * KiB}})

    # WHEN it is replaced by another 250 KB value
    _set(dynamodb, "a", {"carry": {"B": b"y" * 250 * KiB}, "doc": {"S": "second"}})

    # THEN the item holds the new value: its size after the update is what counts, bytes as bytes
    item = _item(dynamodb, "a")
    assert item is not None
    assert item["carry"]["B"] == b"y" * 250 * KiB
    assert item["doc"] == {"S": "second"}


def test_an_update_refused_for_size_changes_nothing(dynamodb: Any) -> None:
    # GIVEN an item with a document and a 250 KB carry
    _set(dynamodb, "a", {"doc": {"S": "first"}, "carry": {"B": b"x" * 250 * KiB}})

    # WHEN one update sets a new document and an attribute that takes the item over 400 KB
    with pytest.raises(ClientError) as refused:
        _set(dynamodb, "a", {"doc": {"S": "second"}, "extra": {"B": b"z" * 200 * KiB}})

    # THEN it is refused as DynamoDB refuses it, and none of its actions took effect
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "maximum allowed size" in refused.value.response["Error"]["Message"]
    item = _item(dynamodb, "a")
    assert item is not None
    assert item["doc"] == {"S": "first"}
    assert item["carry"]["B"] == b"x" * 250 * KiB
    assert "extra" not in item


def test_an_update_refused_for_size_creates_no_item(dynamodb: Any) -> None:
    # WHEN an update of a missing item would make it larger than 400 KB
    with pytest.raises(ClientError):
        _set(dynamodb, "new", {"doc": {"S": "first"}, "carry": {"B": b"z" * 401 * KiB}})

    # THEN no item exists: moto's half-made item is removed with the refusal
    assert _item(dynamodb, "new") is None


def test_an_item_at_the_limit_is_accepted_and_one_byte_more_is_not(dynamodb: Any) -> None:
    # The limit counts attribute names and values: pk ("pk" + "a") and "carry" (5 bytes) + the value.
    overhead = len("pk") + len("a") + len("carry")
    _set(dynamodb, "a", {"carry": {"B": b"x" * (dynamodb_fidelity.MAX_ITEM_BYTES - overhead)}})
    with pytest.raises(ClientError):
        _set(dynamodb, "a", {"carry": {"B": b"x" * (dynamodb_fidelity.MAX_ITEM_BYTES - overhead + 1)}})
    item = _item(dynamodb, "a")
    assert item is not None
    assert len(item["carry"]["B"]) == dynamodb_fidelity.MAX_ITEM_BYTES - overhead


def test_a_failed_condition_still_changes_nothing(dynamodb: Any) -> None:
    _set(dynamodb, "a", {"doc": {"S": "first"}})
    with pytest.raises(ClientError) as refused:
        dynamodb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "a"}},
            UpdateExpression="SET #doc = :doc",
            ConditionExpression="attribute_not_exists(#doc)",
            ExpressionAttributeNames={"#doc": "doc"},
            ExpressionAttributeValues={":doc": {"S": "second"}},
        )
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert _item(dynamodb, "a") == {"pk": {"S": "a"}, "doc": {"S": "first"}}
