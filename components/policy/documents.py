"""Reading IAM, resource and key policy documents as the AWS policy grammar allows them to be written.

Policies reach a policy pack as JSON strings (or, from programs that pass dicts, as objects). A statement
list may be a single object, ``Action``/``Resource``/``Principal`` may be a string or a list, and a principal
may be ``"*"`` or ``{"AWS": "*"}``; every rule reads documents through these helpers so none of those
spellings slips past a rule.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

Statement = Mapping[str, Any]

SOURCE_ARN = "aws:sourcearn"
SOURCE_ACCOUNT = "aws:sourceaccount"
ACCOUNT_CONDITION_KEYS = frozenset(
    {SOURCE_ACCOUNT, "aws:sourceowner", "aws:principalaccount", "aws:principalorgid", "aws:sourceorgid"}
)
"""Condition keys that confine a wildcard principal to known accounts or organisations."""


class DocumentError(ValueError):
    """The value is not a policy document."""


def parse_document(value: Any) -> Mapping[str, Any]:
    """The document as a mapping, from the JSON string a provider input carries (or an object)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise DocumentError(f"not valid JSON ({error.msg})") from error
    if not isinstance(value, Mapping):
        raise DocumentError("not a JSON object")
    return value


def as_list(value: Any) -> list[Any]:
    """``Action``, ``Resource``, principal values: a string or a list in the policy grammar."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def statements(document: Mapping[str, Any]) -> Iterator[Statement]:
    for statement in as_list(document.get("Statement")):
        if isinstance(statement, Mapping):
            yield statement


def allows(statement: Statement) -> bool:
    return statement.get("Effect") == "Allow"


def label(statement: Statement, index: int) -> str:
    sid = statement.get("Sid")
    return f"statement {sid!r}" if sid else f"statement #{index + 1}"


def principals(statement: Statement) -> tuple[list[str], list[str]]:
    """``(AWS principals, service principals)``; a bare ``"*"`` counts as the AWS wildcard."""
    principal = statement.get("Principal")
    if principal is None:
        return [], []
    if isinstance(principal, str):
        return [principal], []
    if not isinstance(principal, Mapping):
        return [], []
    aws = [str(value) for value in as_list(principal.get("AWS"))]
    federated = [str(value) for value in as_list(principal.get("Federated"))]
    services = [str(value) for value in as_list(principal.get("Service"))]
    return aws + federated, services


def is_wildcard_principal(statement: Statement) -> bool:
    aws, _ = principals(statement)
    return any(value == "*" for value in aws)


def condition_keys(statement: Statement) -> set[str]:
    """Condition keys (lower case: AWS compares them case-insensitively), whatever their operator."""
    condition = statement.get("Condition")
    keys: set[str] = set()
    if isinstance(condition, Mapping):
        for clause in condition.values():
            if isinstance(clause, Mapping):
                keys.update(str(key).lower() for key in clause)
    return keys


def actions(statement: Statement) -> list[str]:
    return [str(action) for action in as_list(statement.get("Action"))]


def resources(statement: Statement) -> list[str]:
    return [str(resource) for resource in as_list(statement.get("Resource"))]


def grants(statement: Statement, action: str) -> bool:
    """Whether an Allow statement's actions cover ``action`` (``service:*``, ``*`` and ``Prefix*`` forms)."""
    if not allows(statement):
        return False
    wanted = action.lower()
    for granted in (value.lower() for value in actions(statement)):
        if granted in {"*", wanted} or (granted.endswith("*") and wanted.startswith(granted[:-1])):
            return True
    return False
