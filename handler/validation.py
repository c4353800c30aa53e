"""JSON Schema validation with fastjsonschema, compiled once per container and schema file."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastjsonschema


class SchemaFileError(RuntimeError):
    """The configured schema file is missing or not a valid JSON Schema (a deployment error)."""


def resolve_schema_path(schema_file: str) -> Path:
    """Find ``schema_file``: absolute, or relative to the code archive root.

    In Lambda the archive root is ``LAMBDA_TASK_ROOT``; installed, it is the folder holding the
    ``handler`` package; the working directory comes last (the local runner's project root).
    """
    path = Path(schema_file)
    if path.is_absolute():
        return path
    roots = [os.environ.get("LAMBDA_TASK_ROOT"), str(Path(__file__).resolve().parent.parent), os.getcwd()]
    for root in roots:
        if root and (Path(root) / path).is_file():
            return Path(root) / path
    raise SchemaFileError(f"schema file {schema_file!r} not found under {[r for r in roots if r]}")


@dataclass(frozen=True, slots=True)
class Validator:
    """A compiled schema; :meth:`check` returns an error description or ``None``."""

    schema_path: str
    _compiled: Callable[[Any], Any]
    schema: dict[str, Any]
    """The schema document (it also types a Parquet output's columns)."""

    def check(self, record: Any) -> str | None:
        try:
            self._compiled(record)
        except fastjsonschema.JsonSchemaValueException as exc:
            field = "$" + str(exc.name)[len("data") :] if str(exc.name).startswith("data") else str(exc.name)
            message = str(exc.message).replace(str(exc.name), field, 1)
            return f"{field}: {message}"
        return None


@functools.cache
def load_validator(schema_file: str) -> Validator:
    """Compile the schema once per process (Lambda container or local runner)."""
    path = resolve_schema_path(schema_file)
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        compiled = fastjsonschema.compile(schema)
    except (OSError, ValueError, fastjsonschema.JsonSchemaDefinitionException) as exc:
        raise SchemaFileError(f"schema file {str(path)!r} is not a valid JSON Schema: {exc}") from exc
    return Validator(str(path), compiled, schema)
