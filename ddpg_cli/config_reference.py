"""The configuration reference, generated from the schema in `ddpg_cli/config.py`.

`ddpg config reference` prints it; docs/configuration.md is its committed output, and
tests/test_config_reference.py fails when the two differ. Nothing here is written by hand per key:
types, defaults, ranges, choices and descriptions all come from `Config.model_fields`.
"""

from __future__ import annotations

import json
import math
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ddpg_cli.config import Config

REGENERATE = "ddpg config reference > docs/configuration.md"

_HEADER = f"""\
# Configuration reference

<!-- Generated from the schema in ddpg_cli/config.py; do not edit by hand. Regenerate with:
     {REGENERATE} -->

Every key a run's config accepts. A config is built in three layers: the defaults below, then the YAML
file given to `ddpg train` (any subset of keys), then each `--set KEY=VALUE` in order (the value is read
as YAML: `--set agent.actor_hidden=[64,64]`, `--set env.max_episode_steps=null`). Types are checked
strictly (`"3"` is not a number, `1.0` is not an integer), NaN and infinities are rejected, and an
unknown key is an error that names the closest known key. `ddpg config show [CONFIG] [--set ...]`
prints the config a run would use.

The YAML file can be named by a preset instead of a path: `ddpg train halfcheetah` reads the preset
`halfcheetah` (`configs/halfcheetah.yaml`, installed with the package), from any directory; a file of
that name in the working directory wins. `ddpg configs` lists the presets, where their settings come
from and what they scored.
"""

# The checks that span several keys live in model validators, which carry no field metadata; each is
# described here under its qualified name. tests/test_config_reference.py fails when a validator is
# added to the schema without an entry (or an entry outlives its validator).
CROSS_KEY_RULES = {
    "AgentConfig._batch_fits_buffer": "`agent.batch_size` must not exceed `agent.buffer_size`.",
    "AgentConfig._lr_schedule_is_complete": "A `linear` `agent.lr_schedule` needs `agent.lr_schedule_steps` of at least 1.",
    "AgentConfig._pre_activation_penalty_needs_tanh": "`agent.pre_activation_penalty` needs a tanh actor: not with `agent.invert_gradients`.",
    "EvalConfig._averaging_needs_evaluations": "`eval.average_last` above 1 needs periodic evaluations: `eval.every` above 0.",
    "NoiseConfig._schedule_is_complete": (
        "A `linear` or `exponential` `noise.schedule` needs `noise.final_sigma` and `noise.schedule_steps` of at least 1; "
        "an `exponential` one needs `noise.sigma` and `noise.final_sigma` above 0."
    ),
    "Config._warmup_fits_run": "`train.learning_starts` must not exceed `train.total_steps`.",
}


def config_reference(model: type[BaseModel] = Config) -> str:
    """Markdown: one table for the top-level keys, then one per section."""
    scalars = {name: field for name, field in model.model_fields.items() if not _is_section(field)}
    sections = {name: field for name, field in model.model_fields.items() if _is_section(field)}
    parts = [_HEADER, "## Top level\n", _table(scalars, prefix="")]
    for name, field in sections.items():
        section: type[BaseModel] = field.annotation  # type: ignore[assignment]
        intro = field.description or (section.__doc__ or "").strip()
        parts.append(f"## `{name}`\n" + (f"\n{intro}\n" if intro else ""))
        parts.append(_table(section.model_fields, prefix=f"{name}."))
    rules = [CROSS_KEY_RULES.get(name, f"See `{name}` in ddpg_cli/config.py.") for name in cross_key_validators(model)]
    if rules:
        parts.append("## Rules across keys\n\nChecked after each key's own type and range:\n")
        parts.append("".join(f"- {rule}\n" for rule in rules))
    return "\n".join(parts)


def cross_key_validators(model: type[BaseModel] = Config) -> list[str]:
    """Qualified names of the model validators of `model` and its sections, sections first."""
    names = []
    for field in model.model_fields.values():
        if _is_section(field):
            names.extend(cross_key_validators(field.annotation))  # type: ignore[arg-type]
    names.extend(decorator.func.__qualname__ for decorator in model.__pydantic_decorators__.model_validators.values())
    return names


def _is_section(field: FieldInfo) -> bool:
    return isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)


def _table(fields: dict[str, FieldInfo], prefix: str) -> str:
    rows = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    for name, field in fields.items():
        type_text, allowed = _describe_type(field.annotation, field.metadata)
        default = field.get_default(call_default_factory=True)
        cells = [f"`{prefix}{name}`", type_text, f"`{_yaml(default)}`", allowed, (field.description or "").replace("|", "\\|")]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def _describe_type(annotation: Any, metadata: list[Any]) -> tuple[str, str]:
    """(type, allowed values) of one field, e.g. ("int or null", ">= 1, <= 10^9")."""
    nullable = False
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        nullable = len(members) < len(get_args(annotation))
        (annotation,) = members  # the schema only uses `X | None`
    if get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        metadata = [*metadata, *_flatten(extra)]

    allowed = _bounds(metadata)
    if get_origin(annotation) is Literal:
        type_text = "str"
        allowed = "one of " + ", ".join(f"`{choice}`" for choice in get_args(annotation))
    elif get_origin(annotation) is list:
        (item,) = get_args(annotation)
        item_type, item_allowed = _describe_type(item, [])
        type_text = f"list of {item_type}"
        allowed = "; ".join(part for part in (_lengths(metadata, "items"), f"each {item_allowed}" if item_allowed else "") if part)
    elif get_origin(annotation) is dict or annotation is dict:
        type_text = "mapping"
    else:
        type_text = getattr(annotation, "__name__", str(annotation))
        if annotation is str:
            allowed = _lengths(metadata, "characters")
    return (f"{type_text} or null" if nullable else type_text), allowed


def _flatten(extra: list[Any]) -> list[Any]:
    """Constraints inside `Annotated[..., Field(ge=1)]` arrive as a FieldInfo holding them."""
    flat: list[Any] = []
    for item in extra:
        flat.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    return flat


def _bounds(metadata: list[Any]) -> str:
    symbols = {annotated_types.Gt: ("gt", ">"), annotated_types.Ge: ("ge", ">="), annotated_types.Lt: ("lt", "<"), annotated_types.Le: ("le", "<=")}
    parts = []
    for constraint in metadata:
        for kind, (attribute, symbol) in symbols.items():
            if isinstance(constraint, kind):
                parts.append(f"{symbol} {_number(getattr(constraint, attribute))}")
    return ", ".join(parts)


def _lengths(metadata: list[Any], unit: str) -> str:
    low = next((c.min_length for c in metadata if isinstance(c, annotated_types.MinLen)), None)
    high = next((c.max_length for c in metadata if isinstance(c, annotated_types.MaxLen)), None)
    if low == 1 and high is None:
        return "non-empty"
    if low is not None and high is not None:
        return f"{low} to {high} {unit}"
    if low is not None:
        return f"at least {low} {unit}"
    return f"at most {high} {unit}" if high is not None else ""


def _number(value: float) -> str:
    """Readable bounds: 10^12 rather than 1000000000000, 2^31 - 1 rather than 2147483647."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and value >= 10**6:
        exponent = round(math.log10(value))
        if 10**exponent == value:
            return f"10^{exponent}"
        exponent = round(math.log2(value + 1))
        if 2**exponent - 1 == value:
            return f"2^{exponent} - 1"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _yaml(value: Any) -> str:
    """A default as it would be written in a YAML config (flow style, one line)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)
