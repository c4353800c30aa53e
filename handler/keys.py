"""Where a file's output goes: the single implementation of the output-key rule.

The component's recursion check imports :func:`output_key` too, so the rule lives here only.
"""

from __future__ import annotations

from .settings import FileFormat, HandlerSettings, InputCompression, OutputFormat

EXTENSIONS: dict[FileFormat, tuple[str, ...]] = {
    FileFormat.JSON: (".json",),
    FileFormat.NDJSON: (".ndjson", ".jsonl"),
    FileFormat.CSV: (".csv",),
}
"""Extensions recognised per input format."""

OUTPUT_EXTENSIONS: dict[OutputFormat, str] = {
    **{OutputFormat(name): extensions[0] for name, extensions in EXTENSIONS.items()},
    OutputFormat.PARQUET: ".parquet",
}
"""The extension written per output format."""

COMPRESSION_SUFFIXES: dict[str, str] = {"gzip": ".gz", "zstd": ".zst"}
"""The key suffix of each compression, by its name (the same for inputs and outputs: ``orders.csv.gz``)."""


def compressed_suffixes(setting: InputCompression) -> tuple[str, ...]:
    """The suffixes that mark a compressed input under ``setting`` (all with ``auto``, none with ``none``)."""
    if setting is InputCompression.AUTO:
        return tuple(COMPRESSION_SUFFIXES.values())
    return (COMPRESSION_SUFFIXES[setting],) if setting in COMPRESSION_SUFFIXES else ()


REJECTS_SUFFIX = ".rejects.ndjson"
MAX_KEY_BYTES = 1024
"""S3 refuses object keys longer than this many bytes of UTF-8."""


def output_key(
    input_key: str,
    input_prefix: str,
    output_prefix: str,
    input_format: FileFormat,
    output_format: OutputFormat | FileFormat,
    compressed_suffixes: tuple[str, ...] = (),
    output_suffix: str = "",
) -> str:
    """``output_prefix + input_key[len(input_prefix):]``, extension swapped when the formats differ.

    A suffix of ``compressed_suffixes`` (``.gz``) goes first, and ``output_suffix`` (a compressed
    output's ``.gz``) comes last: ``a.csv.gz`` is written as ``a.json``, or ``a.json.zst``. The key
    depends only on the input key, so
    re-delivery of the same version overwrites the same object instead of creating a duplicate. Raises
    :class:`ValueError` if the key is outside the prefix.
    """
    if not input_key.startswith(input_prefix):
        raise ValueError(f"key {input_key!r} is outside the input prefix {input_prefix!r}")
    relative = input_key[len(input_prefix) :]
    for suffix in compressed_suffixes:
        if relative.lower().endswith(suffix):
            relative = relative[: -len(suffix)]
            break
    if str(input_format) != str(output_format):  # the same name: the same format
        lowered = relative.lower()
        for extension in EXTENSIONS[input_format]:
            if lowered.endswith(extension):
                relative = relative[: -len(extension)]
                break
        relative += OUTPUT_EXTENSIONS[OutputFormat(output_format)]
    return output_prefix + relative + output_suffix


def output_folder(input_key: str, input_prefix: str, output_prefix: str) -> str:
    """Where a whole-file processor's outputs for ``input_key`` go: ``output_prefix`` + the key's path
    below ``input_prefix`` + ``/`` (``in/batch.zip`` -> ``out/batch.zip/``). Raises :class:`ValueError`
    if the key is outside the prefix."""
    if not input_key.startswith(input_prefix):
        raise ValueError(f"key {input_key!r} is outside the input prefix {input_prefix!r}")
    return output_prefix + input_key[len(input_prefix) :] + "/"


def rejects_key(output: str) -> str:
    """Where invalid records of a file go under the ``write-rejects`` policy."""
    return output + REJECTS_SUFFIX


def pipeline_output_key(input_key: str, settings: HandlerSettings) -> str:
    """The key a record pipeline with ``settings`` writes the output of ``input_key`` under (its formats'
    extensions, its compressions' suffixes). Raises :class:`ValueError` if the key is outside the prefix."""
    return output_key(
        input_key,
        settings.input_prefix,
        settings.output_prefix,
        settings.input_format,
        settings.output_format,
        compressed_suffixes(settings.input_compression),
        COMPRESSION_SUFFIXES.get(settings.output_compression, ""),
    )
