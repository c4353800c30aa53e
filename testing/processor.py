"""Unit tests of a processor without an endpoint: the handler's own pieces, called in-process.

``processor_case`` loads the processor with the handler's loader (``"module:function"``, or the
function itself), classifies what it raises as the handler does (:class:`ProcessorError` fails the file,
:class:`RetryLaterError` retries it), reads a file with the handler's readers, checks records against the
schema with the handler's validator and writes the output with the handler's encoders. What it leaves
out is the AWS around them (the lease, the state table, multipart uploads, continuation), which the
``local_stack`` fixture runs::

    case = processor_case("transforms:normalise", schema="schemas/order.schema.json", code_dir="src")
    case.record({"id": "a", "amount": "10"})  # {"id": "a", "amount": 10.0}, or raises ProcessorError
    case.file(b'[{"id": "a", "amount": "10"}]').records  # [{"id": "a", "amount": 10.0}]

    unzipped = whole_file_case("unpack:zip_of_csvs", zip_bytes, key="in/batch.zip", code_dir="src")
    unzipped.outputs["orders.ndjson"]  # the bytes it wrote, by name; or raises ProcessorError
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filepipe.extras import require_local_extra
from filepipe.handler.errors import SchemaValidationError
from filepipe.handler.settings import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_SCHEMA_ERRORS,
    FileFormat,
    InvalidRecordPolicy,
    OutputFormat,
)
from filepipe.handler.transform import Processor, load_processor
from filepipe.handler.writers import CONTENT_TYPES, make_encoder
from filepipe.testing.stack import decode_output

SOURCE_FILE = "s3://processor-case/input"
"""The ``source_file`` a JSON output's envelope names (there is no bucket here)."""


@dataclass(frozen=True, slots=True)
class FileCaseResult:
    """What the handler would write for one file."""

    output: bytes
    """The output object's bytes, exactly as encoded."""
    records: list[Any]
    """The output's records, decoded again."""
    rejects: list[dict[str, Any]] = field(default_factory=list)
    """With ``invalid_records="write-rejects"``: ``{"index", "error", "record"}`` per invalid record, as in
    the ``.rejects.ndjson`` file."""


class ProcessorCase:
    """One pipeline's record path (see :func:`processor_case`)."""

    def __init__(
        self,
        processor: Processor | None,
        validator: Any,
        input_format: FileFormat,
        output_format: OutputFormat,
        invalid_records: InvalidRecordPolicy,
        max_file_bytes: int,
    ) -> None:
        self.processor = processor
        self.input_format = input_format
        self.output_format = output_format
        self.invalid_records = invalid_records
        self.max_file_bytes = max_file_bytes
        self._validator = validator

    def record(self, record: Any, index: int = 0) -> Any:
        """The processor's result for one record (``None``: dropped). Raises what the handler would
        record: :class:`ProcessorError` (permanent) or :class:`RetryLaterError` (retried)."""
        from filepipe.handler.transform import transform

        # The handler's own per-record call, which turns what the processor raises into its error classes.
        return transform(self.processor, index, record)

    def check(self, record: Any) -> str | None:
        """The schema's complaint about ``record`` as the handler words it, or ``None`` if it is valid."""
        if self._validator is None:
            return None
        problem: str | None = self._validator.check(record)
        return problem

    def file(
        self, content: bytes | str, *, source_file: str = SOURCE_FILE, processed_at: datetime | None = None
    ) -> FileCaseResult:
        """Read, validate, process and encode a whole file as the handler does (``source_file`` and
        ``processed_at``: what a JSON output's envelope records; default now).

        Raises the handler's permanent errors for what it would park: ``InvalidContentError``,
        ``EmptyFileError``, ``SchemaValidationError`` (with ``invalid_records="reject-file"``),
        ``ProcessorError``, ``OutputShapeError``...
        """
        from filepipe.handler.readers import SourceStream, open_reader

        data = content.encode("utf-8") if isinstance(content, str) else content
        reader = open_reader(SourceStream(io.BytesIO(data), self.max_file_bytes), self.input_format)
        encoder = make_encoder(
            self.output_format,
            source_file,
            processed_at or datetime.now(UTC),
            # As the handler does: the schema types Parquet columns for records written as validated.
            schema=self._validator.schema if self._validator is not None and self.processor is None else None,
        )
        parts = [encoder.begin()]
        errors: list[str] = []
        rejects: list[dict[str, Any]] = []
        written = 0
        for index, record in enumerate(reader):
            problem = self.check(record)
            if problem is not None:
                if self.invalid_records is InvalidRecordPolicy.REJECT_FILE:
                    if len(errors) >= DEFAULT_MAX_SCHEMA_ERRORS:
                        raise SchemaValidationError(errors, truncated=True)
                    errors.append(f"record {index}: {problem}")
                else:
                    rejects.append({"index": index, "error": problem, "record": record})
                continue
            if errors:
                continue  # the file is rejected: only the remaining records' checks matter
            transformed = self.record(record, index)
            if transformed is not None:
                parts.append(encoder.encode(transformed, index))
                written += 1
        if errors:
            raise SchemaValidationError(errors, truncated=False)
        parts.append(encoder.end(written))
        # Records the output format cannot hold (a Parquet column they do not fit) count as invalid.
        for misfit in encoder.misfits():
            if self.invalid_records is InvalidRecordPolicy.REJECT_FILE:
                errors.append(f"record {misfit.index}: {misfit.reason}")
            else:
                rejects.append({"index": misfit.index, "error": misfit.reason, "record": misfit.record})
        if errors:
            raise SchemaValidationError(
                errors[:DEFAULT_MAX_SCHEMA_ERRORS], len(errors) > DEFAULT_MAX_SCHEMA_ERRORS
            )
        output = b"".join(parts)
        return FileCaseResult(output, decode_output(output, CONTENT_TYPES[self.output_format]), rejects)


def processor_case(
    processor: str | Callable[[Any], Any] | None = None,
    *,
    schema: str | Path | Mapping[str, Any] | None = None,
    input_format: str = FileFormat.JSON,
    output_format: str = OutputFormat.JSON,
    invalid_records: str = InvalidRecordPolicy.REJECT_FILE,
    code_dir: str | Path | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> ProcessorCase:
    """A pipeline's record path for unit tests, configured as ``PipelineArgs`` configures it.

    ``processor``: ``"module:function"`` (imported as the handler imports it, from ``code_dir`` when
    given: the ``processor_code_dir`` shipped with the function) or the function itself. ``schema``: a
    JSON Schema file or the schema itself.
    """
    require_local_extra("filepipe.testing")
    loaded = _loaded(processor, code_dir)
    return ProcessorCase(
        loaded,
        _validator(schema),
        FileFormat(input_format),
        OutputFormat(output_format),
        InvalidRecordPolicy(invalid_records),
        max_file_bytes,
    )


def _loaded(processor: Any, code_dir: str | Path | None) -> Any:
    """``processor`` as the handler loads it (a ``"module:function"`` string), or as given."""
    if code_dir is not None and str(Path(code_dir).resolve()) not in sys.path:
        # As Lambda imports the processor from its task root, where processor_code_dir is unpacked.
        sys.path.insert(0, str(Path(code_dir).resolve()))
    return load_processor(processor) if isinstance(processor, str) else processor


def _validator(schema: str | Path | Mapping[str, Any] | None) -> Any:
    from filepipe.handler.validation import load_validator

    if schema is None:
        return None
    if isinstance(schema, str | Path):
        return load_validator(str(Path(schema).resolve()))
    import fastjsonschema

    from filepipe.handler.validation import Validator

    # The handler compiles a schema file the same way (load_validator); here the schema is inline.
    document = json.loads(json.dumps(schema))
    return Validator("<inline schema>", fastjsonschema.compile(document), document)


@dataclass(frozen=True, slots=True)
class WholeFileCaseResult:
    """What a whole-file processor wrote for one file, by output name."""

    outputs: dict[str, bytes]
    content_types: dict[str, str]
    metadata: dict[str, dict[str, str]]


class _MemoryWriter:
    """An output object kept in memory, published to ``published`` when closed (as S3 would store it)."""

    def __init__(
        self, key: str, content_type: str, metadata: Mapping[str, str], published: dict[str, Any]
    ) -> None:
        self.key = key
        self._content_type = content_type
        self._metadata = dict(metadata)
        self._published = published
        self._buffer = bytearray()

    def write(self, data: bytes) -> None:
        self._buffer += data

    def flush_full(self) -> bool:
        return False

    def close(self) -> None:
        self._published[self.key] = (bytes(self._buffer), self._content_type, self._metadata)

    def abort(self) -> None:
        self._buffer.clear()


def whole_file_case(
    processor: str | Callable[..., Any],
    content: bytes,
    *,
    key: str = "in/file",
    code_dir: str | Path | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    metadata: Mapping[str, str] | None = None,
) -> WholeFileCaseResult:
    """Run a ``file_processor`` on ``content`` as the handler calls it (the same stream, ``Outputs``,
    context and error classes: :class:`ProcessorError` fails the file, :class:`RetryLaterError` retries
    it), with its outputs kept in memory. Output names are those the processor opened."""
    require_local_extra("filepipe.testing")
    from filepipe.handler.readers import CHUNK_BYTES, SourceStream
    from filepipe.handler.whole_file import FileContext, Outputs, run_whole_file

    loaded = _loaded(processor, code_dir)
    published: dict[str, Any] = {}
    folder = "out/"
    outputs = Outputs(
        folder, lambda name, content_type, extra: _MemoryWriter(name, content_type, extra, published)
    )
    context = FileContext("processor-case", key, None, len(content), dict(metadata or {}))
    stream = SourceStream(io.BytesIO(content), max_file_bytes)
    try:
        run_whole_file(loaded, io.BufferedReader(stream, CHUNK_BYTES), outputs, context)
        outputs.close_all()
    except BaseException:
        outputs.abort_all()
        raise
    names = {output_key: output_key[len(folder) :] for output_key in published}
    return WholeFileCaseResult(
        outputs={names[k]: v[0] for k, v in published.items()},
        content_types={names[k]: v[1] for k, v in published.items()},
        metadata={names[k]: v[2] for k, v in published.items()},
    )
