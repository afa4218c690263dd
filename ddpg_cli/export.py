"""Standalone policies that need none of our code: raw observations in, env actions out.

The exported graph is `DeployedPolicy`: observation normalisation (when the run used it), the actor,
clamp to [-1, 1], scaling to the env's [low, high], and the clip to those bounds.

    input  `obs`:    float32 [batch, obs_dim]      raw observations, as the env returns them
    output `action`: float32 [batch, action_dim]   actions to pass to env.step, inside [low, high]

Formats:
- `onnx`: `torch.onnx.export` with the torch.export-based exporter (the default in torch 2.13; it
  needs onnxscript), a dynamic batch dimension, one self-contained file. Run it with onnxruntime.
- `torchscript`: `torch.jit.trace`; load it with `torch.jit.load`. The batch dimension is free.

Beside the file goes a JSON sidecar `<file>.json`: shapes and bounds, env id, versions, training step
and the input and output names (bounds that are infinite are written as null).

Every export is verified before it replaces anything: the written file is loaded back (onnxruntime or
`torch.jit.load`), run on a batch of observations from the env, and compared with the in-process
policy. A max abs difference above `TOLERANCE` is an ExportError and leaves the target untouched.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import gymnasium as gym
import numpy as np
import torch

from ddpg_cli import __version__
from ddpg_cli.layout import CHECKPOINT_DIR, EXPORT_DIR
from ddpg_cli.envs import make_env
from ddpg_cli.errors import ExportError, MissingExtraError, OutputError
from ddpg_cli.networks import DeployedPolicy
from ddpg_cli.outputs import commit_output, prepare_output
from ddpg_cli.policy import LoadedPolicy

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}  # format -> file suffix of the default output
INPUT_NAME = "obs"
OUTPUT_NAME = "action"
TOLERANCE = 1e-5  # max abs difference allowed between the exported file and the in-process policy
VERIFY_OBSERVATIONS = 64  # 48 from a random-action rollout, 16 drawn from the observation space
ONNX_MODULES = ("onnx", "onnxruntime", "onnxscript")

RunExported = Callable[[np.ndarray], np.ndarray]  # float32 [B, obs_dim] -> float32 [B, action_dim]


@dataclass
class ExportResult:
    out: Path
    sidecar: Path
    format: str
    max_abs_diff: float
    observations: int  # how many observations the verification compared on


def export_policy(loaded: LoadedPolicy, fmt: str, out: Path | None = None) -> ExportResult:
    """Write `loaded.policy` as `fmt` to `out` (default: `<run_dir>/export/policy.<suffix>`) with its
    sidecar, after verifying the written file against the in-process policy."""
    fmt = check_format(fmt)
    if fmt == "onnx":
        require_onnx()
    out = out if out is not None else default_export_path(loaded.checkpoint, fmt)
    sidecar = sidecar_path(out)
    temp = prepare_output(out)  # fail on an unwritable path now, not after the export
    sidecar_temp: Path | None = None
    try:
        sidecar_temp = prepare_output(sidecar)
        env = make_env(loaded.config.env)
        try:
            obs = sample_observations(env, VERIFY_OBSERVATIONS, loaded.config.eval.seed)
            obs_space = env.observation_space
        finally:
            env.close()
        WRITERS[fmt](loaded.policy, obs, temp)
        diff = max_abs_difference(load_exported(temp, fmt), loaded.policy, obs)
        if not diff <= TOLERANCE:  # NaN fails too
            raise ExportError(
                f"verification failed: the exported {fmt} policy differs from the checkpoint's by up to {diff:.3g} "
                f"(tolerance {TOLERANCE:g}) on {len(obs)} observations from {loaded.config.env.id}; nothing was written to {out}"
            )
        metadata = describe_export(loaded, fmt, out, obs_space, diff, len(obs))
        if fmt == "onnx":
            metadata = {"format": fmt, "opset": _onnx_opset(temp), **metadata}
        sidecar_temp.write_text(_to_json(metadata) + "\n")
    except BaseException:
        temp.unlink(missing_ok=True)
        if sidecar_temp is not None:
            sidecar_temp.unlink(missing_ok=True)
        raise
    commit_output(temp, out)
    commit_output(sidecar_temp, sidecar)
    return ExportResult(out=out, sidecar=sidecar, format=fmt, max_abs_diff=diff, observations=len(obs))


def check_format(fmt: str) -> str:
    name = fmt.strip().lower()
    if name not in FORMATS:
        raise OutputError(f"unknown export format '{fmt}'; choose one of: {', '.join(FORMATS)}")
    return name


def require_onnx() -> None:
    missing = []
    for module in ONNX_MODULES:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise MissingExtraError(f"ONNX export needs {', '.join(ONNX_MODULES)} (missing: {', '.join(missing)}): pip install 'ddpg-cli[export]'")


def default_export_path(checkpoint: Path, fmt: str) -> Path:
    """`<run_dir>/export/policy.onnx` (or `.pt`); beside the file when it is not in a run dir."""
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT_DIR else checkpoint.parent
    return run_dir / EXPORT_DIR / f"policy{FORMATS[fmt]}"


def sidecar_path(out: Path) -> Path:
    return out.with_name(out.name + ".json")


def sample_observations(env: gym.Env, count: int, seed: int) -> torch.Tensor:
    """float32 [count, obs_dim]: three quarters seen along a seeded random-action rollout (the
    observations a deployed policy meets), the rest drawn from the observation space (its corners)."""
    from_space = count // 4
    env.action_space.seed(seed)
    env.observation_space.seed(seed)
    rows: list[np.ndarray] = []
    obs, _ = env.reset(seed=seed)
    episode = 0
    while len(rows) < count - from_space:
        rows.append(np.asarray(obs, dtype=np.float32))
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=seed + episode)
    rows += [np.asarray(env.observation_space.sample(), dtype=np.float32) for _ in range(from_space)]
    return torch.as_tensor(np.stack(rows))


@torch.no_grad()
def max_abs_difference(run_exported: RunExported, policy: DeployedPolicy, obs: torch.Tensor) -> float:
    """Largest |exported(obs) - policy(obs)| over the batch; infinite when the shapes disagree."""
    expected = policy(obs).numpy()
    try:
        got = np.asarray(run_exported(obs.numpy()))
    except Exception as exc:  # noqa: BLE001 - whatever the runtime raises, the export is unusable
        raise ExportError(f"verification failed: the exported policy does not run: {_first_line(exc)}") from None
    if got.shape != expected.shape:
        return math.inf
    return float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))


def load_exported(path: Path, fmt: str) -> RunExported:
    """Load an exported file the way a user would, with no code of ours inside it."""
    try:
        if fmt == "onnx":
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return lambda obs: session.run([OUTPUT_NAME], {INPUT_NAME: obs})[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"verification failed: the exported file {path} does not load: {_first_line(exc)}") from None

    def run(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(obs)).numpy()

    return run


def describe_export(loaded: LoadedPolicy, fmt: str, out: Path, obs_space: gym.Space, diff: float, observations: int) -> dict[str, Any]:
    """The sidecar: everything a deployer needs to feed the file and trust its output."""
    low, high = loaded.policy.low.tolist(), loaded.policy.high.tolist()
    obs_low = np.asarray(getattr(obs_space, "low", np.full(loaded.obs_dim, -np.inf))).reshape(-1)
    obs_high = np.asarray(getattr(obs_space, "high", np.full(loaded.obs_dim, np.inf))).reshape(-1)
    return {
        "format": fmt,
        "file": out.name,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": [None, loaded.obs_dim], "low": _finite_or_none(obs_low), "high": _finite_or_none(obs_high)},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None, loaded.action_dim], "low": low, "high": high},
        "normalize_obs": loaded.config.env.normalize_obs,
        "env_id": loaded.config.env.id,
        "env_kwargs": dict(loaded.config.env.kwargs),
        "max_episode_steps": loaded.config.env.max_episode_steps,
        "step": loaded.step,
        "checkpoint": str(loaded.checkpoint),
        "package": "ddpg-cli",
        "package_version": __version__,
        "torch_version": str(torch.__version__),
        "verification": {"observations": observations, "max_abs_diff": diff, "tolerance": TOLERANCE},
    }


def _write_onnx(policy: DeployedPolicy, example: torch.Tensor, path: Path) -> None:
    try:
        with _quiet_exporter():
            torch.onnx.export(
                policy,
                (example,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes={"obs": {0: torch.export.Dim("batch")}},
                dynamo=True,
                external_data=False,  # one self-contained file
                verbose=False,
            )
    except Exception as exc:  # noqa: BLE001 - the exporter's failures are many and deep
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {_first_line(exc)}") from None


def _write_torchscript(policy: DeployedPolicy, example: torch.Tensor, path: Path) -> None:
    try:
        with _quiet_exporter():  # torch 2.13 marks TorchScript deprecated; it still works and loads
            traced = torch.jit.trace(policy, example, check_trace=False)  # verified below, on our terms
            torch.jit.save(traced, str(path))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"TorchScript export failed: {type(exc).__name__}: {_first_line(exc)}") from None


WRITERS: dict[str, Callable[[DeployedPolicy, torch.Tensor, Path], None]] = {"onnx": _write_onnx, "torchscript": _write_torchscript}


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporters talk: warnings, log lines (e.g. about torchvision) and progress prints. Our
    stdout and stderr carry only our own lines."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _onnx_opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((int(entry.version) for entry in model.opset_import if entry.domain in ("", "ai.onnx")), None)


def _to_json(data: dict[str, Any]) -> str:
    """Indented JSON with each list of numbers on one line (shapes and bounds stay readable)."""
    text = json.dumps(data, indent=2)
    return re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]", lambda match: "[" + ", ".join(item.strip() for item in match.group(1).split(",")) + "]", text)


def _finite_or_none(values: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
