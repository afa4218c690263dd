"""A sweep: one base config, a grid of settings, a list of seeds, and one ordinary run dir per
(setting, seed) at `OUT/<setting>/seed-<s>/`. `OUT/sweep.yaml` holds everything `--resume` needs.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddpg_cli.config import Config, build_config, config_to_dict, parse_yaml, set_dotted
from ddpg_cli.errors import ConfigError
from ddpg_cli.experiments.records import read_record, write_record
from ddpg_cli.layout import SWEEP_FILE, seed_dir_name
FORMAT_NAME = "ddpg-cli-sweep"
BASE_SETTING = "base"  # the setting's name when there is no grid


@dataclass(frozen=True)
class RunSpec:
    """One run, as data: its resolved config and where it lives. Engines execute these."""

    run_dir: Path  # absolute
    config: Config
    setting: str  # the grid values that make this setting, as a directory name
    seed: int
    values: dict[str, Any]  # those values by dotted key ({} without a grid)


@dataclass
class Sweep:
    out: Path
    base: dict[str, Any]  # the resolved base config (defaults < file < --set), seed and threads aside
    seeds: list[int]
    grid: dict[str, list[Any]] = field(default_factory=dict)  # dotted key -> values, in the user's order
    threads: int = 1  # torch threads of every run (a resumed sweep keeps them: results can depend on it)
    source: str | None = None  # the config the base came from, for the record
    overrides: list[str] = field(default_factory=list)  # the --set given, for the record
    jobs: int | None = None  # the last --jobs given (None: auto); --resume without one keeps it

    def settings(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, {dotted key: value}) for each combination of grid values, in grid order."""
        if not self.grid:
            return [(BASE_SETTING, {})]
        keys = list(self.grid)
        names = setting_key_names(keys)
        combos = itertools.product(*(self.grid[key] for key in keys))
        return [(setting_name(names, combo), dict(zip(keys, combo))) for combo in combos]

    def runs(self) -> list[RunSpec]:
        """Every (setting, seed) as a run spec, settings first: a sweep interrupted early has covered
        every setting with its first seeds rather than one setting with all of them."""
        specs = []
        for seed in self.seeds:
            for name, values in self.settings():
                data = copy.deepcopy(self.base)
                for key, value in values.items():
                    set_dotted(data, key, value, "--grid")
                data["seed"] = seed
                if data.get("train", {}).get("torch_threads") is None:
                    data.setdefault("train", {})["torch_threads"] = self.threads
                specs.append(RunSpec(self.out / name / seed_dir_name(seed), _build(data, values), name, seed, values))
        names = [spec.setting for spec in specs[: len(specs) // max(len(self.seeds), 1)]]
        if len(set(names)) != len(names):
            raise ConfigError(f"--grid: two settings would share the directory name {next(n for n in names if names.count(n) > 1)!r}")
        return specs

    # --- sweep.yaml --------------------------------------------------------------------------------

    def save(self) -> None:
        write_record(self.out / SWEEP_FILE, FORMAT_NAME, {"source": self.source, "overrides": self.overrides, "grid": self.grid,
                                                          "seeds": self.seeds, "threads": self.threads, "jobs": self.jobs, "base": self.base})  # fmt: skip

    @classmethod
    def load(cls, out: Path) -> Sweep:
        document = read_record(out, SWEEP_FILE, FORMAT_NAME, "sweep")
        try:
            sweep = cls(out.resolve(), dict(document["base"]), [int(s) for s in document["seeds"]], dict(document.get("grid") or {}),
                        int(document["threads"]), document.get("source"), list(document.get("overrides") or []),
                        None if document.get("jobs") is None else int(document["jobs"]))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{out / SWEEP_FILE} is damaged: {exc}") from None
        sweep.runs()  # the same checks as when it was created
        return sweep


def create_sweep(out: Path, base: Config, seeds: list[int] | None, grid: dict[str, list[Any]], threads: int, source: str | None, overrides: list[str],
                 jobs: int | None = None) -> Sweep:  # fmt: skip
    """A new sweep, every run's config checked against the schema before anything starts."""
    if "seed" in grid:
        raise ConfigError("--grid seed: give the seeds with --seeds")
    data = config_to_dict(base)
    sweep = Sweep(out.resolve(), data, seeds if seeds is not None else [base.seed], grid, threads, source, overrides, jobs)
    sweep.runs()
    return sweep


def _build(data: dict[str, Any], values: dict[str, Any]) -> Config:
    try:
        return build_config(data)
    except ConfigError as exc:
        where = ", ".join(f"{key}={_format(value)}" for key, value in values.items())
        raise ConfigError(f"--grid {where}: {exc}" if where else str(exc)) from None


# --- parsing the command line ----------------------------------------------------------------------

_SEEDS = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_seeds(spec: str) -> list[int]:
    """`0-4` (inclusive), `0,3,7`, or a mix (`0-2,7`); distinct, in the order given."""
    seeds: list[int] = []
    for part in spec.split(","):
        match = _SEEDS.match(part)
        if not match:
            raise ConfigError(f"--seeds {spec!r}: expected seeds like 0-4 or 0,3,7")
        first, last = int(match.group(1)), int(match.group(2) if match.group(2) is not None else match.group(1))
        if last < first:
            raise ConfigError(f"--seeds {spec!r}: the range {first}-{last} is empty (write it low-high)")
        if last - first >= 10_000:
            raise ConfigError(f"--seeds {spec!r}: {last - first + 1:,} seeds is more than a sweep should hold")
        seeds.extend(range(first, last + 1))
    duplicates = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if duplicates:
        raise ConfigError(f"--seeds {spec!r}: seed {duplicates[0]} is given twice")
    if any(seed > 2**31 - 1 for seed in seeds):
        raise ConfigError(f"--seeds {spec!r}: seeds must be at most {2**31 - 1}")
    return seeds


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`KEY=V1,V2,...` each; the values are read as YAML, like `--set` values (`1e-3`, `[64, 64]`)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice; put all its values in one --grid {key}=V1,V2,...")
        values = parse_yaml(f"[{raw}]", f"--grid {key}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"--grid {key}: no values in {raw!r}")
        if any(values.count(value) > 1 for value in values):
            raise ConfigError(f"--grid {key}: a value is given twice in {raw!r}")
        grid[key] = values
    return grid


def parse_jobs(value: int | str) -> int | None:
    """`--jobs`: a positive count, or auto (None)."""
    if str(value).strip().lower() == "auto":
        return None
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ConfigError(f"--jobs must be a positive number or auto, got {value!r}")
    return jobs


def grid_size(grid: dict[str, list[Any]]) -> int:
    """How many settings a grid makes: the product of its value counts (1 without a grid)."""
    return math.prod(len(values) for values in grid.values())


# --- names -----------------------------------------------------------------------------------------


def setting_key_names(keys: list[str]) -> list[str]:
    """The last part of each dotted key (`actor_lr`), or the whole key where two would share it."""
    leaves = [key.rsplit(".", 1)[-1] for key in keys]
    return [leaf if leaves.count(leaf) == 1 else key for key, leaf in zip(keys, leaves)]


def setting_name(names: list[str], values: tuple[Any, ...]) -> str:
    """`actor_lr=0.0003,tau=0.02`: a directory name on every common file system."""
    text = ",".join(f"{name}={_format(value)}" for name, value in zip(names, values))
    return re.sub(r"[^A-Za-z0-9._=,+-]", "_", text)


def _format(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return "x".join(_format(v) for v in value)
    return str(value)
