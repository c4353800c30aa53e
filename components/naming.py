"""Physical names AWS accepts, checked or derived before anything registers.

Two kinds of names reach AWS:

- auto-named resources (functions, roles, queues, ...) get their logical name plus Pulumi's random suffix,
  so the logical name is checked (:func:`check_auto_name`): too long or a forbidden character is an error
  at construction, naming the pipeline, instead of a failure halfway through ``pulumi up``;
- names the component sets itself (dashboard, layer, log group, key alias) are account-wide, so they carry
  the project and the stack, and they are derived to always fit (:func:`fitted`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import pulumi

from . import defaults
from .errors import PipelineConfigError

_DIGEST_LENGTH = 8


def _limits(kind: str) -> tuple[int, str]:
    return defaults.NAME_LIMITS[kind]


def fitted(kind: str, raw: str) -> str:
    """``raw`` when AWS accepts it as a ``kind`` name; otherwise a valid name that stays unique.

    Forbidden characters become ``-`` and an over-long name is cut; either way a short hash of the raw
    name is appended, so ``prod.eu`` and ``prod-eu`` (or two long names sharing a beginning) never meet.
    The beginning (``/aws/lambda/``, ``alias/``) is kept.
    """
    max_length, allowed = _limits(kind)
    clean = re.sub(f"[^{allowed}]", "-", raw)
    if clean == raw and len(raw) <= max_length:
        return raw
    digest = hashlib.sha256(raw.encode()).hexdigest()[:_DIGEST_LENGTH]
    head = clean[: max_length - _DIGEST_LENGTH - 1].rstrip("-")
    return f"{head}-{digest}"


def scoped(kind: str, name: str, *, separator: str = "-", prefix: str = "", suffix: str = "") -> str:
    """An account-wide name for ``name``: ``<prefix><project><sep><stack><sep><name><suffix>``, fitted.

    The project is part of it so two projects with a stack of the same name share an account safely.
    """
    parts = separator.join((pulumi.get_project(), pulumi.get_stack(), name))
    return fitted(kind, f"{prefix}{parts}{suffix}")


def auto_name_problem(kind: str, logical_name: str) -> str | None:
    """Why AWS would refuse ``logical_name`` plus Pulumi's suffix as a ``kind`` name, or ``None``."""
    max_length, allowed = _limits(kind)
    candidate = logical_name.lower() if kind == "S3 bucket" else logical_name
    longest = len(logical_name) + defaults.AUTO_NAME_SUFFIX_LENGTH
    if longest > max_length:
        return (
            f"the {kind} name {logical_name!r} plus Pulumi's {defaults.AUTO_NAME_SUFFIX_LENGTH}-character "
            f"suffix is {longest} characters; AWS allows {max_length}. Shorten the pipeline (or group) "
            f"name by {longest - max_length}."
        )
    bad = sorted(set(re.sub(f"[{allowed}]", "", candidate)))
    if bad:
        return f"the {kind} name {logical_name!r} contains {''.join(bad)!r}, which AWS does not accept."
    return None


def check_auto_names(pipeline: str, names: Iterable[tuple[str, str]]) -> None:
    """Raise for the first ``(kind, logical name)`` AWS would refuse, naming the pipeline."""
    for kind, logical_name in names:
        problem = auto_name_problem(kind, logical_name)
        if problem is not None:
            raise PipelineConfigError(f"pipeline {pipeline!r}: {problem}")
