"""The training loop: act, step, store, update, log, evaluate, checkpoint.

Vocabulary (after Tianshou's trainer): the *agent* acts and learns; the *envs* are stepped together,
`num_envs` at a time; a *step* is one transition of one env, so `total_steps` counts transitions over
all envs; an *update phase* runs the gradient steps owed for the transitions collected since the last.

Exact resume: everything that the next transition depends on is in `last.pt`: networks, optimisers,
replay buffer, noise state, every RNG, and for each env the way its current episode began (its reset
seed, or its RNG state before the reset) plus the actions taken since. A resumed run rebuilds each env
by replaying those actions, so it continues bit for bit where the interrupted run stopped.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ddpg_cli import checkpoint as ckpt
from ddpg_cli.agent import DDPGAgent, compiler_missing, resolve_device
from ddpg_cli.config import Config, config_to_dict, config_to_yaml
from ddpg_cli.envs import env_rng_state, make_env, make_vector_env, scale_action, set_env_rng_state
from ddpg_cli.errors import CheckpointError, ConfigError, OutputError, TrainingDiverged
from ddpg_cli.evaluate import EvalResult, evaluate
from ddpg_cli.logger import RunLogger
from ddpg_cli.networks import DeployedPolicy
from ddpg_cli.noise import make_noise, sigma_at
from ddpg_cli.replay_buffer import ReplayBuffer, row_parts
from ddpg_cli.reproducibility import conditions

# Each source of randomness gets its own stream, derived from the config's seed.
NOISE_SEED_OFFSET = 1
WARMUP_SEED_OFFSET = 2
SAMPLER_SEED_OFFSET = 3


class TrainView(Protocol):
    """What the loop reports to (the CLI's Rich progress bar, or nothing in tests)."""

    def start(self, total_steps: int, step: int) -> None: ...
    def update(self, step: int, steps_per_second: float, last_return: float | None, last_eval: float | None) -> None: ...
    def message(self, text: str) -> None: ...
    def stop(self) -> None: ...


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    wall_seconds: float
    best_eval: float | None
    final_eval: EvalResult | None
    stopped_by: str | None = None  # "SIGINT" or "SIGTERM" when a stop signal ended the run early
    exact_resume: bool = True


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


class StopSignals:
    """Turns SIGINT/SIGTERM into a request the loop honours at the end of the current step."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        # A second signal (say, an impatient second Ctrl-C) while saving changes nothing: the save
        # finishes, and the checkpoint is written atomically either way.
        if self.received is None:
            self.received = signal.Signals(signum).name


def train(config: Config, run_dir: Path, resume: dict[str, Any] | None = None, view: TrainView | None = None) -> TrainResult:
    """Train from scratch into `run_dir`, or continue the run whose `last` checkpoint is `resume`."""
    started = time.monotonic()
    device = resolve_device(config.train.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device is 'cuda' but no CUDA device is available to this torch build ({torch.__version__})")
    if config.train.compile and device.type == "cpu" and (why := compiler_missing()):
        raise ConfigError(f"train.compile needs a C++ compiler for torch.compile on the CPU ({why}); install g++ or set train.compile: false")
    set_torch_threads(config)
    seed_everything(config.seed)

    # --- build: envs, agent, buffer, noise -------------------------------------------------------
    num_envs = config.train.num_envs
    envs = make_vector_env(config.env, num_envs)
    eval_env = make_env(config.env)
    obs_dim = envs.single_observation_space.shape[0]
    action_dim = envs.single_action_space.shape[0]
    low = envs.single_action_space.low.astype(np.float32)
    high = envs.single_action_space.high.astype(np.float32)
    check_buffer_fits(config, obs_dim, action_dim, device)

    agent = DDPGAgent(obs_dim, action_dim, config.agent, config.env.normalize_obs, device, config.train.precision, config.train.compile)
    buffer = ReplayBuffer(config.agent.buffer_size, obs_dim, action_dim, device)
    noise = make_noise(config.noise, num_envs, action_dim, config.seed + NOISE_SEED_OFFSET)
    warmup_rng = np.random.Generator(np.random.PCG64(config.seed + WARMUP_SEED_OFFSET))
    sampler = torch.Generator(device=device).manual_seed(config.seed + SAMPLER_SEED_OFFSET)
    policy = DeployedPolicy(agent.normalizer, agent.actor, torch.from_numpy(low), torch.from_numpy(high)).to(device)

    counters = Counters()
    exact = True
    if resume is None:
        seeds = [config.seed + i for i in range(num_envs)]
        obs, _ = envs.reset(seed=seeds)
        episodes = [EpisodeRecord(start={"seed": s}) for s in seeds]
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            _write_text(run_dir / "config.yaml", config_to_yaml(config))
        except OSError as exc:
            raise OutputError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}") from None
    else:
        counters, obs, episodes, exact = restore(resume, envs, agent, buffer, noise, warmup_rng, sampler)
        for directory in (run_dir, ckpt.checkpoint_dir(run_dir)):  # what a kill -9 left half-written
            ckpt.remove_stale_temp_files(directory)
    last_saved_step = counters.step if resume is not None else None  # named when training diverges

    logger = RunLogger(run_dir, config.logging.tensorboard, purge_step=counters.step if resume else None)
    if resume is None:
        logger.text("config", "```yaml\n" + config_to_yaml(config) + "\n```")

    def save_last(with_buffer: bool = True) -> None:
        nonlocal last_saved_step
        if not agent.all_finite():
            return  # never replace a good checkpoint with a diverged one
        counters.wall_seconds = wall_before + (time.monotonic() - session_start)
        state = training_state(config, counters, agent, buffer if with_buffer else None, noise, warmup_rng, sampler, episodes, low, high)
        ckpt.save_checkpoint(state, ckpt.checkpoint_dir(run_dir) / ckpt.LAST)
        last_saved_step = counters.step

    def save_snapshot(name: str) -> None:
        if agent.all_finite():
            ckpt.save_checkpoint(training_state(config, counters, agent, None, None, None, None, None, low, high), ckpt.checkpoint_dir(run_dir) / name)

    def run_evaluation() -> EvalResult:
        result = evaluate(policy, eval_env, config.eval.episodes, config.eval.seed, device)
        counters.last_eval = result.mean
        logger.scalars("eval", {"return": result.mean, "return_std": result.std, "length": float(np.mean(result.lengths))}, counters.step)
        if counters.best_eval is None or result.mean > counters.best_eval:
            counters.best_eval = result.mean
            save_snapshot(ckpt.BEST)
        if view:
            view.message(f"step {counters.step:>9,}  eval return {result.mean:9.2f} ± {result.std:.2f}  (best {counters.best_eval:.2f})")
        return result

    total = config.train.total_steps
    learning_starts = config.train.learning_starts
    check_every_step = device.type == "cpu"  # a finiteness check costs a host sync; on CPU it is free
    session_start = time.monotonic()
    wall_before = counters.wall_seconds
    sps_clock, sps_step = time.monotonic(), counters.step
    session_first_step, next_view_update = counters.step, 0.0
    final_eval: EvalResult | None = None
    policy_action: np.ndarray | None = None  # mu(obs) for the coming step, when the last update computed it
    if view:
        view.start(total, counters.step)

    try:
        with StopSignals() as stop:
            while counters.step < total and stop.received is None:
                previous_step = counters.step

                # --- act: uniform random during warm-up, then mu(s) + noise, clipped to [-1, 1] ----
                if counters.step < learning_starts:
                    action = warmup_rng.uniform(-1.0, 1.0, size=(num_envs, action_dim)).astype(np.float32)
                else:
                    noise.sigma = sigma_at(counters.step, config.noise)
                    if policy_action is None:  # no update ran at the end of the last step to compute it
                        policy_action = agent.act(torch.as_tensor(obs, dtype=torch.float32, device=device)).cpu().numpy()
                    action = policy_action + noise()
                    policy_action = None
                    np.clip(action, -1.0, 1.0, out=action)
                    if not np.all(np.isfinite(action)):
                        raise TrainingDiverged(f"step {counters.step}: the actor produced a non-finite action ({_first_non_finite(action)})")

                # --- step the envs and store the transitions ------------------------------------
                env_action = np.clip(scale_action(action, low, high), low, high)
                next_obs, reward, terminated, truncated, _ = envs.step(env_action)
                # One row per env, laid out as the buffer stores it: one array to check, one copy to store.
                transitions = np.concatenate(row_parts(obs, action, reward, next_obs, terminated), axis=1, dtype=np.float32)
                if not np.isfinite(transitions).all():
                    raise TrainingDiverged(f"step {counters.step}: {_non_finite_env_output(obs, next_obs, reward)}")
                buffer.add_rows(torch.from_numpy(transitions).to(device))
                if agent.normalizer.enabled:
                    agent.normalizer.update(torch.as_tensor(next_obs, device=device))
                for i, episode in enumerate(episodes):
                    episode.actions.append(action[i].copy())
                    episode.episode_return += float(reward[i])
                counters.step += num_envs

                # --- finished episodes: log them and reset those envs (never crossing a boundary) -
                done = terminated | truncated
                if done.any():
                    for i in np.flatnonzero(done):
                        counters.episodes += 1
                        counters.last_return = episodes[i].episode_return
                        logger.scalars("episode", {"return": episodes[i].episode_return, "length": len(episodes[i].actions)}, counters.step)
                        episodes[i] = EpisodeRecord(start={"rng": env_rng_state(envs.envs[i])})
                    noise.reset(done)
                    reset_obs, _ = envs.reset(options={"reset_mask": done})
                    if not np.all(np.isfinite(reset_obs[done])):
                        raise TrainingDiverged(f"step {counters.step}: the env's reset returned a non-finite observation ({_first_non_finite(reset_obs[done])})")
                    next_obs = np.where(done[:, None], reset_obs, next_obs)
                obs = next_obs

                # --- learn: the gradient steps owed since the last update phase -----------------
                if counters.step > learning_starts and len(buffer) >= config.agent.batch_size:
                    counters.pending_updates += min(num_envs, counters.step - learning_starts)
                    if counters.pending_updates >= config.train.update_every:
                        # Each update also returns mu(obs) from the actor it leaves: the last one is the
                        # next step's action, as if `agent.act` ran then (passed to every update, so that
                        # a compiled update keeps one graph).
                        obs_tensor = torch.as_tensor(obs, dtype=torch.float32, device=device)
                        for _ in range(counters.pending_updates * config.train.updates_per_step):
                            mu = agent.update(buffer.sample(config.agent.batch_size, sampler), act_on=obs_tensor)
                        policy_action = mu.cpu().numpy()
                        counters.pending_updates = 0
                        if check_every_step and not agent.all_finite():
                            raise TrainingDiverged(f"step {counters.step}: the update produced a non-finite {agent.non_finite_metrics()}")

                # --- log, evaluate, checkpoint when the step count crosses their intervals ------
                if crossed(previous_step, counters.step, config.logging.every):
                    if not agent.all_finite():
                        raise TrainingDiverged(f"by step {counters.step}: the updates produced a non-finite {agent.non_finite_metrics()}")
                    now = time.monotonic()
                    sps = (counters.step - sps_step) / max(now - sps_clock, 1e-9)
                    sps_clock, sps_step = now, counters.step
                    logger.scalars("train", {**agent.pop_metrics(), "steps_per_second": sps, "noise_sigma": noise.sigma}, counters.step)
                if crossed(previous_step, counters.step, config.eval.every) and counters.step < total:
                    run_evaluation()
                if crossed(previous_step, counters.step, config.checkpoint.every) and counters.step < total:
                    save_snapshot(ckpt.periodic_name(counters.step))
                    ckpt.prune_periodic(run_dir, config.checkpoint.keep)
                    save_last(with_buffer=should_save_buffer(config, buffer))
                if view and time.monotonic() >= next_view_update:  # redraw a few times a second, not every step
                    elapsed = time.monotonic() - session_start
                    view.update(counters.step, (counters.step - session_first_step) / max(elapsed, 1e-9), counters.last_return, counters.last_eval)
                    next_view_update = time.monotonic() + 0.2

            if stop.received is not None and counters.step < total:
                save_last(with_buffer=should_save_buffer(config, buffer))
                return _finish(run_dir, counters, None, stop.received, exact, logger, view, envs, eval_env)

            # Still under StopSignals: a signal now (every step is done) lets the final save finish.
            final_eval = run_evaluation()
            save_last(with_buffer=should_save_buffer(config, buffer))
            summary = {
                "steps": counters.step,
                "wall_s": counters.wall_seconds,
                "steps_per_second": counters.step / max(counters.wall_seconds, 1e-9),
                "episodes": counters.episodes,
                "final_eval": final_eval.as_dict(),
                "best_eval": counters.best_eval,
                "exact_resume": exact,
            }
            _write_text(run_dir / "summary.json", json.dumps(summary, indent=2))
            return _finish(run_dir, counters, final_eval, None, exact, logger, view, envs, eval_env)
    except BaseException as exc:
        logger.close()
        envs.close()
        eval_env.close()
        if view:
            view.stop()
        if isinstance(exc, TrainingDiverged):  # nothing diverged was saved: say what is left to go back to
            last = ckpt.checkpoint_dir(run_dir) / ckpt.LAST
            kept = f"the last good checkpoint (step {last_saved_step:,}) is kept: {last}" if last_saved_step is not None else "no checkpoint had been saved yet"
            raise TrainingDiverged(f"{exc}; {kept}") from None
        raise


# --- helpers ---------------------------------------------------------------------------------------


def _non_finite_env_output(obs: np.ndarray, next_obs: np.ndarray, reward: np.ndarray) -> str:
    """Which of the env's outputs in a transition is NaN or infinite (the actions were checked before)."""
    for what, values in (("observation", next_obs), ("reward", reward), ("observation", obs)):
        if not np.all(np.isfinite(values)):
            return f"the env returned a non-finite {what} ({_first_non_finite(values)})"
    return "the env returned a non-finite value (one too large for float32)"


def _first_non_finite(values: np.ndarray) -> str:
    bad = np.asarray(values)[~np.isfinite(values)]
    return str(bad.flat[0]) if bad.size else "?"


def set_torch_threads(config: Config) -> None:
    """Apply `train.torch_threads` (null keeps torch's default). CPU results can depend on the count."""
    if config.train.torch_threads is not None:
        torch.set_num_threads(config.train.torch_threads)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def crossed(previous_step: int, step: int, every: int) -> bool:
    """True when a multiple of `every` lies in (previous_step, step]; `every` 0 means never."""
    return every > 0 and step // every > previous_step // every


def network_bytes(config: Config, obs_dim: int, action_dim: int) -> int:
    """Both networks in float32, five times over: online, target, gradient and Adam's two moments."""

    def parameters(sizes: list[int]) -> int:
        return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:]))

    actor = parameters([obs_dim, *config.agent.actor_hidden, action_dim])
    critic = parameters([obs_dim + action_dim, *config.agent.critic_hidden, 1])
    return 5 * 4 * (actor + critic)


def check_buffer_fits(config: Config, obs_dim: int, action_dim: int, device: torch.device) -> None:
    """Refuse, before allocating anything, a buffer or networks this machine cannot hold (an absurd size
    would otherwise end in the kernel's OOM killer, with no message at all)."""
    needed = ReplayBuffer.bytes_needed(config.agent.buffer_size, obs_dim, action_dim)
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    networks = network_bytes(config, obs_dim, action_dim)
    if networks > 0.8 * physical:  # the networks are built in host memory first, whatever the device
        raise ConfigError(
            f"agent.actor_hidden {_widths(config.agent.actor_hidden)} and agent.critic_hidden {_widths(config.agent.critic_hidden)} "
            f"need {networks / 2**30:.1f} GiB (with targets, gradients and Adam state); this machine has {physical / 2**30:.1f} GiB"
        )
    if device.type != "cpu":
        return  # the CUDA allocator reports an out-of-memory clearly enough
    if needed > 0.8 * physical:
        raise ConfigError(
            f"agent.buffer_size {config.agent.buffer_size:,} needs {needed / 2**30:.1f} GiB for this env "
            f"({obs_dim} obs, {action_dim} action dims); this machine has {physical / 2**30:.1f} GiB"
        )


def _widths(hidden: list[int]) -> str:
    return str(hidden) if len(hidden) <= 4 else f"[{hidden[0]}, {hidden[1]}, ... {len(hidden)} layers]"


def should_save_buffer(config: Config, buffer: ReplayBuffer) -> bool:
    mode = config.checkpoint.save_buffer
    if mode != "auto":
        return mode == "always"
    filled_bytes = ReplayBuffer.bytes_needed(len(buffer), buffer.obs.shape[1], buffer.action.shape[1])
    return filled_bytes <= config.checkpoint.buffer_limit_mb * 2**20


def training_state(
    config: Config,
    counters: Counters,
    agent: DDPGAgent,
    buffer: ReplayBuffer | None,
    noise: Any,
    warmup_rng: np.random.Generator | None,
    sampler: torch.Generator | None,
    episodes: list[EpisodeRecord] | None,
    action_low: np.ndarray,
    action_high: np.ndarray,
) -> dict[str, Any]:
    """The checkpoint payload. Snapshots (best, periodic) pass None for the resume-only parts."""
    state: dict[str, Any] = {
        "config": config_to_dict(config),
        "counters": {
            "step": counters.step,
            "episodes": counters.episodes,
            "pending_updates": counters.pending_updates,
            "wall_seconds": counters.wall_seconds,
            "last_return": counters.last_return,
            "last_eval": counters.last_eval,
            "best_eval": counters.best_eval,
        },
        "agent": agent.state_dict(),
        "reproducibility": conditions(),  # what a bitwise-equal resume depends on besides this file
        "spaces": {
            "env_id": config.env.id,
            "obs_dim": agent.obs_dim,
            "action_dim": agent.action_dim,
            "action_low": action_low.tolist(),
            "action_high": action_high.tolist(),
        },
        "resume": None,
    }
    if noise is not None and warmup_rng is not None and sampler is not None and episodes is not None:
        state["resume"] = {
            "noise": noise.state_dict(),
            "rng": {
                "python": random.getstate(),
                "numpy_global": _numpy_global_state(),
                "torch": torch.get_rng_state(),
                "warmup": warmup_rng.bit_generator.state,
                "sampler": sampler.get_state().cpu(),
            },
            "episodes": [episode.to_state(agent.action_dim) for episode in episodes],
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
    payload: dict[str, Any],
    envs: Any,
    agent: DDPGAgent,
    buffer: ReplayBuffer,
    noise: Any,
    warmup_rng: np.random.Generator,
    sampler: torch.Generator,
) -> tuple[Counters, np.ndarray, list[EpisodeRecord], bool]:
    """Put every piece back as it was when `last` was written. Returns (counters, obs, episodes, exact)."""
    resume_state = payload.get("resume")
    if resume_state is None:
        raise CheckpointError("this checkpoint is a snapshot without the training state; resume from checkpoints/last.pt")
    try:
        agent.load_state_dict(payload["agent"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"the checkpoint's networks do not match its config: {str(exc).splitlines()[0]}") from None
    counters = Counters(**payload["counters"])
    noise.load_state_dict(resume_state["noise"])
    rng = resume_state["rng"]
    random.setstate(rng["python"])
    _set_numpy_global_state(rng["numpy_global"])
    torch.set_rng_state(rng["torch"])
    warmup_rng.bit_generator.state = rng["warmup"]
    sampler.set_state(rng["sampler"].to(sampler.device) if sampler.device.type == "cpu" else rng["sampler"])

    exact = True
    if resume_state["replay_buffer"] is not None:
        buffer.load_state_dict(resume_state["replay_buffer"])
    else:
        exact = False  # the CLI warns before training starts

    # Rebuild each env: begin its episode as it began, then replay the actions taken since.
    saved_episodes = resume_state["episodes"]
    envs.reset(seed=[int(e["start"].get("seed", 0)) for e in saved_episodes])
    low, high = envs.single_action_space.low, envs.single_action_space.high
    observations, episodes = [], []
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
        episodes.append(EpisodeRecord(start=start, actions=list(actions), episode_return=float(saved["episode_return"])))
    if not exact:
        counters.pending_updates = 0
    return counters, np.stack(observations), episodes, exact


def _finish(run_dir: Path, counters: Counters, final_eval: EvalResult | None, stopped_by: str | None, exact: bool, logger: RunLogger, view: TrainView | None, *envs: Any) -> TrainResult:
    logger.close()
    for env in envs:
        env.close()
    if view:
        view.stop()
    return TrainResult(run_dir, counters.step, counters.wall_seconds, counters.best_eval, final_eval, stopped_by, exact)


def _write_text(path: Path, text: str) -> None:
    """Atomic, like the checkpoints: a reader never sees half a file."""
    temp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    temp.write_text(text, encoding="utf-8")
    os.replace(temp, path)


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
