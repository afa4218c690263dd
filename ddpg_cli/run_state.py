"""A run's resumable state: the checkpoint payload, and putting it back.

Exact resume: everything that the next transition depends on is in `last.pt`: networks, optimisers,
replay buffer, noise state, every RNG, and for each env the way its current episode began (its reset
seed, or its RNG state before the reset) plus the actions taken since. A resumed run rebuilds each env
by replaying those actions, so it continues bit for bit where the interrupted run stopped.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ddpg_cli import checkpoint as ckpt
from ddpg_cli import reproducibility
from ddpg_cli.agent import DDPGAgent
from ddpg_cli.averaging import ActorAverage
from ddpg_cli.config import Config, apply_override, build_config, config_to_dict
from ddpg_cli.envs import scale_action, set_env_rng_state
from ddpg_cli.errors import CheckpointError, ConfigError, OutputError, RunBusyError
from ddpg_cli.hardware import cpu_has_fast_bf16
from ddpg_cli.layout import LOCK_FILE, holds_checkpoints
from ddpg_cli.precision import PrecisionChoice, plan_compute
from ddpg_cli.resources import ThreadPlan
from ddpg_cli.replay_buffer import ReplayBuffer


@dataclass
class Counters:
    step: int = 0  # env transitions so far, over all envs
    episodes: int = 0
    pending_updates: int = 0  # transitions collected since the last update phase
    wall_seconds: float = 0.0  # training time over all sessions of this run
    last_return: float | None = None
    last_eval: float | None = None
    best_eval: float | None = None


@dataclass
class EpisodeRecord:
    """How one env's current episode began and what was done in it: enough to rebuild the env."""

    start: dict[str, Any]  # {"seed": int} or {"rng": bit-generator state before the reset}
    actions: list[np.ndarray] = field(default_factory=list)  # normalised actions taken so far
    episode_return: float = 0.0

    def to_state(self, action_dim: int) -> dict[str, Any]:
        actions = torch.from_numpy(np.stack(self.actions)) if self.actions else torch.zeros((0, action_dim))
        return {"start": self.start, "actions": actions, "episode_return": self.episode_return}


@dataclass
class ResumeParts:
    """What only `last` holds, besides the agent: the state the next transition depends on."""

    noise: Any
    warmup_rng: np.random.Generator
    sampler: torch.Generator
    episodes: list[EpisodeRecord]


def checkpoint_payload(
    config: Config,
    counters: Counters,
    agent: DDPGAgent,
    action_low: np.ndarray,
    action_high: np.ndarray,
    resume: ResumeParts | None = None,
    buffer: ReplayBuffer | None = None,
    average: ActorAverage | None = None,
) -> dict[str, Any]:
    """The checkpoint payload. Snapshots (best, periodic) have no `resume` part; `last` has one, with
    the replay buffer unless it is too large to save (or `checkpoint.save_buffer` is never). With
    `eval.average_last` above 1, every checkpoint holds the window of actor weights whose mean is the
    policy (`policy_average`): what `ddpg eval` loads, and what a resume continues."""
    state: dict[str, Any] = {
        "config": config_to_dict(config),
        "counters": asdict(counters),
        "agent": agent.state_dict(),
        "policy_average": average.state_dict() if average is not None else None,
        "precision": agent.precision,  # what train.precision resolved to: a resume keeps it
        "reproducibility": reproducibility.conditions(),  # what a bitwise-equal resume depends on besides this file
        "spaces": {
            "env_id": config.env.id,
            "obs_dim": agent.obs_dim,
            "action_dim": agent.action_dim,
            "action_low": action_low.tolist(),
            "action_high": action_high.tolist(),
        },
        "resume": None,
    }
    if resume is not None:
        state["resume"] = {
            "noise": resume.noise.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy_global": _numpy_global_state(),
                "torch": torch.get_rng_state(),
                "warmup": resume.warmup_rng.bit_generator.state,
                "sampler": resume.sampler.get_state().cpu(),
            },
            "episodes": [episode.to_state(agent.action_dim) for episode in resume.episodes],
            "replay_buffer": buffer.state_dict() if buffer is not None else None,
        }
    return state


def _numpy_global_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_numpy_global_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["pos"], state["has_gauss"], state["cached"]))


def restore(
    payload: dict[str, Any], envs: Any, agent: DDPGAgent, buffer: ReplayBuffer, parts: ResumeParts, average: ActorAverage | None = None
) -> tuple[Counters, np.ndarray, bool]:
    """Put every piece back as it was when `last` was written: the agent, the actor average, the buffer
    and `parts` (in place), every RNG, and each env replayed to where it was. Returns (counters, obs, exact)."""
    resume_state = payload.get("resume")
    if resume_state is None:
        raise CheckpointError("this checkpoint is a snapshot without the training state; resume from checkpoints/last.pt")
    try:
        agent.load_state_dict(payload["agent"])
        if average is not None:
            average.load_state_dict(payload.get("policy_average") or {"snapshots": []})
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint's networks do not match its config: {str(exc).splitlines()[0]}") from None
    counters = Counters(**payload["counters"])
    parts.noise.load_state_dict(resume_state["noise"])
    rng = resume_state["rng"]
    random.setstate(rng["python"])
    _set_numpy_global_state(rng["numpy_global"])
    torch.set_rng_state(rng["torch"])
    parts.warmup_rng.bit_generator.state = rng["warmup"]
    sampler = parts.sampler
    sampler.set_state(rng["sampler"].to(sampler.device) if sampler.device.type == "cpu" else rng["sampler"])

    exact = resume_state["replay_buffer"] is not None  # without it the CLI warns before training starts
    if exact:
        buffer.load_state_dict(resume_state["replay_buffer"])
    else:
        counters.pending_updates = 0

    # Rebuild each env: begin its episode as it began, then replay the actions taken since.
    saved_episodes = resume_state["episodes"]
    envs.reset(seed=[int(e["start"].get("seed", 0)) for e in saved_episodes])
    low, high = envs.single_action_space.low, envs.single_action_space.high
    observations = []
    parts.episodes.clear()
    for env, saved in zip(envs.envs, saved_episodes):
        start = saved["start"]
        if "seed" in start:
            obs, _ = env.reset(seed=int(start["seed"]))
        else:
            set_env_rng_state(env, start["rng"])
            obs, _ = env.reset()
        actions = saved["actions"].numpy()
        for action in actions:
            obs, _, terminated, truncated, _ = env.step(np.clip(scale_action(action, low, high), low, high))
            if terminated or truncated:
                raise CheckpointError("the env did not replay its episode as recorded (is it deterministic given its seed?)")
        observations.append(np.asarray(obs, dtype=np.float32))
        parts.episodes.append(EpisodeRecord(start=start, actions=list(actions), episode_return=float(saved["episode_return"])))
    return counters, np.stack(observations), exact


def load_resume(run_dir: Path) -> dict[str, Any]:
    """The `last` checkpoint of a run directory, with a clear error when it is not a run."""
    if not run_dir.is_dir():
        raise CheckpointError(f"cannot resume: {run_dir} is not a directory")
    last = ckpt.checkpoint_dir(run_dir) / ckpt.LAST
    if not last.is_file():
        raise CheckpointError(f"cannot resume: {run_dir} is not a ddpg-cli run directory (no {ckpt.CHECKPOINT_DIR}/{ckpt.LAST})")
    payload = ckpt.load_checkpoint(last)
    missing = [key for key in ("config", "counters", "agent") if not isinstance(payload.get(key), dict)]
    if missing or not isinstance(payload["counters"].get("step"), int):
        raise CheckpointError(f"{last} is damaged or incomplete: no valid {', '.join(missing) or 'counters.step'}")
    return payload


# --- preparing a run: the rules every caller gets -------------------------------------------------

RESUMABLE_KEY = "train.total_steps"  # the one key a resume may change
NO_BUFFER_WARNING = ("this checkpoint holds no replay buffer (checkpoint.save_buffer is 'never', or the buffer exceeded checkpoint.buffer_limit_mb); "
                     "training resumes with an empty buffer, so the resume is NOT exact")  # fmt: skip


@dataclass
class PreparedRun:
    """A run ready to train: fresh (`resume` None) or continuing from its `last` checkpoint. What the
    caller should tell the user comes as data: `warnings` (one line each), and `finished` when a resumed
    run has already reached its steps (then there is nothing to train)."""

    config: Config
    run_dir: Path
    threads: ThreadPlan | None
    resume: dict[str, Any] | None = None  # the `last` checkpoint's payload
    warnings: list[str] = field(default_factory=list)
    finished: str | None = None
    precision: PrecisionChoice | None = None  # what train.precision resolved to (a resume keeps its own)


def prepare_fresh(config: Config, run_dir: Path, announce: Callable[[], None] | None = None) -> PreparedRun:
    """A new run in `run_dir`, which must not hold one already. `announce` is called before the
    precision choice times the update (once per machine and network size; see `precision`)."""
    if holds_checkpoints(run_dir):
        raise ConfigError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose another --run-dir")
    threads, precision = plan_compute(config, announce=announce)
    return PreparedRun(config, run_dir, threads, warnings=_precision_warnings(config, precision), precision=precision)


def _precision_warnings(config: Config, precision: PrecisionChoice) -> list[str]:
    if precision.precision == "bf16" and config.train.device != "cuda" and not cpu_has_fast_bf16():
        return ["train.precision is bf16 but this CPU has no native bfloat16 (AVX512-BF16 or AMX); expect it to be much slower than fp32"]
    return []


def prepare_resume(run_dir: Path, overrides: Sequence[str] = ()) -> PreparedRun:
    """The run in `run_dir`, to continue with its own config; only `train.total_steps` may change
    (`--set train.total_steps=N` in `overrides`). The thread count is set before the conditions are
    compared with the checkpoint's, as training will set it."""
    payload = load_resume(run_dir)
    data = config_to_dict(build_config(payload["config"]))
    for assignment in overrides:
        if assignment.partition("=")[0].strip() != RESUMABLE_KEY:
            raise ConfigError(f"--set {assignment.partition('=')[0]}: only {RESUMABLE_KEY} can change when resuming")
        apply_override(data, assignment)
    config = build_config(data)
    prepared = PreparedRun(config, run_dir, None, payload)
    if payload.get("resume") and payload["resume"]["replay_buffer"] is None:
        prepared.warnings.append(NO_BUFFER_WARNING)
    step, total = payload["counters"]["step"], config.train.total_steps
    if step >= total:
        prepared.finished = f"{run_dir} already finished {step:,} of {total:,} steps; raise them with --set {RESUMABLE_KEY}=N"
        return prepared
    prepared.threads, prepared.precision = threads, precision = plan_compute(config, payload)
    torch.set_num_threads(threads.threads)  # as training will, so that the comparison sees the count
    ignore = {"torch_threads"} if threads.adaptive else set()  # a count that cannot change the numbers
    if changed := reproducibility.resume_warning(payload.get("reproducibility"), reproducibility.conditions(), ignore):
        prepared.warnings.append(changed)
    prepared.warnings += _precision_warnings(config, precision)
    return prepared


# --- one trainer per run dir -----------------------------------------------------------------------


class RunLock:
    """RUN/.lock, held while a process trains the run: a second process training the same run dir
    (two `--resume`s, a sweep resumed twice) would interleave their checkpoints. It is an flock, so the
    kernel releases it however the holder ends, kill -9 included. Where there is no flock (Windows),
    nothing is held."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._handle: Any = None

    def acquire(self) -> None:
        """Create the run dir if needed and take the lock, or raise RunBusyError."""
        try:
            import fcntl
        except ImportError:
            return
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.run_dir / LOCK_FILE, "a+", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write the run directory {self.run_dir}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise RunBusyError(f"{self.run_dir} is being trained by another process (pid {holder}); wait for it or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            import fcntl

            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def run_is_locked(run_dir: Path) -> bool:
    """True while some process holds the run's lock (is training it)."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        handle = open(run_dir / LOCK_FILE, encoding="utf-8")
    except OSError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
