"""Pure pieces: output keys, body parsing, streaming readers, backoff."""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from filepipe.handler.errors import (
    EmptyFileError,
    FileTooLargeError,
    InvalidContentError,
    InvalidEncodingError,
    UnknownBodyError,
)
from filepipe.handler.events import parse_body
from filepipe.handler.keys import output_key, rejects_key
from filepipe.handler.queues import backoff_seconds, parse_queue_arn
from filepipe.handler.readers import CHUNK_BYTES, ReaderState, SourceStream, open_reader
from filepipe.handler.settings import FileFormat

from .events import load_event

J, N, C = FileFormat.JSON, FileFormat.NDJSON, FileFormat.CSV


@pytest.mark.parametrize(
    ("key", "formats", "expected"),
    [
        pytest.param("in/a/b.json", (J, J), "out/a/b.json", id="same-format"),
        pytest.param("in/a/b.json", (J, N), "out/a/b.ndjson", id="json-to-ndjson"),
        pytest.param("in/a/b.JSONL", (N, C), "out/a/b.csv", id="jsonl-to-csv"),
        pytest.param("in/a/b.txt", (J, C), "out/a/b.txt.csv", id="unknown-extension-kept"),
        pytest.param("in/a b+c@é.csv", (C, J), "out/a b+c@é.json", id="odd-characters"),
    ],
)
def test_output_key(key: str, formats: tuple[FileFormat, FileFormat], expected: str) -> None:
    assert output_key(key, "in/", "out/", *formats) == expected
    assert rejects_key(expected) == expected + ".rejects.ndjson"


def test_output_key_outside_the_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="outside the input prefix"):
        output_key("other/a.json", "in/", "out/", J, J)


def test_parse_body_decodes_both_encodings_and_reads_versions() -> None:
    s3 = parse_body(json.dumps(load_event("s3_key_special_s3_encoding")))
    moto = parse_body(json.dumps(load_event("s3_key_special_moto_encoding")))
    assert s3.objects[0].key == moto.objects[0].key == "in/reports/q1 summary + draft@v2 100% été 日本.json"
    [ref] = parse_body(json.dumps(load_event("s3_object_created"))).objects
    assert (ref.version_id, ref.version_token) == (
        "096fKKXTRTtl3on89fVO.nfljtsv6qko",
        "v#096fKKXTRTtl3on89fVO.nfljtsv6qko",
    )
    assert parse_body(json.dumps(load_event("s3_test_event"))).test_event
    [eb] = parse_body(json.dumps(load_event("eventbridge_object_created"))).objects
    assert (eb.key, eb.version_id, eb.size) == (
        "in/orders/from-eventbridge.json",
        "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        10,
    )


def test_sns_wrapped_notification_is_unwrapped() -> None:
    body = json.dumps({"Type": "Notification", "Message": json.dumps(load_event("s3_object_created"))})
    assert [ref.key for ref in parse_body(body).objects] == ["in/orders/2024-05-01.json"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("", id="empty"),
        pytest.param("null", id="null"),
        pytest.param('{"Records": []}', id="no-records"),
        pytest.param('{"Records": [{"eventSource": "aws:s3", "s3": {}}]}', id="s3-without-object"),
        pytest.param(
            '{"source": "aws.s3", "detail-type": "Object Created"}', id="eventbridge-without-detail"
        ),
    ],
)
def test_unknown_bodies_are_permanent(body: str) -> None:
    with pytest.raises(UnknownBodyError):
        parse_body(body)


def records(data: bytes, file_format: FileFormat, max_bytes: int = 10**9) -> list[Any]:
    return list(open_reader(SourceStream(io.BytesIO(data), max_bytes), file_format))


@pytest.mark.parametrize(
    ("data", "file_format", "expected"),
    [
        pytest.param(b'\xef\xbb\xbf[{"a": 1.5}, 2]', J, [{"a": 1.5}, 2], id="json-array-with-bom"),
        pytest.param(b'  {"a": [1]}', J, [{"a": [1]}], id="json-document"),
        pytest.param(b"[]", J, [], id="empty-array"),
        pytest.param(b'{"a": 1}\r\n\n{"a": 2}', N, [{"a": 1}, {"a": 2}], id="ndjson-crlf-blank-lines"),
        pytest.param(b'a,b\n"x\ny",2\n', C, [{"a": "x\ny", "b": "2"}], id="csv-quoted-newline"),
        pytest.param(b"a,b\n", C, [], id="csv-header-only"),
    ],
)
def test_readers(data: bytes, file_format: FileFormat, expected: list[Any]) -> None:
    assert records(data, file_format) == expected


@pytest.mark.parametrize(
    ("data", "file_format", "error"),
    [
        pytest.param(b"   ", J, EmptyFileError, id="json-whitespace"),
        pytest.param(b"\n\n", N, EmptyFileError, id="ndjson-blank"),
        pytest.param(b"", C, EmptyFileError, id="csv-empty"),
        pytest.param(b"[1, 2", J, InvalidContentError, id="json-truncated"),
        pytest.param(b'["\xc3\x28"]', J, InvalidEncodingError, id="json-bad-utf8"),
        pytest.param(b"a\n\xff\n", C, InvalidEncodingError, id="csv-bad-utf8"),
        pytest.param(b"a,a\n1,2\n", C, InvalidContentError, id="csv-duplicate-header"),
        pytest.param(b"[" + b"1," * 100 + b"1]", J, FileTooLargeError, id="larger-than-announced"),
    ],
)
def test_reader_errors(data: bytes, file_format: FileFormat, error: type[Exception]) -> None:
    with pytest.raises(error):
        records(data, file_format, max_bytes=100)


def random_csv(rng: random.Random, line_end: str, quoted: bool, rows: int) -> str:
    """A CSV text of ``rows`` rows: fields with spaces, backslashes, non-ASCII, empty values and lines."""
    alphabet = "abc xyz,\\é€1.5-" if quoted else "abc xyz\\é€1.5-"
    notes = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(500)]
    if quoted:  # some quoted, with line ends inside
        notes = [f'"{note}\r\n"' if "," in note or n % 10 == 0 else note for n, note in enumerate(notes)]
    lines = ["id,name,note"]
    lines += [
        "" if n % 50 == 49 else f"{n},{'' if n % 7 == 0 else f'name {n}'},{rng.choice(notes)}"
        for n in range(rows)
    ]
    ends = {"lf": ["\n"], "crlf": ["\r\n"], "mixed": ["\n", "\r\n", "\r"]}[line_end]
    text = "".join([line + rng.choice(ends) for line in lines])
    return text if rng.random() < 0.5 else text.rstrip("\r\n")


@pytest.mark.parametrize("line_end", ["lf", "crlf", "mixed"])
@pytest.mark.parametrize("quoted", [False, True], ids=["unquoted", "quoted"])
def test_csv_records_are_the_standard_csv_readers_rows(line_end: str, quoted: bool) -> None:
    # GIVEN random CSV texts spanning several chunks (unquoted chunks are split without the CSV reader)
    rng = random.Random(f"{line_end}-{quoted}")
    for _ in range(2):
        text = random_csv(rng, line_end, quoted, rows=rng.randint(50_000, 70_000))
        data = text.encode()
        assert len(data) > 2 * CHUNK_BYTES

        # WHEN read
        state = ReaderState()
        got = list(open_reader(SourceStream(io.BytesIO(data), 10**9), C, state))

        # THEN the records, the lines counted and the bytes consumed are the standard reader's
        reference = csv.reader(io.StringIO(text, newline=""), strict=True)
        header = next(row for row in reference if row)
        expected = [dict(zip(header, row, strict=True)) for row in reference if row]
        assert got == expected
        assert (state.line, state.offset) == (reference.line_num, len(data))


@pytest.mark.parametrize("untouched", [False, True], ids=["as-values", "as-text"])
@pytest.mark.parametrize("number", [b"1e400", b"-1E+309", b"2e999"])
def test_a_number_beyond_a_doubles_range_is_refused_however_the_array_is_read(
    number: bytes, untouched: bool
) -> None:
    data = b'[{"id": 1, "code": "3e4f"}, {"amount": ' + number + b"}]"
    reader = open_reader(SourceStream(io.BytesIO(data), 10**9), J, untouched_json=untouched)
    with pytest.raises(InvalidContentError, match="out of range"):
        list(reader)


def test_numbers_in_range_are_copied_as_written_and_text_that_looks_like_a_huge_one_is_no_error() -> None:
    copied = open_reader(
        SourceStream(io.BytesIO(b'[{"n": 1e-400}, {"n": 1.50}]'), 10**9), J, untouched_json=True
    )
    assert [msgspec.json.encode(item) for item in copied] == [b'{"n":1e-400}', b'{"n":1.50}']
    # (a string that looks like an exponent makes the chunk be read as values: the same records)
    looks = open_reader(SourceStream(io.BytesIO(b'[{"id": "9e999"}]'), 10**9), J, untouched_json=True)
    assert list(looks) == [{"id": "9e999"}]


class EndlessArray(io.RawIOBase):
    """``[{"n": 0}, {"n": 1}, ...`` without end: only a streaming reader can yield from it."""

    def __init__(self) -> None:
        self.served = 0
        self._chunks = self._generate()

    def _generate(self) -> Iterator[bytes]:
        yield b"["
        n = 0
        while True:
            yield (b"," if n else b"") + json.dumps({"n": n}).encode()
            n += 1

    def read(self, size: int | None = -1, /) -> bytes:
        out = bytearray()
        while len(out) < (size or 0):
            out += next(self._chunks)
        self.served += len(out)
        return bytes(out)


@pytest.mark.parametrize("file_format", [J, N])
def test_readers_stream_without_reading_the_whole_file(file_format: FileFormat) -> None:
    # GIVEN an endless source
    source: Any = EndlessArray()
    if file_format is N:
        source = io.BytesIO(b"".join(json.dumps({"n": n}).encode() + b"\n" for n in range(200_000)))

    # WHEN the first records are taken
    stream = SourceStream(source, 10**12)
    first = [record for _, record in zip(range(3), open_reader(stream, file_format), strict=False)]

    # THEN they arrive after reading a bounded prefix (the read buffer and one chunk at most)
    assert first == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert stream.bytes_read <= 2 * CHUNK_BYTES


@pytest.mark.parametrize(
    ("receive_count", "expected"),
    [pytest.param(1, 30, id="first"), pytest.param(4, 240, id="fourth"), pytest.param(50, 900, id="capped")],
)
def test_backoff(receive_count: int, expected: int) -> None:
    assert backoff_seconds(receive_count, base=30, maximum=900) == expected


def test_queue_arn() -> None:
    assert parse_queue_arn("arn:aws:sqs:eu-west-1:123456789012:orders") == ("orders", "123456789012")


def test_the_collector_threshold_is_restored_when_the_last_of_overlapping_files_ends() -> None:
    import gc

    from filepipe.handler.processing import GC_THRESHOLD_WHILE_STREAMING, _FewerCollections

    fewer = _FewerCollections()
    before = gc.get_threshold()
    first, second = fewer(), fewer()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # the first file ends while the second still streams
    assert gc.get_threshold()[0] == GC_THRESHOLD_WHILE_STREAMING
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
