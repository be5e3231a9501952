"""Lambda event filtering (``FilterCriteria``) for the local stream runner. Pure.

An event source mapping delivers a stream record if it matches ANY of its filter
patterns; a record that matches none is dropped (checkpointed, never delivered). A
pattern is a JSON object shaped like the Lambda-shaped record it filters: every key of
the pattern must match (AND), nested objects descend into the record, and each leaf is a
non-empty list of matchers of which one must match (OR). The rules follow Lambda's
documented filter syntax, which is EventBridge's pattern language:

=========================  =====================================================
``"INSERT"``, ``5``, ...   the value equals it (numbers compare numerically,
                           strings exactly; ``null`` matches a JSON null)
``{"prefix": "ab"}``       a string value starts with it
``{"suffix": "ab"}``       a string value ends with it
``{"equals-ignore-case":`` a string value equals it, ignoring case
``{"anything-but": x}``    a present value is none of ``x`` (a value, a list of
                           values, or ``{"prefix": ...}`` / ``{"suffix": ...}``)
``{"exists": true}``       the field is present as a leaf (not an object)
``{"exists": false}``      the field is absent (or an object)
``{"numeric": [">", 0,``   a JSON number within the bounds (at most one lower
``"<=", 5]}``              and one upper bound, or ``["=", n]``)
=========================  =====================================================

When the record's value is a list, the leaf matches if any element does. Note that a
DynamoDB number is a *string* in a stream record (``{"N": "5"}``), so ``numeric``
never matches attribute values; it applies to fields such as ``SizeBytes``.

Operators Lambda may accept but this module does not evaluate (``cidr``, ``wildcard``,
``$or``, ...) are rejected when the pattern is compiled, so a template never runs
locally with a filter silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

__all__ = ["FilterPattern", "compile_criteria", "compile_pattern"]

_MISSING: Final = object()

_NUMERIC_OPS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "=": lambda a, b: a == b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_LOWER: Final = frozenset({">", ">="})
_UPPER: Final = frozenset({"<", "<="})
_OPERATORS: Final = frozenset(
    {"prefix", "suffix", "equals-ignore-case", "anything-but", "exists", "numeric"}
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool) or _is_number(value)


def _equal(pattern: Any, value: Any) -> bool:
    """Exact-value matching: numbers numerically, everything else by type and value."""
    if _is_number(pattern):
        return _is_number(value) and bool(pattern == value)
    if isinstance(pattern, bool) or isinstance(value, bool):
        return isinstance(pattern, bool) and isinstance(value, bool) and pattern is value
    return type(pattern) is type(value) and bool(pattern == value)


class FilterPattern:
    """One compiled filter pattern. Build it with :func:`compile_pattern`."""

    def __init__(self, pattern: Mapping[str, Any], text: str) -> None:
        self._pattern = pattern
        self.text = text
        """The pattern as written (JSON)."""

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether a Lambda-shaped stream record matches this pattern."""
        return _match_object(self._pattern, record)

    def __repr__(self) -> str:
        return f"FilterPattern({self.text!r})"


def _match_object(pattern: Mapping[str, Any], value: Any) -> bool:
    for key, sub in pattern.items():
        field = value.get(key, _MISSING) if isinstance(value, Mapping) else _MISSING
        if isinstance(sub, Mapping):
            if not _match_object(sub, field):
                return False
        elif not _match_leaf(sub, field):
            return False
    return True


def _match_leaf(matchers: Sequence[Any], value: Any) -> bool:
    if value is _MISSING or isinstance(value, Mapping):
        # No leaf here: only "exists": false can match.
        return any(isinstance(m, Mapping) and m.get("exists") is False for m in matchers)
    values = value if isinstance(value, list) else [value]
    return any(_match_one(m, v) for m in matchers for v in values)


def _match_one(matcher: Any, value: Any) -> bool:
    if not isinstance(matcher, Mapping):
        return _equal(matcher, value)
    ((op, arg),) = matcher.items()
    if op == "exists":
        return bool(arg)  # the value is present (absence is handled by the caller)
    if op == "prefix":
        return isinstance(value, str) and value.startswith(arg)
    if op == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.casefold() == str(arg).casefold()
    if op == "numeric":
        if not _is_number(value):
            return False
        return all(_NUMERIC_OPS[arg[i]](value, arg[i + 1]) for i in range(0, len(arg), 2))
    # anything-but
    if isinstance(arg, Mapping):
        ((inner, text),) = arg.items()
        if not isinstance(value, str):
            return True
        return not (value.startswith(text) if inner == "prefix" else value.endswith(text))
    excluded = arg if isinstance(arg, list) else [arg]
    return not any(_equal(e, value) for e in excluded)


# ---------------------------------------------------------------------------------------
# Validation: everything is checked once, at compile time, so matching cannot fail.


def _check_object(pattern: Any, where: str) -> None:
    if not isinstance(pattern, Mapping) or not pattern:
        raise ValueError(f"{where}: expected a non-empty JSON object, got {pattern!r}")
    for key, sub in pattern.items():
        at = f"{where}.{key}"
        if key.startswith("$"):
            raise ValueError(
                f"{at}: the {key!r} operator is not supported by the local stream runner "
                "(write one filter per alternative instead: filters are ORed)"
            )
        if isinstance(sub, Mapping):
            _check_object(sub, at)
        elif isinstance(sub, list):
            if not sub:
                raise ValueError(f"{at}: an empty list matches nothing")
            for i, matcher in enumerate(sub):
                _check_matcher(matcher, f"{at}[{i}]")
        else:
            raise ValueError(
                f"{at}: a pattern value must be a list of matchers or an object, got {sub!r} "
                f"(write [{json.dumps(sub)}] to match that value)"
            )


def _check_matcher(matcher: Any, where: str) -> None:
    if _is_scalar(matcher):
        return
    if not isinstance(matcher, Mapping) or len(matcher) != 1:
        raise ValueError(f"{where}: expected a value or a one-key operator object, got {matcher!r}")
    ((op, arg),) = matcher.items()
    if op not in _OPERATORS:
        raise ValueError(
            f"{where}: filter operator {op!r} is not supported by the local stream runner "
            f"(supported: exact values, {', '.join(sorted(_OPERATORS))})"
        )
    if op in ("prefix", "suffix", "equals-ignore-case"):
        if not isinstance(arg, str):
            raise ValueError(f"{where}: {op} takes a string, got {arg!r}")
    elif op == "exists":
        if not isinstance(arg, bool):
            raise ValueError(f"{where}: exists takes true or false, got {arg!r}")
    elif op == "numeric":
        _check_numeric(arg, where)
    else:  # anything-but
        if isinstance(arg, Mapping):
            if len(arg) != 1 or next(iter(arg)) not in ("prefix", "suffix"):
                raise ValueError(
                    f"{where}: anything-but takes values, or {{\"prefix\": ...}} or "
                    f"{{\"suffix\": ...}}, got {arg!r}"
                )
            if not isinstance(next(iter(arg.values())), str):
                raise ValueError(f"{where}: anything-but {arg!r} needs a string")
        elif isinstance(arg, list):
            if not arg or not all(_is_scalar(a) for a in arg):
                raise ValueError(f"{where}: anything-but takes a non-empty list of values")
        elif not _is_scalar(arg):
            raise ValueError(f"{where}: anything-but takes values, got {arg!r}")


def _check_numeric(arg: Any, where: str) -> None:
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise ValueError(
            f"{where}: numeric takes [op, number] or [op, number, op, number], got {arg!r}"
        )
    ops = arg[0::2]
    for op, bound in zip(ops, arg[1::2], strict=True):
        if op not in _NUMERIC_OPS:
            raise ValueError(f"{where}: numeric operator {op!r} is not one of {sorted(_NUMERIC_OPS)}")
        if not _is_number(bound):
            raise ValueError(f"{where}: numeric bound {bound!r} is not a number")
    if len(ops) == 2 and not (
        (ops[0] in _LOWER and ops[1] in _UPPER) or (ops[0] in _UPPER and ops[1] in _LOWER)
    ):
        raise ValueError(f"{where}: a numeric range needs one lower and one upper bound, got {arg!r}")


def compile_pattern(pattern: str | Mapping[str, Any]) -> FilterPattern:
    """Parse and check one filter pattern (the JSON text of a ``Filters[].Pattern``).

    Raises:
        ValueError: not JSON, not an object, or an operator this module does not
            evaluate (the message names where).
    """
    if isinstance(pattern, str):
        text = pattern
        try:
            parsed = json.loads(pattern)
        except json.JSONDecodeError as e:
            raise ValueError(f"filter pattern is not valid JSON ({e}): {pattern!r}") from e
    else:
        parsed, text = pattern, json.dumps(pattern, sort_keys=True)
    _check_object(parsed, "pattern")
    return FilterPattern(parsed, text)


def compile_criteria(patterns: Sequence[str | Mapping[str, Any]]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate that is true when a record matches any of ``patterns`` (or there are none).

    Raises:
        ValueError: as :func:`compile_pattern`.
    """
    compiled = [compile_pattern(p) for p in patterns]
    if not compiled:
        return lambda record: True
    return lambda record: any(p.matches(record) for p in compiled)
