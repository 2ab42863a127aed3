"""Pydantic's validation errors, retold in the manifest author's terms.

Called by ``load`` for every error pydantic reports on an account or trunk. Pure.

Pydantic says "Input should be a valid string"; a person editing YAML needs "this was
read as a number: quote it". Each message says what is wrong and what would be right,
with a did-you-mean for misspelt keys and choices. Values of secret fields are never
repeated, whatever the error.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from reconciler.manifests.canonical import e164_hint
from reconciler.manifests.models import SECRET_FIELDS, Shorthand
from reconciler.manifests.problems import did_you_mean

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Explained:
    loc: Loc
    message: str
    at_key: bool = False  # point at the key (an unknown key) rather than its value


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin is not None or isinstance(annotation, types.UnionType):
        for argument in typing.get_args(annotation):
            found += _models_in(argument)
    return found


def model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model whose field ``loc`` ends in (list indexes and map keys skipped)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return None
        if isinstance(part, str) and part in model.model_fields:
            inner = _models_in(model.model_fields[part].annotation)
            if not inner:
                return model if part == loc[-1] else None
            model = inner[0]
    return model


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a map"
    return "text"


def _suggest(word: str, choices: typing.Iterable[str]) -> str:
    return did_you_mean(word, choices)


PHONE_FIELDS = frozenset({"number", "alias"})


def _expected_text(field: str, value: Any, written: str | None) -> str:
    """What to say when a string was expected and YAML read something else."""
    got = _kind(value)
    if value is None:
        return f"{field} is empty: give a value, or remove the key to take the default"
    if field in SECRET_FIELDS:
        return f"{field} must be text such as ${{ENV_VAR}}, but it was read as {got}"
    if written is not None and got in {"a number", "true/false", "a date"}:
        if field in PHONE_FIELDS and got == "a number":
            shown = f'"{written}"' if written.startswith("+") else e164_hint(written.strip())
            return (
                f"{written} was read as a number, which drops the + and leading zeros: "
                f"write phone numbers in quotes, like {shown}"
            )
        return f'{field} {written} was read as {got}: quote it, like "{written}"'
    return f"{field} must be text, not {got}"


def explain(error: ErrorDetails, *, root: type[BaseModel], written: str | None) -> Explained:
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    field = next((part for part in reversed(loc) if isinstance(part, str)), "")
    if kind == "missing":
        model = model_at(root, loc)
        description = ""
        if model is not None and field in model.model_fields:
            description = f" ({model.model_fields[field].description})"
        return Explained(loc, f"{field} is required{description}")
    if kind == "extra_forbidden":
        model = model_at(root, loc[:-1])
        allowed = list(model.model_fields) if model else []
        hint = _suggest(field, allowed) or (f"; allowed: {', '.join(allowed)}" if allowed else "")
        return Explained(loc, f"unknown key {field!r}{hint}", at_key=True)
    if kind == "value_error":
        return Explained(loc, str(error.get("ctx", {}).get("error", error["msg"])))
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", ""))
        choices = [choice.strip(" '") for choice in expected.replace(" or ", ", ").split(",")]
        shown = "(secret)" if field in SECRET_FIELDS else repr(value)
        hint = _suggest(str(value), choices) if isinstance(value, str) else ""
        return Explained(loc, f"{shown} is not one of {', '.join(choices)}{hint}")
    if kind == "string_type":
        return Explained(loc, _expected_text(field, value, written))
    if kind in {"int_type", "int_parsing", "int_from_float"}:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return Explained(
                loc,
                f'{field} must be a whole number, and "{value}" is quoted text: write it '
                f"without quotes, like {value.strip()}",
            )
        shown = written if written is not None and field not in SECRET_FIELDS else _kind(value)
        return Explained(loc, f"{field} must be a whole number, not {shown}")
    if kind == "bool_type":
        return Explained(loc, f"{field} must be true or false, not {_kind(value)}")
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        model = model_at(root, loc)
        if (
            model is not None
            and issubclass(model, Shorthand)
            and not isinstance(value, list | dict)
        ):
            return Explained(loc, _expected_text(model.shorthand_key(), value, written))
        if not field or isinstance(loc[-1], int):
            return Explained(loc, f"each item must be a map of keys and values, not {_kind(value)}")
        return Explained(loc, f"{field} must be a map of keys and values, not {_kind(value)}")
    if kind in {"tuple_type", "list_type"}:
        return Explained(
            loc, f"{field} must be a list (one '- ' item per line), not {_kind(value)}"
        )
    return Explained(loc, f"{field}: {error['msg']}")
