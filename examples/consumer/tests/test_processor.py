"""The processor, unit-tested without an endpoint: the handler's loader, error classes and encoders."""

import json
from pathlib import Path

import pytest

from filepipe.testing import ProcessorError, RetryLaterError, SchemaValidationError, processor_case

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def orders():
    # As __main__.py declares the pipeline.
    return processor_case(
        "transforms:normalise",
        schema=PROJECT / "schemas" / "order.schema.json",
        input_format="ndjson",
        output_format="json",
        code_dir=PROJECT / "src",
    )


def test_an_amount_becomes_a_number_and_the_currency_upper_case(orders):
    assert orders.record({"id": "a", "amount": "10.50", "currency": "eur"}) == {
        "id": "a",
        "amount": 10.5,
        "currency": "EUR",
    }


def test_a_test_order_is_dropped(orders):
    assert orders.record({"id": "t", "amount": 1, "currency": "EUR", "status": "test"}) is None


def test_an_amount_that_is_not_a_number_fails_the_file(orders):
    with pytest.raises(ProcessorError, match="record 0: ValueError: amount 'ten' is not a number"):
        orders.record({"id": "b", "amount": "ten", "currency": "EUR"})


def test_an_unavailable_downstream_asks_for_a_retry(orders, monkeypatch):
    import transforms

    monkeypatch.setattr(transforms, "RATES_AVAILABLE", False)
    with pytest.raises(RetryLaterError, match="exchange rates"):
        orders.record({"id": "a", "amount": 1, "currency": "EUR"})


def test_a_file_is_read_validated_processed_and_written_as_the_handler_writes_it(orders):
    result = orders.file(
        b'{"id": "a", "amount": "1.25", "currency": "eur"}\n'
        b'{"id": "t", "amount": 1, "currency": "EUR", "status": "test"}\n'
    )
    assert result.records == [{"id": "a", "amount": 1.25, "currency": "EUR"}]
    envelope = json.loads(result.output)
    assert envelope["record_count"] == 1
    assert envelope["data"] == result.records


def test_an_order_without_a_currency_rejects_the_whole_file(orders):
    with pytest.raises(
        SchemaValidationError, match=r"record 1: \$: \$ must contain \['currency'\] properties"
    ):
        orders.file(b'{"id": "a", "amount": 1, "currency": "EUR"}\n{"id": "b", "amount": 2}\n')
