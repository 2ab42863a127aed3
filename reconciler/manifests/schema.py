"""The manifest language described for machines and people, from the models themselves.

Called by ``reconciler schema``: the JSON Schema (committed as
``schema/manifest.schema.json`` for editors) and the field reference in docs/manifests.md are
both generated here from ``models``, and tests check that the committed copies are
current, so neither can drift from what ``validate`` enforces. Pure.
"""

from __future__ import annotations

import json
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from reconciler.manifests.document import ManifestFile
from reconciler.manifests.models import (
    AccountSpec,
    CredentialSpec,
    DestinationSpec,
    DispatchSpec,
    PartnerSpec,
    PhoneNumberSpec,
    SignallingSpec,
    TrunkPartnerSpec,
    TrunkSpec,
)
from reconciler.manifests.routes import Agents, Conditions, Handoff, RouteSpec, Rule, Target

REFERENCE_SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("`accounts.<name>`", AccountSpec),
    ("`accounts.<name>.signalling`", SignallingSpec),
    ("`partners.<name>`", PartnerSpec),
    ("`trunks[]`", TrunkSpec),
    ("`trunks[].phone_numbers[]` (or a plain string: the number)", PhoneNumberSpec),
    ("`trunks[].destination_uris[]` (or a plain string: the uri)", DestinationSpec),
    ("`trunks[].credentials[]`", CredentialSpec),
    ("`trunks[].partner` (or a plain string: the name)", TrunkPartnerSpec),
    ("`trunks[].partner.dispatch`", DispatchSpec),
    ("`routes[]`", RouteSpec),
    ("`routes[].default` (and each rule)", Target),
    ("`routes[].rules[]`", Rule),
    ("`routes[].rules[].when`", Conditions),
    ("`routes[].handoff`", Handoff),
    ("`routes[].handoff.agents`", Agents),
)


def json_schema() -> dict[str, Any]:
    schema = ManifestFile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "Exotel vSIP reconciler manifest",
        "description": "Desired state of Exotel vSIP trunks: accounts:, trunks:, or both. "
        "Top-level keys starting with x- are ignored (for YAML anchors).",
        "patternProperties": {"^x-": {}},
    }


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


# What a nested model is called in the reference (each has a section of its own).
MODEL_NAMES: dict[type[BaseModel], tuple[str, str]] = {
    PhoneNumberSpec: ("phone number", "phone numbers"),
    DestinationSpec: ("destination", "destinations"),
    CredentialSpec: ("credential", "credentials"),
    SignallingSpec: ("signalling", "signalling"),
    TrunkPartnerSpec: ("partner", "partners"),
    DispatchSpec: ("dispatch rule", "dispatch rules"),
    Target: ("target", "targets"),
    Rule: ("rule", "rules"),
    Conditions: ("conditions", "conditions"),
    Handoff: ("handoff", "handoffs"),
    Agents: ("agents", "agents"),
}
# Where the type alone says too little: (model, field) -> how the reference reads.
FIELD_TYPES: dict[tuple[type[BaseModel], str], str] = {
    (Target, "custom_params"): "map of header name to value",
    (TrunkPartnerSpec, "attributes"): "map of header name to attribute name",
}


def _type_name(annotation: Any, *, plural: bool = False) -> str:
    """A field's type in words: ``list of destinations``, never a Python annotation."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(arguments[0], plural=plural)
    if origin is typing.Literal:
        return " \\| ".join(f"`{value}`" for value in arguments)
    if origin is tuple:
        return f"list of {_type_name(arguments[0], plural=True)}"
    if origin is dict:
        key, value = (_type_name(argument, plural=True) for argument in arguments)
        return f"map of {key} to {value}"
    if arguments and type(None) in arguments:
        inner = [a for a in arguments if a is not type(None)]
        return _type_name(inner[0], plural=plural)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        one, many = MODEL_NAMES.get(annotation, ("item", "items"))
        return many if plural else one
    names = {
        str: ("string", "strings"),
        int: ("integer", "integers"),
        bool: ("boolean", "booleans"),
    }
    if annotation in names:
        return names[annotation][1 if plural else 0]
    raise TypeError(f"the field reference has no words for {annotation!r}: add them here")


def _default(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    if field.is_required():
        return "required"
    default = field.default
    if default is PydanticUndefined or default is None:
        return "none"
    if default == ():
        return "empty"
    return f"`{json.dumps(default)}`"


def field_reference() -> str:
    """Markdown tables, one per model: field, type, default, meaning."""
    lines: list[str] = []
    for title, model in REFERENCE_SECTIONS:
        lines += [f"#### {title}", "", f"{model.__doc__}", ""]
        lines += ["| field | type | default | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            meaning = (field.description or "").replace("|", "\\|")
            worded = [
                words
                for (owner, key), words in FIELD_TYPES.items()
                if key == name and issubclass(model, owner)
            ]
            kind = worded[0] if worded else _type_name(field.annotation)
            default = _default(model, name)
            lines.append(f"| `{name}` | {kind} | {default} | {meaning} |")
        lines.append("")
    return "\n".join(lines)
