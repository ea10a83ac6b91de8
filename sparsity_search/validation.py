"""One validation system: the pydantic base for file schemas and one formatter from pydantic errors to one line.

``TrainConfig`` (config.py), study files and search spaces (search/) all validate with pydantic and report the
first error as ``field: what is wrong`` (the CLI adds the file in front), in the same words for the same
problem: ``must be >= 1; got 0``, ``expected int, got 2.5``, ``must be one of a, b; got 'c'``, ``unknown key``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

_TYPES = {"int_type": "int", "float_type": "float", "string_type": "str", "bool_type": "bool",
          "list_type": "a list", "dict_type": "a mapping"}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than_equal": ("<=", "le"),
           "less_than": ("<", "lt")}


class Strict(BaseModel):
    """Base of every file schema: an unknown key is an error, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _message(error: dict[str, Any]) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in _TYPES:
        return f"expected {_TYPES[kind]}, got {value!r}"
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        return f"must be {op} {ctx[key]}; got {value!r}"
    if kind == "finite_number":
        return f"must be finite; got {value!r}"
    if kind == "literal_error":
        choices = ctx["expected"].replace("'", "").replace(" or ", ", ")
        return f"must be one of {choices}; got {value!r}"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "unknown key"
    return str(error["msg"]).removeprefix("Value error, ")


def validation_error_parts(exc: ValidationError) -> tuple[str | None, str]:
    """``(field, message)`` of the first error, with a count of the others. A trailing list index moves into the
    message (``hidden``, ``expected a list of int; item 1 is 'a'``); a model-level or nested error names its field
    in ``ctx["field"]``."""
    errors = exc.errors()
    first = errors[0]
    loc = [p for p in first["loc"] if not str(p).startswith("function-")]
    message = _message(first)
    if loc and isinstance(loc[-1], int):
        index = loc.pop()
        if first["type"] in _TYPES:
            message = f"expected a list of {_TYPES[first['type']]}; item {index} is {first.get('input')!r}"
        else:
            message = f"item {index}: {message}"
    # a nested value's error (``config._nested``) names its own field, ``model.step_mode``, in ctx
    field = (first.get("ctx") or {}).get("field") or ".".join(str(p) for p in loc) or None
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return field, message + more


def format_validation_error(exc: ValidationError) -> str:
    """The first error as one line, ``params.lambda_max.low: expected float, got 'a'`` (plus a count of others)."""
    field, message = validation_error_parts(exc)
    return f"{field}: {message}" if field else message
