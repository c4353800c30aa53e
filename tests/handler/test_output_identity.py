"""The output is byte for byte what the previous (json/ijson) data plane wrote for the golden files.

``tests/handler/golden/`` holds inputs and, beside each, the outputs the previous implementation wrote
for every output format (``<input>.to.<format>``). The deliberate differences are in how a float with an
exponent is spelled, never in its value: records that are read as values (a schema or a processor reads
them, or the output is CSV, or the input is not a JSON array) are written in the shortest form (``1e16``
for ``1e+16``, ``1e-7`` for ``1e-07``); the items of a JSON array that go to a JSON output untouched are
copied as the input spells them (``1E-7``), with their whitespace removed. Both ways a record reaches the
encoder are checked: a batch at a time (no schema, no processor) and one record at a time (the path a
schema or a processor takes).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from filepipe.handler.readers import CHUNK_BYTES, SourceStream, open_reader
from filepipe.handler.settings import FileFormat
from filepipe.handler.writers import make_encoder

GOLDEN = Path(__file__).parent / "golden"
PROCESSED_AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
INPUTS = {
    "records.json": FileFormat.JSON,
    "document.json": FileFormat.JSON,
    "records.ndjson": FileFormat.NDJSON,
    "table.csv": FileFormat.CSV,
}
SPELLING = ((b"1e+16", b"1e16"), (b"1e-07", b"1e-7"))
"""The documented float spellings that changed, for records read as values."""
AS_WRITTEN = ((b"1e-07", b"1E-7"),)
"""The spellings of ``records.json`` itself, for the items of an array copied as their text."""


def copied_as_text(name: str, output_format: FileFormat, batched: bool) -> bool:
    return (
        batched
        and INPUTS[name] is FileFormat.JSON
        and name != "document.json"
        and output_format is not FileFormat.CSV
    )


def expected_output(name: str, output_format: FileFormat, batched: bool = False) -> bytes:
    data = (GOLDEN / f"{name}.to.{output_format.value}").read_bytes()
    for old, new in AS_WRITTEN if copied_as_text(name, output_format, batched) else SPELLING:
        data = data.replace(old, new)
    return data


def write(
    data: bytes, input_format: FileFormat, output_format: FileFormat, batched: bool, source: str
) -> bytes:
    encoder = make_encoder(output_format, source, PROCESSED_AT)
    reader = open_reader(
        SourceStream(io.BytesIO(data), 10**9),
        input_format,
        untouched_json=batched and output_format is not FileFormat.CSV,
    )
    out = bytearray(encoder.begin())
    count = 0
    for batch in reader.batches():
        if batched:
            out += encoder.encode_parsed(batch, count)
        else:
            for index, record in enumerate(batch, count):
                out += encoder.encode(record, index)
        count += len(batch)
    out += encoder.end(count)
    return bytes(out)


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "per-record"])
@pytest.mark.parametrize("output_format", list(FileFormat), ids=lambda f: f"to-{f.value}")
@pytest.mark.parametrize("name", list(INPUTS))
def test_output_is_the_previous_implementations(name: str, output_format: FileFormat, batched: bool) -> None:
    data = (GOLDEN / name).read_bytes()

    output = write(data, INPUTS[name], output_format, batched, f"s3://bucket/in/{name}")

    assert output == expected_output(name, output_format, batched)


def test_the_golden_inputs_exercise_what_must_survive() -> None:
    # Non-ASCII text, escapes, integers beyond 64 bits (NDJSON), both float spellings, a BOM, CRLF.
    ndjson = (GOLDEN / "records.ndjson").read_bytes()
    assert ndjson.startswith(b"\xef\xbb\xbf") and b"\r\n" in ndjson
    assert b"12345678901234567890123" in (GOLDEN / "records.ndjson.to.ndjson").read_bytes()
    outputs = b"".join(path.read_bytes() for path in GOLDEN.glob("*.to.*"))
    assert all(old in outputs for old, _ in SPELLING)
    assert all(new in (GOLDEN / "records.json").read_bytes() for _, new in AS_WRITTEN)
    assert "東京".encode() in outputs and b"\\u0001" in outputs


def nested_records(count: int) -> list[Any]:
    """Records whose inner objects end in ``},`` too: the reader's first guesses at an item end fail."""
    return [{"a": {"b": {"c": n}, "d": [{"e": n}, {"f": "},{"}]}, "n": n} for n in range(count)]


@pytest.mark.parametrize(
    "records",
    [
        pytest.param(nested_records(40_000), id="nested-objects"),
        pytest.param(list(range(300_000)), id="numbers"),
        pytest.param([[n, [n]] for n in range(100_000)], id="nested-arrays"),
        pytest.param(["é" * 3 + str(n) for n in range(200_000)], id="multibyte-strings"),
        pytest.param([{"big": "x" * (3 * CHUNK_BYTES)}, {"n": 1}], id="an-item-larger-than-a-chunk"),
    ],
)
def test_json_arrays_over_many_chunks_read_back_exactly(records: list[Any]) -> None:
    # GIVEN an array that spans several chunks, pretty-printed so whitespace surrounds the commas
    data = json.dumps(records, ensure_ascii=False, indent=1).encode()
    assert len(data) > 2 * CHUNK_BYTES

    # WHEN read as values, and as the text a JSON output copies
    read = list(open_reader(SourceStream(io.BytesIO(data), 10**9), FileFormat.JSON))
    texts = list(open_reader(SourceStream(io.BytesIO(data), 10**9), FileFormat.JSON, untouched_json=True))

    # THEN every item comes back, in order; as text, compact (what encoding the value writes; items the
    # bulk reading cannot cut come as values, which encode the same)
    assert read == records
    assert [msgspec.json.encode(text) for text in texts] == [msgspec.json.encode(r) for r in records]
