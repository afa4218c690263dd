"""Finding runs on disk, their status, and grouping them: what `compare`, `plot` and a sweep's final
table read. Everything comes from the run dirs' own files (the files `layout` names:
config.yaml, evaluations.csv, summary.json, failure.json, checkpoints/last.pt, the lock of a run
being trained), never from TensorBoard."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ddpg_cli.config import Config, config_to_dict
from ddpg_cli.errors import ConfigError
from ddpg_cli.eval_log import EvaluationRow, read_evaluations
from ddpg_cli.experiments.sweep import BASE_SETTING, Sweep
from ddpg_cli.layout import CONFIG_FILE, SWEEP_FILE, last_checkpoint, read_failure, read_summary
from ddpg_cli.run_state import run_is_locked

STATUSES = ("done", "running", "failed", "pending", "interrupted")
_DEFAULTS = config_to_dict(Config())  # what a config that lacks a key trained with
# Keys that do not change what a run learns: runs that differ only in these form one group.
NOT_THE_SETTING = ("seed", "train.torch_threads", "train.device", "train.compile", "logging", "checkpoint", "eval.every")


@dataclass
class RunRecord:
    run_dir: Path
    config: dict[str, Any]
    setting: str  # the group it belongs to
    values: dict[str, Any]  # what makes its group differ from the others, by dotted key
    seed: int
    status: str
    evaluations: list[EvaluationRow]
    summary: dict[str, Any] | None
    error: str | None = None

    @property
    def env_id(self) -> str:
        return str(self.config.get("env", {}).get("id", "?"))

    @property
    def total_steps(self) -> int:
        return int(self.config.get("train", {}).get("total_steps", 0))

    @property
    def eval_every(self) -> int:
        return int(self.config.get("eval", {}).get("every", 0) or 0)

    @property
    def final_eval(self) -> float | None:
        """The final evaluation of a finished run."""
        if self.status != "done" or not self.evaluations:
            return None
        return self.evaluations[-1].mean

    def eval_at(self, step: int) -> EvaluationRow | None:
        """The evaluation made when training crossed `step` (None before it has): the first at or after
        `step`, no further than the `train.num_envs` steps one vector step adds."""
        stride = int(self.config.get("train", {}).get("num_envs", 1) or 1)
        return next((row for row in self.evaluations if step <= row.step < step + stride), None)

    def evaluates_at(self, step: int) -> bool:
        """Whether this run's schedule has an evaluation at `step`: a multiple of `eval.every` within
        `train.total_steps`, or the final one."""
        every = self.eval_every
        return 0 < step <= self.total_steps and (step == self.total_steps or (every > 0 and step % every == 0))

    @property
    def steps(self) -> int:
        if self.summary is not None:
            return int(self.summary.get("steps", 0))
        return self.evaluations[-1].step if self.evaluations else 0

    @property
    def wall_s(self) -> float | None:
        if self.summary is not None:
            return float(self.summary.get("wall_s", 0.0))
        return self.evaluations[-1].wall_s if self.evaluations else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "run_dir": str(self.run_dir),
            "status": self.status,
            "final_eval": self.final_eval,
            "last_eval": self.evaluations[-1].mean if self.evaluations else None,
            "steps": self.steps,
            "wall_s": self.wall_s,
            "error": self.error,
        }


def run_status(run_dir: Path) -> tuple[str, str | None]:
    """(status, the failure's one-line reason or None)."""
    if run_is_locked(run_dir):
        return "running", None
    failure = read_failure(run_dir)
    if failure is not None:
        return "failed", failure
    summary = read_summary(run_dir)
    config = _read_config(run_dir)
    total = int(config.get("train", {}).get("total_steps", 0)) if config else 0
    if summary is not None and int(summary.get("steps", -1)) >= total:
        return "done", None
    if last_checkpoint(run_dir).is_file():
        return "interrupted", None
    return "pending", None


# --- finding runs ----------------------------------------------------------------------------------


def collect_runs(paths: list[Path]) -> list[RunRecord]:
    """Every run under `paths`: a sweep dir gives its runs (pending ones included) grouped by setting;
    a run dir gives itself; any other directory is searched. Runs outside sweeps are grouped by
    their config, the seed (and settings that do not change learning) aside; runs that all share one
    config and came from one path given are named after it (`hc-repo`). A sweep without a grid
    is one setting named after its directory (`hopper`); with several sweeps, each grid setting is
    prefixed with its sweep's directory name (`hc/actor_lr=0.001`), so that two sweeps' groups never
    merge."""
    by_sweep: dict[Path, list[RunRecord]] = {}
    loose: list[Path] = []
    loose_from: set[Path] = set()  # the paths given that held runs outside sweeps
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise ConfigError(f"no such run or sweep directory: {path}")
        if not path.is_dir():
            raise ConfigError(f"{path} is not a directory (give run or sweep directories)")
        for sweep_dir in _sweeps_under(path):
            for record in _sweep_records(Sweep.load(sweep_dir)):
                if record.run_dir.resolve() not in seen:
                    seen.add(record.run_dir.resolve())
                    by_sweep.setdefault(sweep_dir, []).append(record)
        for run_dir in _runs_under(path):
            if run_dir.resolve() not in seen:
                seen.add(run_dir.resolve())
                loose.append(run_dir)
                loose_from.add(path)
    records = [record for sweep_records in by_sweep.values() for record in sweep_records]
    several = len(by_sweep) > 1 or bool(by_sweep and loose)
    names = [sweep_dir.name for sweep_dir in by_sweep]
    for sweep_dir, sweep_records in by_sweep.items():
        label = sweep_dir.name if names.count(sweep_dir.name) == 1 else str(sweep_dir)
        for record in sweep_records:
            if record.setting == BASE_SETTING:  # no grid: "base" would say nothing
                record.setting = label
            elif several:
                record.setting = f"{label}/{record.setting}"
    records.extend(_group_loose(loose, next(iter(loose_from)).resolve().name if len(loose_from) == 1 else None))
    if not records:
        raise ConfigError(f"no runs found in {', '.join(str(p) for p in paths)} (a run dir holds config.yaml)")
    return records


def _sweeps_under(path: Path) -> list[Path]:
    if (path / SWEEP_FILE).is_file():
        return [path]
    return sorted(p.parent for p in path.rglob(SWEEP_FILE))


def _runs_under(path: Path) -> list[Path]:
    if (path / CONFIG_FILE).is_file():
        return [path]
    return sorted(p.parent for p in path.rglob(CONFIG_FILE) if not (p.parent / SWEEP_FILE).exists())


def _sweep_records(sweep: Sweep) -> list[RunRecord]:
    records = []
    for spec in sweep.runs():
        status, error = run_status(spec.run_dir)
        config = _read_config(spec.run_dir) or json.loads(json.dumps(spec.config.model_dump(mode="json")))
        records.append(RunRecord(spec.run_dir, config, spec.setting, spec.values, spec.seed, status, read_evaluations(spec.run_dir),
                                 read_summary(spec.run_dir), error))  # fmt: skip
    return records


def _group_loose(run_dirs: list[Path], folder_name: str | None = None) -> list[RunRecord]:
    """Runs outside sweeps, grouped by config; a group is named by the keys in which the groups differ,
    or, when all share one config, after the one path given that holds them (else the env id)."""
    configs = {run_dir: _read_config(run_dir) for run_dir in run_dirs}
    configs = {run_dir: config for run_dir, config in configs.items() if config}
    flat = {run_dir: _flat_setting(config) for run_dir, config in configs.items()}
    varying = _differing(list(flat.values()))
    records = []
    for run_dir, config in configs.items():
        values = {key: flat[run_dir].get(key) for key in varying}
        setting = ",".join(f"{key}={_show(value)}" for key, value in values.items()) or folder_name or str(config.get("env", {}).get("id", "runs"))
        status, error = run_status(run_dir)
        records.append(RunRecord(run_dir, config, setting, values, int(config.get("seed", 0)), status, read_evaluations(run_dir),
                                 read_summary(run_dir), error))  # fmt: skip
    return records


def differing_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The dotted keys in which these run configs differ, the seed and the settings that do not change
    learning (threads, where output goes) aside: none when the runs are one setting."""
    return _differing([_flat_setting(config) for config in configs])


def _flat_setting(config: dict[str, Any]) -> dict[str, Any]:
    """The keys that make a run's setting, dotted, with a key its config lacks at its default."""
    return _setting_keys(_with_defaults(config))


def _differing(flat_configs: list[dict[str, Any]]) -> list[str]:
    return sorted({key for keys in flat_configs for key in keys if len({repr(other.get(key)) for other in flat_configs}) > 1})


def _with_defaults(config: dict[str, Any], defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The config with every key it lacks at its default: a run written before a key existed trained
    at that key's default, so it is the same setting as a later run that writes the default out."""
    merged = dict(config)
    for key, default in (_DEFAULTS if defaults is None else defaults).items():
        if key not in merged:
            merged[key] = default
        elif isinstance(default, dict) and isinstance(merged[key], dict):
            merged[key] = _with_defaults(merged[key], default)
    return merged


def _setting_keys(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if any(dotted == skip or dotted.startswith(skip + ".") for skip in NOT_THE_SETTING):
            continue
        if isinstance(value, dict) and value:
            flat.update(_setting_keys(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict, type(None), bool)) else str(value)


def _read_config(run_dir: Path) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


# --- groups ----------------------------------------------------------------------------------------


@dataclass
class Group:
    setting: str
    values: dict[str, Any]
    runs: list[RunRecord]

    @property
    def env_id(self) -> str:
        return self.runs[0].env_id


def group_runs(records: list[RunRecord]) -> list[Group]:
    """Runs of one setting together, in the order their settings first appear."""
    groups: dict[str, Group] = {}
    for record in records:
        groups.setdefault(record.setting, Group(record.setting, record.values, [])).runs.append(record)
    for group in groups.values():
        group.runs.sort(key=lambda record: record.seed)
    return list(groups.values())
