"""Would these policy documents allow this request? A small evaluator of Allow and Deny statements.

AWS answers this with ``iam:SimulatePrincipalPolicy`` (identity policies) and nothing at all for a queue's
resource policy; the local endpoint (moto) does not implement the simulator. The PyPI libraries that
read policies either lint them (parliament), expand actions (policyuniverse) or model a whole account
from ``GetAccountAuthorizationDetails`` (principalmapper, unmaintained since 2022; iam-ape); none answers
"does this document allow action A on resource R for principal P with these condition keys". So this is
hand-written, and covers what filepipe's documents use: ``Action``/``NotAction``,
``Resource``/``NotResource``, ``Principal``/``NotPrincipal``, ``*`` and ``?`` wildcards, and the string,
ARN and Bool condition operators.

Anything it cannot decide (a condition on a key the request does not carry, an operator it does not know)
makes the answer :attr:`Decision.UNDETERMINED` rather than a guess: the doctor turns that into a warning.
Not modelled: SCPs, session policies and policy variables (``${aws:username}``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from functools import cache
from typing import Any

from filepipe.policy import documents as doc


class Decision(StrEnum):
    ALLOWED = "allowed"
    NOT_ALLOWED = "not allowed"
    """No statement allows it (the implicit deny)."""
    DENIED = "denied"
    """A Deny statement matches."""
    UNDETERMINED = "undetermined"
    """It depends on something the evaluator cannot see (see :attr:`Evaluation.unknowns`)."""


class _Match(Enum):
    NO = 0
    MAYBE = 1
    YES = 2


@dataclass(frozen=True, slots=True)
class Request:
    action: str
    """``service:Action``; matched case-insensitively, as IAM does."""
    resource: str
    principal: tuple[str, str] | None = None
    """``("Service", "s3.amazonaws.com")`` or ``("AWS", arn)`` for a resource policy; ``None`` for identity
    policies, whose statements name no principal."""
    context: Mapping[str, str] = field(default_factory=dict)
    """The condition keys the request carries (``aws:SourceArn``...); any other key is unknown."""


@dataclass(frozen=True, slots=True)
class Evaluation:
    decision: Decision
    statements: tuple[str, ...] = ()
    """The statements that decided it (``statement 'Sid'`` or ``statement #2``)."""
    unknowns: tuple[str, ...] = ()
    """Why it is undetermined: the condition keys or operators the evaluator could not judge."""

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED


@cache
def _pattern(wildcard: str, case_sensitive: bool) -> re.Pattern[str]:
    body = "".join(".*" if char == "*" else "." if char == "?" else re.escape(char) for char in wildcard)
    return re.compile(f"^{body}$", 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def wildcard_match(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    """IAM's wildcards: ``*`` any run of characters (``/`` and ``:`` included), ``?`` one character."""
    return _pattern(pattern, case_sensitive).match(value) is not None


def _any_match(patterns: Iterable[str], value: str, *, case_sensitive: bool) -> bool:
    return any(wildcard_match(pattern, value, case_sensitive=case_sensitive) for pattern in patterns)


def _listed(statement: doc.Statement, key: str, not_key: str, value: str, *, case_sensitive: bool) -> bool:
    """Whether ``value`` is covered by ``key`` (or left out by ``not_key``); neither present: covered."""
    if key in statement:
        return _any_match(map(str, doc.as_list(statement[key])), value, case_sensitive=case_sensitive)
    if not_key in statement:
        return not _any_match(map(str, doc.as_list(statement[not_key])), value, case_sensitive=case_sensitive)
    return True


def _principal_in(value: Any, principal: tuple[str, str]) -> bool:
    kind, name = principal
    if value == "*":
        return True
    if not isinstance(value, Mapping):
        return False
    for listed_kind, listed in value.items():
        if str(listed_kind).lower() != kind.lower():
            continue
        if any(str(item) in {"*", name} for item in doc.as_list(listed)):
            return True
    return False


def _principal_matches(statement: doc.Statement, request: Request) -> bool:
    if request.principal is None:
        return True
    if "Principal" in statement:
        return _principal_in(statement["Principal"], request.principal)
    if "NotPrincipal" in statement:
        return not _principal_in(statement["NotPrincipal"], request.principal)
    return False


# Condition operators: how one context value is compared with one policy value, and whether the
# operator is negated (true only when no policy value matches).
_COMPARE: dict[str, tuple[bool, Any]] = {
    "stringequals": (False, lambda policy, actual: policy == actual),
    "stringnotequals": (True, lambda policy, actual: policy == actual),
    "stringequalsignorecase": (False, lambda policy, actual: policy.lower() == actual.lower()),
    "stringnotequalsignorecase": (True, lambda policy, actual: policy.lower() == actual.lower()),
    "stringlike": (False, wildcard_match),
    "stringnotlike": (True, wildcard_match),
    # ARN operators compare segment by segment in AWS; a wildcard can span a ':' there only within a
    # segment, which the whole-string match approximates for the ARNs filepipe compares.
    "arnequals": (False, wildcard_match),
    "arnlike": (False, wildcard_match),
    "arnnotequals": (True, wildcard_match),
    "arnnotlike": (True, wildcard_match),
    "bool": (False, lambda policy, actual: policy.lower() == actual.lower()),
}
_SET_QUALIFIERS = ("forallvalues:", "foranyvalue:")
"""With the single-valued keys a request here carries, both qualifiers compare like the plain operator."""


def _condition(statement: doc.Statement, context: Mapping[str, str], unknowns: set[str]) -> _Match:
    condition = statement.get("Condition")
    if not isinstance(condition, Mapping):
        return _Match.YES
    known = {key.lower(): value for key, value in context.items()}
    result = _Match.YES
    for operator, clause in condition.items():
        name = str(operator).lower()
        for qualifier in _SET_QUALIFIERS:
            name = name.removeprefix(qualifier)
        name = name.removesuffix("ifexists")
        if name not in _COMPARE or not isinstance(clause, Mapping):
            unknowns.add(f"condition operator {operator}")
            result = _Match.MAYBE
            continue
        negated, compare = _COMPARE[name]
        for key, values in clause.items():
            actual = known.get(str(key).lower())
            if actual is None:
                unknowns.add(f"condition key {key}")
                result = _Match.MAYBE
                continue
            hit = any(compare(str(value), actual) for value in doc.as_list(values))
            if hit == negated:
                return _Match.NO
    return result


def _statement_match(statement: doc.Statement, request: Request, unknowns: set[str]) -> _Match:
    if not _principal_matches(statement, request):
        return _Match.NO
    if not _listed(statement, "Action", "NotAction", request.action, case_sensitive=False):
        return _Match.NO
    if not _listed(statement, "Resource", "NotResource", request.resource, case_sensitive=True):
        return _Match.NO
    return _condition(statement, request.context, unknowns)


def evaluate(documents: Sequence[Mapping[str, Any]], request: Request) -> Evaluation:
    """The decision of these documents together (e.g. a role's inline and attached policies).

    As in AWS: an explicit Deny wins, then any Allow, else the implicit deny. A statement whose
    condition cannot be judged can neither allow for sure nor be ruled out as a Deny.
    """
    allows: dict[_Match, list[str]] = {_Match.YES: [], _Match.MAYBE: []}
    denies: dict[_Match, list[str]] = {_Match.YES: [], _Match.MAYBE: []}
    unknowns: set[str] = set()
    for document in documents:
        for index, statement in enumerate(doc.statements(document)):
            statement_unknowns: set[str] = set()
            match = _statement_match(statement, request, statement_unknowns)
            if match is _Match.NO:
                continue
            unknowns |= statement_unknowns
            found = denies if statement.get("Effect") == "Deny" else allows
            found[match].append(doc.label(statement, index))
    if denies[_Match.YES]:
        return Evaluation(Decision.DENIED, tuple(denies[_Match.YES]))
    if allows[_Match.YES] and not denies[_Match.MAYBE]:
        return Evaluation(Decision.ALLOWED, tuple(allows[_Match.YES]))
    if allows[_Match.YES] or allows[_Match.MAYBE]:
        deciding = denies[_Match.MAYBE] or allows[_Match.MAYBE]
        return Evaluation(Decision.UNDETERMINED, tuple(deciding), tuple(sorted(unknowns)))
    return Evaluation(Decision.NOT_ALLOWED)


def evaluate_with_boundary(
    policies: Sequence[Mapping[str, Any]], boundary: Mapping[str, Any] | None, request: Request
) -> Evaluation:
    """A role's identity policies, limited by its permissions boundary when it has one."""
    granted = evaluate(policies, request)
    if boundary is None or granted.decision is not Decision.ALLOWED:
        return granted
    bounded = evaluate([boundary], request)
    if bounded.decision is Decision.ALLOWED:
        return granted
    return Evaluation(bounded.decision, ("permissions boundary", *bounded.statements), bounded.unknowns)
