"""Parquet output: records written as typed columns, a row group at a time.

Memory stays bounded by one row group: records are converted to Arrow a slice at a time
(:data:`CONVERT_ROWS`), the slices of a row group are written together, and the bytes pyarrow produces
go straight on to the S3 writer. Only pipelines that write Parquet import this module (pyarrow comes
from a layer only they get).

Where the columns come from:
- **The JSON Schema** (when records are written as validated, with no processor): one column per
  top-level property. ``string`` is a string, ``date-time`` a UTC timestamp (microseconds), ``date`` a
  date, ``integer`` an int64, ``number`` a float64, ``boolean`` a bool. An object whose schema lists its
  properties and closes them (``additionalProperties: false``) is a struct; an array with typed items is
  a list. Anything else (an open object, a value of several types) is a string column holding the
  value's JSON text, so nothing a valid record holds is lost.
- **Otherwise, the first records** (:data:`INFER_ROWS`, or the first row group if it is smaller): a
  column's type is what Arrow infers from its values there (int64, float64 for integers mixed with
  floats, bool, string, timestamps from ``datetime``); objects, arrays, mixed kinds and columns that are
  null throughout are JSON-text string columns. Not the whole first row group: its records would all be
  held as Python objects until then, which would be most of the memory a row group costs.

A later record that does not fit (a field that is not a column, a value of another type, an integer
beyond int64) is a *misfit*: it is not written, and the handler treats it like a record that fails the
schema (``invalid_records``: the file is rejected, or the record goes to the rejects object).

A Parquet file cannot be continued by another invocation (its footer indexes every row group, and
pyarrow cannot reopen a writer), so a file with Parquet output must fit one invocation.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import OutputShapeError
from .settings import ParquetCompression
from .writers import Misfit, dump_json

CONVERT_ROWS: Final = 8192
"""Records converted to Arrow at a time: small enough that few Python objects are alive at once, large
enough that pyarrow's per-call cost does not show."""
INFER_ROWS: Final = CONVERT_ROWS
"""Records whose values decide the columns when there is no schema (the first conversion's)."""

_UTC_TIMESTAMP: Final = pa.timestamp("us", tz="UTC")
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError, OutputShapeError)
"""What converting a value can raise: pyarrow's refusals, and a JSON-text column's (NaN, say)."""


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    written: pa.DataType
    """The column's type in the file."""
    converted: pa.DataType
    """The type Python values are converted to (a string, for a timestamp or date cast from text)."""
    json_text: bool = False
    """Values are written as their JSON text."""

    @property
    def cast(self) -> bool:
        return bool(self.written != self.converted)


def _json_text(name: str) -> _Column:
    return _Column(name, pa.string(), pa.string(), json_text=True)


def _schema_type(schema: Any) -> pa.DataType | None:
    """The Arrow type a JSON Schema fragment maps to, or ``None`` for a JSON-text column."""
    if not isinstance(schema, Mapping):
        return None
    kinds = schema.get("type")
    if isinstance(kinds, list):
        kinds = [kind for kind in kinds if kind != "null"]
        if len(kinds) != 1:
            return None
        kinds = kinds[0]
    if kinds == "string":
        return {"date-time": _UTC_TIMESTAMP, "date": pa.date32()}.get(str(schema.get("format")), pa.string())
    if kinds == "integer":
        return pa.int64()
    if kinds == "number":
        return pa.float64()
    if kinds == "boolean":
        return pa.bool_()
    if kinds == "array":
        item = _schema_type(schema.get("items"))
        return pa.list_(item) if item is not None else None
    if kinds == "object":
        properties = schema.get("properties")
        # An open object may hold keys a struct has no field for, which pyarrow would drop unsaid.
        if not isinstance(properties, Mapping) or schema.get("additionalProperties") is not False:
            return None
        fields = []
        for name, fragment in properties.items():
            field_type = _schema_type(fragment)
            if field_type is None:
                return None
            fields.append(pa.field(str(name), field_type))
        return pa.struct(fields)
    return None


def _text_type(data_type: pa.DataType) -> pa.DataType:
    """``data_type`` with its timestamps and dates as strings: how JSON values arrive, cast afterwards."""
    if data_type == _UTC_TIMESTAMP or data_type == pa.date32():
        return pa.string()
    if pa.types.is_list(data_type):
        return pa.list_(_text_type(data_type.value_type))
    if pa.types.is_struct(data_type):
        return pa.struct([pa.field(field.name, _text_type(field.type)) for field in data_type])
    return data_type


def columns_from_schema(schema: Mapping[str, Any]) -> list[_Column] | None:
    """The columns for records valid against ``schema``, or ``None`` if its records are not objects
    with listed properties (the columns are then inferred)."""
    properties = schema.get("properties")
    if schema.get("type") not in ("object", None) or not isinstance(properties, Mapping) or not properties:
        return None
    columns = []
    for name, fragment in properties.items():
        written = _schema_type(fragment)
        if written is None:
            columns.append(_json_text(str(name)))
        else:
            columns.append(_Column(str(name), written, _text_type(written)))
    return columns


def _inferred(name: str, values: list[Any]) -> _Column:
    try:
        data_type = pa.array(values).type
    except _ARROW_ERRORS:
        return _json_text(name)  # mixed kinds: strings and numbers, say
    if pa.types.is_null(data_type) or pa.types.is_nested(data_type):
        return _json_text(name)
    return _Column(name, data_type, data_type)


def columns_inferred(records: list[Mapping[str, Any]]) -> list[_Column]:
    """Columns for ``records`` (the first ones): every field any of them has, in first-seen order."""
    names = list(dict.fromkeys(name for record in records for name in record))
    return [_inferred(name, [record.get(name) for record in records]) for name in names]


class _Sink(io.RawIOBase):
    """Where pyarrow writes: the bytes are taken out after every row group, so only one is held."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._data += view
        self._position += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self._position  # pyarrow records column-chunk offsets from it

    def take(self) -> bytes:
        data = bytes(self._data)
        self._data.clear()
        return data


class ParquetEncoder:
    """Encodes records as a Parquet file (see the module's doc). Implements ``RecordEncoder``."""

    continuable = False

    def __init__(
        self,
        schema: Mapping[str, Any] | None,
        row_group_rows: int,
        compression: ParquetCompression,
    ) -> None:
        self._columns = columns_from_schema(schema) if schema is not None else None
        self._row_group_rows = row_group_rows
        self._compression = str(compression)
        self._pending: list[tuple[int, Any]] = []
        """Records not yet converted, with their indexes."""
        self._batches: list[pa.RecordBatch] = []
        """Converted records of the row group being gathered."""
        self._batched_rows = 0
        self._misfits: list[Misfit] = []
        self._sink = _Sink()
        self._writer: pq.ParquetWriter | None = None
        self._names: frozenset[str] = frozenset()
        self._written: pa.Schema | None = None
        if self._columns is not None:
            self._fix(self._columns)

    def _fix(self, columns: list[_Column]) -> None:
        self._columns = columns
        self._names = frozenset(column.name for column in columns)
        self._written = pa.schema([pa.field(column.name, column.written) for column in columns])
        self._writer = pq.ParquetWriter(self._sink, self._written, compression=self._compression)

    def begin(self) -> bytes:
        return b""  # pyarrow writes the magic number with the first row group

    def encode(self, record: Any, index: int) -> bytes:
        self._pending.append((index, record))
        return self._drain() if len(self._pending) >= self._drain_at else b""

    def encode_parsed(self, records: list[Any], first_index: int) -> bytes:
        self._pending.extend(enumerate(records, first_index))
        return self._drain() if len(self._pending) >= self._drain_at else b""

    def misfits(self) -> list[Misfit]:
        """The records handed over since the last call that were not written, and why."""
        taken, self._misfits = self._misfits, []
        return sorted(taken, key=lambda misfit: misfit.index)  # the rejects object is in input order

    def end(self, record_count: int) -> bytes:
        data = self._drain(final=True)
        if self._writer is None:  # no record at all: the file still needs its columns
            self._fix(self._columns or [])
        self._write_row_group()
        assert self._writer is not None
        self._writer.close()
        return data + self._sink.take()

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any], records_written: int) -> None:
        raise NotImplementedError("a Parquet output cannot be continued")

    @property
    def _drain_at(self) -> int:
        return min(CONVERT_ROWS, INFER_ROWS, self._row_group_rows)

    def _drain(self, final: bool = False) -> bytes:
        """Convert what is pending (all of it if ``final``), write each row group that is full, and
        return the bytes pyarrow wrote."""
        if self._columns is None:
            # Until the columns are known, records wait: the first ones decide them.
            if len(self._pending) < self._drain_at and not final:
                return b""
            objects = [(index, record) for index, record in self._pending if self._is_object(index, record)]
            self._pending = objects
            self._fix(columns_inferred([record for _, record in objects[: self._drain_at]]))
        while self._pending:
            size = min(CONVERT_ROWS, self._row_group_rows - self._batched_rows)
            if len(self._pending) < size and not final:
                break
            chunk, self._pending = self._pending[:size], self._pending[size:]
            self._convert(chunk)
            if self._batched_rows >= self._row_group_rows:
                self._write_row_group()
        return self._sink.take()

    def _is_object(self, index: int, record: Any) -> bool:
        if isinstance(record, Mapping):
            return True
        self._misfits.append(
            Misfit(index, record, f"Parquet output needs object records, got {type(record).__name__}")
        )
        return False

    def _convert(self, chunk: list[tuple[int, Any]]) -> None:
        """Convert ``chunk`` to a record batch; the records that do not fit become misfits."""
        fitting: list[tuple[int, Any]] = []
        names = self._names
        for row in chunk:
            record = row[1]
            # type() first: the isinstance against the Mapping ABC costs more than the rest of the check.
            if (type(record) is dict or self._is_object(*row)) and record.keys() <= names:
                fitting.append(row)
            elif isinstance(record, Mapping):
                extra = sorted(map(str, record.keys() - names))
                self._misfits.append(
                    Misfit(row[0], record, f"fields {extra} are not columns of the Parquet file")
                )

        for batch in self._batches_of(fitting):
            self._batches.append(batch)
            self._batched_rows += batch.num_rows

    def _batches_of(self, rows: list[tuple[int, Any]]) -> list[pa.RecordBatch]:
        """``rows`` as one batch; on a failure, halves are tried until each misfit is alone (so a
        chunk with k misfits costs about k log n conversions, not one per record)."""
        if not rows:
            return []
        try:
            return [self._arrow([record for _, record in rows])]
        except _ARROW_ERRORS as exc:
            if len(rows) == 1:
                index, record = rows[0]
                self._misfits.append(Misfit(index, record, self._why(record, exc)))
                return []
        middle = len(rows) // 2
        return self._batches_of(rows[:middle]) + self._batches_of(rows[middle:])

    def _arrow(self, records: list[Any]) -> pa.RecordBatch:
        assert self._columns is not None
        arrays = []
        for column in self._columns:
            values = [record.get(column.name) for record in records]
            if column.json_text:
                values = [None if value is None else dump_json(value) for value in values]
            elif pa.types.is_integer(column.converted):
                _refuse_fractions(values)
            array = pa.array(values, type=column.converted)
            arrays.append(pc.cast(array, column.written) if column.cast else array)
        return pa.RecordBatch.from_arrays(arrays, schema=self._written)

    def _why(self, record: Mapping[str, Any], exc: BaseException) -> str:
        """Which field of a lone misfit does not fit, and how."""
        assert self._columns is not None
        for column in self._columns:
            if column.json_text:
                continue  # any JSON value fits
            try:
                value = record.get(column.name)
                if pa.types.is_integer(column.converted):
                    _refuse_fractions([value])
                array = pa.array([value], type=column.converted)
                if column.cast:
                    pc.cast(array, column.written)
            except _ARROW_ERRORS as field_exc:
                return f"$.{column.name} does not fit the Parquet column ({column.written}): {field_exc}"
        return f"record does not fit the Parquet columns: {exc}"

    def _write_row_group(self) -> None:
        if not self._batches:
            return
        assert self._writer is not None
        table = pa.Table.from_batches(self._batches)
        self._writer.write_table(table, row_group_size=table.num_rows)
        self._batches = []
        self._batched_rows = 0


def _refuse_fractions(values: list[Any]) -> None:
    """pyarrow truncates a float given for an integer column (1.5 becomes 1): refuse it instead.
    An integral float (2.0, which JSON Schema calls an integer) is written as the integer."""
    for value in values:
        if type(value) is float and not (math.isfinite(value) and value.is_integer()):
            raise ValueError(f"{value!r} is not an integer")
