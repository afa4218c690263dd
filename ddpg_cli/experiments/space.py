"""A hyperparameter search space: dotted config keys, each a numeric range or a list of choices.

    agent.actor_lr: {low: 1.0e-5, high: 1.0e-2, log: true}
    agent.batch_size: {low: 64, high: 512, log: true}      # an int field: integers are drawn
    noise.type: {choices: [gaussian, ou]}
    agent.actor_hidden: {choices: [[64, 64], [256, 256]]}

Every key and bound is checked against the config schema before any trial runs: an unknown key names
the closest one, a bound outside the field's own range is refused, and each choice must make a valid
config. Whether a range draws integers or floats follows the field's type.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel

from ddpg_cli.config import Config, _suggest, all_keys, build_config, config_to_dict, parse_yaml, set_dotted
from ddpg_cli.errors import ConfigError

DEFAULT_SPACE = Path(__file__).resolve().parent / "ddpg_space.yaml"


@dataclass(frozen=True)
class Dimension:
    key: str  # dotted config key
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] | None = None

    def suggest(self, trial: Any) -> Any:
        """Draw this dimension's value from an Optuna trial."""
        if self.choices is not None:
            # Optuna's categorical choices are scalars; lists (network widths) travel as JSON text.
            encoded = [json.dumps(choice) if isinstance(choice, (list, dict)) else choice for choice in self.choices]
            value = trial.suggest_categorical(self.key, encoded)
            return json.loads(value) if isinstance(value, str) and value[:1] in "[{" else value
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=self.log)

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(json.dumps(choice) for choice in self.choices)
        kind = "integers" if self.integer else "numbers"
        return f"{kind} in [{self.low:g}, {self.high:g}]" + (", log scale" if self.log else "")


def load_space(path: Path | None, base: Config) -> list[Dimension]:
    """The space in `path` (or the shipped default), checked against the schema and `base`."""
    return check_space(read_space_file(path), base, path or DEFAULT_SPACE)


def read_space_file(path: Path | None) -> dict[str, Any]:
    """The space in `path` (or the shipped default) as data, unchecked."""
    path = path or DEFAULT_SPACE
    if not path.is_file():
        raise ConfigError(f"search space file not found: {path}")
    document = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if document is not None and not isinstance(document, dict):
        raise ConfigError(f"{path}: a search space is a mapping of dotted config keys, got {type(document).__name__}")
    return document or {}


def check_space(document: Any, base: Config, path: Path | str) -> list[Dimension]:
    """A space given as data (as a file or tune.yaml holds it), checked against the schema and `base`;
    `path` names where it came from in errors."""
    if document is None or document == {}:
        raise ConfigError(f"{path}: the search space is empty; give dotted config keys, each {{low, high, log}} or {{choices: [...]}}")
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: a search space is a mapping of dotted config keys, got {type(document).__name__}")
    known = set(all_keys())
    dimensions = []
    for key, spec in document.items():
        key = str(key)
        if key not in known:
            raise ConfigError(f"{path}: unknown config key '{key}'{_suggest(key)}")
        if key == "seed":
            raise ConfigError(f"{path}: seed is not a hyperparameter; use --seeds-per-trial")
        dimensions.append(_dimension(path, key, spec, base))
    return dimensions


def _dimension(path: Path | str, key: str, spec: Any, base: Config) -> Dimension:
    where = f"{path}: {key}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected {{low: ..., high: ..., log: ...}} or {{choices: [...]}}, got {spec!r}")
    field = _field(key)
    if "choices" in spec:
        extra = set(spec) - {"choices"}
        choices = spec["choices"]
        if extra or not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list, alone in its entry")
        for choice in choices:
            _check_value(where, key, choice, base)
        return Dimension(key, choices=tuple(choices))
    extra = set(spec) - {"low", "high", "log"}
    if extra or "low" not in spec or "high" not in spec:
        raise ConfigError(f"{where}: a range needs low and high (and optionally log), got {sorted(spec)}")
    annotation = field.annotation
    if annotation not in (int, float, int | None, float | None):
        raise ConfigError(f"{where}: is not a number; give it choices: [...]")
    integer = annotation in (int, int | None)
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    numbers = (int,) if integer else (int, float)
    if not all(isinstance(v, numbers) and not isinstance(v, bool) and math.isfinite(v) for v in (low, high)):
        raise ConfigError(f"{where}: low and high must be finite {'integers' if integer else 'numbers'}, got {low!r} and {high!r}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if not low < high:
        raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low}")
    for bound, value in (("low", low), ("high", high)):
        if problem := _outside_field(field.metadata, value):
            raise ConfigError(f"{where}: {bound} {value} is outside the field's range ({problem})")
    for value in (low, high):
        _check_value(where, key, value, base)
    return Dimension(key, low, high, log, integer)


def _field(key: str) -> Any:
    model: type[BaseModel] = Config
    *sections, name = key.split(".")
    for section in sections:
        model = model.model_fields[section].annotation  # type: ignore[assignment]
    return model.model_fields[name]


def _outside_field(metadata: list[Any], value: float) -> str | None:
    for rule in metadata:
        if isinstance(rule, Ge) and value < rule.ge:
            return f">= {rule.ge}"
        if isinstance(rule, Gt) and value <= rule.gt:
            return f"> {rule.gt}"
        if isinstance(rule, Le) and value > rule.le:
            return f"<= {rule.le}"
        if isinstance(rule, Lt) and value >= rule.lt:
            return f"< {rule.lt}"
    return None


def _check_value(where: str, key: str, value: Any, base: Config) -> None:
    data = config_to_dict(base)
    set_dotted(data, key, value)
    try:
        build_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {value!r} does not make a valid config: {exc}") from None


def apply(base: Config, values: dict[str, Any]) -> Config:
    data = config_to_dict(base)
    for key, value in values.items():
        set_dotted(data, key, value)
    return build_config(data)
