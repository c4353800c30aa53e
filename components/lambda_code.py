"""The function's code archive: the handler package, the schema and the user's processor code.

The handler is taken from where ``filepipe.handler`` is installed (not from the working directory), so a
program works from any folder and from an installed wheel. Files are listed explicitly (no caches, sorted)
so the archive, and therefore the deployment, only changes when the code does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi

from . import handler as handler_package

HANDLER_PACKAGE = "handler"
"""Top-level package name of the handler inside the archive."""
HANDLER_ENTRY_POINT = f"{HANDLER_PACKAGE}.app.lambda_handler"
BREAKER_ENTRY_POINT = f"{HANDLER_PACKAGE}.breaker.lambda_handler"
"""The circuit breaker's function (same archive, another module)."""
SCHEMA_FILE = "filepipe_schema.json"
"""Where the schema lands in the archive; the handler finds it through ``FILEPIPE_SCHEMA_FILE``."""

_SKIPPED_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".git"}


def handler_source_dir() -> Path:
    return Path(handler_package.__file__).resolve().parent


def _files_under(root: Path) -> list[Path]:
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and not _SKIPPED_DIRS.intersection(path.relative_to(root).parts)
        and path.suffix not in {".pyc", ".pyo"}
    )


def code_archive(
    schema: Mapping[str, Any] | None = None, processor_code_dir: str | Path | None = None
) -> pulumi.AssetArchive:
    """Build the function's archive: ``handler/``, the schema file and the user code at the root."""
    assets: dict[str, pulumi.Asset | pulumi.Archive] = {}
    source = handler_source_dir()
    for path in _files_under(source):
        if path.suffix == ".py":
            assets[f"{HANDLER_PACKAGE}/{path.relative_to(source).as_posix()}"] = pulumi.FileAsset(str(path))
    if schema is not None:
        # In the schema's own key order (as deterministic as sorting, since it comes from one document):
        # a Parquet output's columns and struct fields follow the order of the schema's properties.
        assets[SCHEMA_FILE] = pulumi.StringAsset(json.dumps(schema, indent=2))
    if processor_code_dir is not None:
        user_root = Path(processor_code_dir).resolve()
        for path in _files_under(user_root):
            relative = path.relative_to(user_root).as_posix()
            if relative.split("/")[0] == HANDLER_PACKAGE or relative == SCHEMA_FILE:
                raise ValueError(
                    f"processor_code_dir contains {relative!r}, which would shadow filepipe's own "
                    f"{HANDLER_PACKAGE!r} package or schema file; rename it."
                )
            assets[relative] = pulumi.FileAsset(str(path))
    return pulumi.AssetArchive(assets)


def handler_requirements_file() -> Path:
    """The handler's third-party runtime requirements (boto3 and Powertools come from the runtime/layer)."""
    return handler_source_dir() / "requirements.txt"


def parquet_requirements_file() -> Path:
    """What writing Parquet needs beyond :func:`handler_requirements_file` (a layer of its own)."""
    return handler_source_dir() / "requirements-parquet.txt"


def archive_unzipped_size(archive: pulumi.AssetArchive) -> int:
    """Bytes the archive's files take unzipped, as Lambda counts function code against its limit."""
    total = 0
    for asset in archive.assets.values():
        if isinstance(asset, pulumi.FileAsset):
            total += Path(str(asset.path)).stat().st_size
        elif isinstance(asset, pulumi.StringAsset):
            total += len(str(asset.text).encode())
    return total
