"""``filepipe send PIPELINE FILE…``: upload files under the pipeline's input prefix, to be processed.

A folder sends every file in it, keeping its relative path under the prefix. Files the pipeline would
not process (a suffix it does not take) or could not store (a key above S3's 1,024 bytes) are refused
before anything is uploaded, each named: a partly sent batch is harder to reason about than none.
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
from filepipe.cli.ops.stack import OpsError, Pipeline, Stack, add_stack_arguments
from filepipe.handler.keys import MAX_KEY_BYTES

PARALLEL_UPLOADS: Final = 8


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


def plan_uploads(pipeline: Pipeline, paths: list[Path], under: str = "") -> list[Upload]:
    """Each file and its key; raises :class:`OpsError` naming every file that cannot be sent."""
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
            if pipeline.input_suffixes and not key.endswith(pipeline.input_suffixes):
                problems.append(
                    f"{file}: {pipeline.name} only processes {', '.join(pipeline.input_suffixes)} files"
                )
            elif len(key.encode()) > MAX_KEY_BYTES:
                problems.append(f"{file}: the key would be above S3's {MAX_KEY_BYTES} bytes")
            else:
                uploads.append(Upload(file, key, file.stat().st_size))
    if problems:
        shown = problems[:10] + ([f"… and {len(problems) - 10} more"] if len(problems) > 10 else [])
        raise OpsError("nothing sent: " + "; ".join(shown))
    if not uploads:
        raise OpsError("nothing to send: the folders are empty")
    return uploads


def _send(args: argparse.Namespace, stack: Stack, out: Output) -> int:
    pipeline = stack.pipeline(args.pipeline)
    uploads = plan_uploads(pipeline, args.files, args.under)
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
