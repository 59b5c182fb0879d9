"""Turning validation failures into :class:`~execdesk.errors.FieldIssue` lists.

Two channels feed a :class:`~execdesk.errors.SpecError`:

* pydantic's own errors (missing fields, wrong types, bounds, unknown keys), translated by
  :func:`issues_from_validation_error`; and
* the checks our validators make themselves (indicator parameters, expressions, name
  collisions), raised with :func:`issues_error`. Those carry their *sub-paths* in the error's
  context, because a validator's error is otherwise located at the validator's own field and the
  parameter or expression side that was wrong would be lost.
"""

from __future__ import annotations

import reprlib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from execdesk.errors import FieldIssue


class _Missing:
    """Sentinel for an absent value; renders as ``(missing)`` in a FieldIssue."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "(missing)"


#: An absent value (``short_repr(MISSING) == "(missing)"``).
MISSING: Any = _Missing()

_VALUE_LIMIT = 80
_ISSUES_KEY = "execdesk_issues"

# reprlib bounds the work: a hostile 1 MiB list is summarised, not rendered in full, and its
# nesting is cut at a few levels so ``repr`` can never recurse deeply.
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = _VALUE_LIMIT
_REPR.maxother = _VALUE_LIMIT
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6


def short_repr(value: object) -> str:
    """``repr(value)`` bounded in work and truncated to 80 characters."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a broken __repr__ must not hide the actual validation problem
        text = f"<{type(value).__name__}>"
    if len(text) > _VALUE_LIMIT:
        text = text[: _VALUE_LIMIT - 3] + "..."
    return text


def issues_error(issues: Iterable[tuple[str, object, str]]) -> PydanticCustomError:
    """A pydantic error carrying ``(sub_path, value, expected)`` triples.

    ``sub_path`` is relative to where the validator sits ("" for the validator's own location);
    ``value`` is the offending value (rendered here with :func:`short_repr`).
    """
    rows = [(path, short_repr(value), expected) for path, value, expected in issues]
    message = "; ".join(f"{p or '<here>'}: {e}" for p, _, e in rows)
    return PydanticCustomError("execdesk_issues", "{message}", {"message": message, _ISSUES_KEY: rows})


def join_path(parts: Sequence[object]) -> str:
    """Dot-joined field path (``indicators.rsi.period``); ``<root>`` for the document itself."""
    text = ".".join(str(p) for p in parts if str(p) != "")
    return text or "<root>"


def issues_from_validation_error(exc: ValidationError, root: type[BaseModel]) -> list[FieldIssue]:
    """Translate every error of ``exc`` (raised validating ``root``) into a FieldIssue."""
    issues: list[FieldIssue] = []
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        ctx = err.get("ctx") or {}
        rows = ctx.get(_ISSUES_KEY)
        if rows is not None:
            for sub, value, expected in rows:
                issues.append(FieldIssue(join_path([*loc, *sub.split(".")]), value, expected))
            continue
        kind = err["type"]
        if kind == "missing":
            issues.append(FieldIssue(join_path(loc), repr(MISSING), _missing_expected(root, loc)))
        elif kind == "extra_forbidden":
            issues.append(FieldIssue(join_path(loc), short_repr(err["input"]), _extra_expected(root, loc)))
        else:
            issues.append(FieldIssue(join_path(loc), short_repr(err["input"]), _expected(err["msg"])))
    return issues


def _expected(msg: str) -> str:
    # pydantic phrases everything as "Input should be <expected>" or "Value error, <text>".
    for prefix in ("Input should be ", "Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return msg[:1].lower() + msg[1:]


def _missing_expected(root: type[BaseModel], loc: list[Any]) -> str:
    field = _resolve(root, loc)
    if field is not None and field.description:
        return f"a required field: {field.description}"
    return "a required field"


def _extra_expected(root: type[BaseModel], loc: list[Any]) -> str:
    parent = _resolve_type(root, loc[:-1])
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        return "no such key (allowed: " + ", ".join(parent.model_fields) + ")"
    return "no such key"


def _resolve(root: type[BaseModel], loc: list[Any]) -> Any:
    """The pydantic FieldInfo at ``loc`` (or None) by walking the model's annotations."""
    if not loc:
        return None
    parent = _resolve_type(root, loc[:-1])
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        return parent.model_fields.get(str(loc[-1]))
    return None


def _resolve_type(root: type[BaseModel], loc: list[Any]) -> Any:
    current: Any = root
    for seg in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(seg))
            if field is None:
                return None
            current = field.annotation
            continue
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        if origin in (dict, Mapping) and len(args) == 2:
            current = args[1]
        elif origin in (list, tuple, Sequence) and args:
            current = args[0]
        else:
            return None
    return _unwrap(current)


def _unwrap(tp: Any) -> Any:
    # Peel Annotated[...] and Optional[...] so the walk reaches the model or container inside.
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp
