"""``filepipe send PIPELINE FILE…``: upload files under the pipeline's input prefix, to be processed.

A folder sends every file in it, keeping its relative path under the prefix. Files the pipeline would
not process are refused before anything is uploaded, each named with its reason: a partly sent batch is
harder to reason about than none. The rules are the pipeline's own, taken from where the handler takes
them: the notification's suffixes (stack outputs), and the function's settings (its environment, parsed
by the handler's parser) for the size cap and the compression, which the handler's own functions then
apply to each file: a key it cannot store an output for, an empty file, a file above the cap, a
compressed file that does not decompress (or inflates beyond the cap), a compressed file the pipeline
would read as plain records.
Uploads go through boto3's transfer manager (multipart for large files), several at a time.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from boto3.s3.transfer import TransferConfig
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from filepipe.cli.ops.command import Output, add_json_argument, ops_command
from filepipe.cli.ops.pipeline_settings import deployed_settings
from filepipe.cli.ops.stack import OpsError, Pipeline, Stack, add_stack_arguments
from filepipe.handler.decompression import Decompressed, compression_of
from filepipe.handler.errors import CorruptCompressionError
from filepipe.handler.keys import COMPRESSION_SUFFIXES, MAX_KEY_BYTES, output_folder, pipeline_output_key
from filepipe.handler.settings import HandlerSettings, InputCompression

PARALLEL_UPLOADS: Final = 8
READ_BYTES: Final = 1024 * 1024
"""Decompressed bytes read at a time while a compressed file is checked."""
MAGIC_BYTES: Final = {InputCompression.GZIP: b"\x1f\x8b", InputCompression.ZSTD: b"\x28\xb5\x2f\xfd"}
"""How a compressed file begins (RFC 1952, RFC 8878): a file sent under a key the pipeline reads as
plain records must not begin so, or its records would be the compressed bytes."""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("send", help="upload files under a pipeline's input prefix")
    parser.add_argument("pipeline", metavar="PIPELINE")
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files or folders")
    parser.add_argument(
        "--under", default="", metavar="PATH", help="a sub-folder of the input prefix to upload into"
    )
    add_json_argument(parser)
    add_stack_arguments(parser)
    parser.set_defaults(command=ops_command(_send))


@dataclass(frozen=True, slots=True)
class Upload:
    path: Path
    key: str
    size: int


def plan_uploads(
    pipeline: Pipeline, settings: HandlerSettings, paths: list[Path], under: str = ""
) -> list[Upload]:
    """Each file and its key; raises :class:`OpsError` naming every file that cannot be sent and why."""
    base = pipeline.input_prefix + (under.strip("/") + "/" if under.strip("/") else "")
    uploads: list[Upload] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            pairs = [(file, file.relative_to(path).as_posix()) for file in files]
        elif path.is_file():
            pairs = [(path, path.name)]
        else:
            problems.append(f"{path}: no such file")
            continue
        for file, relative in pairs:
            key = base + relative
            problem = refusal(pipeline, settings, file, key)
            if problem is not None:
                problems.append(f"{file}: {problem}")
            else:
                uploads.append(Upload(file, key, file.stat().st_size))
    if problems:
        shown = problems[:10] + ([f"… and {len(problems) - 10} more"] if len(problems) > 10 else [])
        raise OpsError("nothing sent: " + "; ".join(shown))
    if not uploads:
        raise OpsError("nothing to send: the folders are empty")
    return uploads


def refusal(pipeline: Pipeline, settings: HandlerSettings, file: Path, key: str) -> str | None:
    """Why ``pipeline`` would not process ``file`` uploaded at ``key`` (``None``: it would)."""
    # S3 matches notification suffixes case-sensitively, as endswith does.
    if pipeline.input_suffixes and not key.endswith(pipeline.input_suffixes):
        return f"{pipeline.name} only processes {', '.join(pipeline.input_suffixes)} files"
    if len(key.encode()) > MAX_KEY_BYTES:
        return f"the key would be above S3's {MAX_KEY_BYTES} bytes"
    if problem := _output_refusal(settings, key):
        return problem
    size = file.stat().st_size
    if size == 0:
        return f"the file is empty: {pipeline.name} parks empty files"
    cap = settings.max_file_bytes
    if size > cap:
        return f"{size} bytes, above {pipeline.name}'s size cap (max_file_bytes) of {cap}"
    # send sets no Content-Encoding: the key and the setting decide, as for the handler.
    compression = compression_of(settings.input_compression, key, None)
    if compression is InputCompression.NONE:
        return _plain_refusal(pipeline, settings, file)
    return _compressed_refusal(pipeline, file, compression, cap)


def _output_refusal(settings: HandlerSettings, key: str) -> str | None:
    """Why the handler could not name this file's output (the handler's own key rules)."""
    try:
        if settings.file_processor:
            folder = output_folder(key, settings.input_prefix, settings.output_prefix)
            if len(folder.encode()) >= MAX_KEY_BYTES:
                return f"its output folder would be above S3's {MAX_KEY_BYTES}-byte key limit"
        elif (size := len(pipeline_output_key(key, settings).encode())) > MAX_KEY_BYTES:
            return f"its output key would be {size} bytes, above S3's limit of {MAX_KEY_BYTES}"
    except ValueError as error:
        return f"the pipeline would refuse it: {error}"
    return None


def _plain_refusal(pipeline: Pipeline, settings: HandlerSettings, file: Path) -> str | None:
    if settings.file_processor:
        return None  # a whole-file processor takes any bytes (a zip, an image, a gzip it unpacks itself)
    with file.open("rb") as stream:
        head = stream.read(4)
    for compression, magic in MAGIC_BYTES.items():
        if head.startswith(magic):
            if settings.input_compression is InputCompression.NONE:
                why = "the pipeline decompresses nothing (input_compression none)"
            else:
                suffix = COMPRESSION_SUFFIXES[compression]
                why = f"the key does not end in {suffix}, so the pipeline reads it as it is; name it ...{suffix}"
            return (
                f"the file is {compression}-compressed but {pipeline.name} would read it as plain "
                f"{settings.input_format.value}: {why}"
            )
    return None


def _compressed_refusal(
    pipeline: Pipeline, file: Path, compression: InputCompression, cap: int
) -> str | None:
    """Decompress the file as the handler will (its own decompressor): corrupt, truncated, empty or
    inflating beyond the cap is refused here rather than parked there."""
    inflated = 0
    with file.open("rb") as stream:
        body = Decompressed(stream, compression)
        try:
            while chunk := body.read(READ_BYTES):
                inflated += len(chunk)
                if inflated > cap:
                    return (
                        f"it decompresses to more than {pipeline.name}'s size cap (max_file_bytes) of {cap} "
                        f"bytes: the pipeline would park it as FileTooLargeError"
                    )
        except CorruptCompressionError as error:
            return f"the pipeline would park it as CorruptCompressionError: {error}"
    if inflated == 0:
        return f"it decompresses to nothing: {pipeline.name} parks empty files"
    return None


def _send(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipeline = stack.pipeline(args.pipeline)
    uploads = plan_uploads(pipeline, deployed_settings(stack, pipeline), args.files, args.under)
    s3 = stack.s3()
    config = TransferConfig(use_threads=False)  # parallel across files below, not within one
    sent: list[dict[str, object]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=out.progress, disable=not out.progress.is_terminal) as progress:
        task = progress.add_task(f"sending to {pipeline.name}", total=sum(u.size for u in uploads))

        def upload(item: Upload) -> Upload:
            s3.upload_file(
                str(item.path),
                pipeline.bucket,
                item.key,
                Config=config,
                Callback=lambda sent_bytes: progress.advance(task, sent_bytes),
            )
            return item

        with ThreadPoolExecutor(max_workers=PARALLEL_UPLOADS) as pool:
            for future in as_completed([pool.submit(upload, item) for item in uploads]):
                item = future.result()
                sent.append({"file": str(item.path), "key": item.key, "bytes": item.size})
    sent.sort(key=lambda entry: str(entry["key"]))
    if out.as_json:
        out.document({"pipeline": pipeline.name, "bucket": pipeline.bucket, "uploaded": sent})
    else:
        for entry in sent:
            # soft_wrap: a key longer than the terminal is left to the terminal to wrap; rich would
            # break it at the last column, which reads as two keys.
            out.console.print(f"sent {entry['file']} → s3://{pipeline.bucket}/{entry['key']}", soft_wrap=True)
        out.console.print(f"{len(sent)} file(s) sent to {pipeline.name}; see them with `filepipe status`")
    return 0
