"""The stack program itself, on the local twin: the `local_stack` fixture runs Pulumi.dev.yaml's stack."""

import json

ORDERS = "orders"


def test_an_order_file_is_normalised_and_written(local_stack):
    key = local_stack.send(ORDERS, "a.ndjson", b'{"id": "a", "amount": "10.5", "currency": "eur"}\n')

    final = local_stack.wait_until_final(ORDERS, key)

    assert final.status == "SUCCEEDED"
    assert final.output == [{"id": "a", "amount": 10.5, "currency": "EUR"}]
    assert local_stack.output(ORDERS, key) == final.output
    assert local_stack.parked(ORDERS) == []


def test_an_invalid_order_is_parked_with_its_reason_and_raises_the_alarm(local_stack):
    key = local_stack.send(ORDERS, "bad.ndjson", b'{"id": "b", "amount": 1}\n')

    final = local_stack.wait_until_final(ORDERS, key)

    assert final.status == "FAILED"
    assert final.error_type == "SchemaValidationError"
    (parked,) = local_stack.parked(ORDERS)
    assert parked.keys == [key]
    assert parked.error_type == "SchemaValidationError"
    assert "currency" in parked.reason
    alert = local_stack.wait_for_alert("orders-dlq-depth")
    assert alert.state == "ALARM"
    logged = json.loads(local_stack.wait_for_log(ORDERS, "file failed permanently"))
    assert logged["key"] == key
    assert logged["error_type"] == "SchemaValidationError"
