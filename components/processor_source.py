"""What a processor declares it returns, read from its source at preview without importing it.

Importing user code in the Pulumi program would run its module-level code (clients, network, secrets)
on every preview, and the function's dependencies may not even be installed there. The annotation is in
the source, so :mod:`ast` reads it as it is written. A processor without an annotation, or whose module
is not found, declares nothing: the handler still refuses a non-object record when it meets one.
"""

from __future__ import annotations

import ast
from pathlib import Path

NOT_OBJECTS = frozenset(
    {
        "list",
        "tuple",
        "set",
        "frozenset",
        "str",
        "bytes",
        "bytearray",
        "int",
        "float",
        "bool",
        "List",
        "Tuple",
        "Set",
        "FrozenSet",
        "Sequence",
        "Iterable",
        "Iterator",
    }
)
"""Return types whose values are never JSON objects (a record a CSV or Parquet column can hold)."""


def module_file(module: str, code_dir: str | Path) -> Path | None:
    """Where ``module`` (dotted) lives under ``code_dir``, as Lambda would import it from its task root."""
    base = Path(code_dir).joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _alternatives(annotation: ast.expr) -> list[ast.expr]:
    """The members of a union (``A | B``, ``Optional[A]``, ``Union[A, B]``), or the annotation itself."""
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return _alternatives(annotation.left) + _alternatives(annotation.right)
    if isinstance(annotation, ast.Subscript) and _name(annotation.value) in ("Optional", "Union"):
        inner = annotation.slice
        members = inner.elts if isinstance(inner, ast.Tuple) else [inner]
        return [alternative for member in members for alternative in _alternatives(member)]
    return [annotation]


def _name(node: ast.expr) -> str | None:
    """``list`` for ``list``, ``list[int]``, ``typing.List[int]`` and their quoted forms."""
    if isinstance(node, ast.Subscript):
        return _name(node.value)
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            return _name(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return None
    return None


def declared_non_object(spec: str, code_dir: str | Path) -> str | None:
    """The return annotation of processor ``spec`` (``module:function``) if it says the processor
    returns something other than an object (``None`` aside: a dropped record), else ``None``."""
    module, _, function = spec.partition(":")
    path = module_file(module, code_dir)
    if path is None or "." in function:
        return None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None  # the handler's import reports it, with its traceback
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            if node.returns is None:
                return None
            kinds = [
                _name(member)
                for member in _alternatives(node.returns)
                if not (isinstance(member, ast.Constant) and member.value is None) and _name(member) != "None"
            ]
            if kinds and all(kind in NOT_OBJECTS for kind in kinds):
                return ast.unparse(node.returns)
            return None
    return None
