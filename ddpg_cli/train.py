"""The training loop: collect, learn, evaluate, checkpoint.

Vocabulary (after Tianshou's trainer): the *agent* acts and learns; the *envs* are stepped together,
`num_envs` at a time; a *step* is one transition of one env, so `total_steps` counts transitions over
all envs; an *update phase* runs the gradient steps owed for the transitions collected since the last.

`train` is the loop and reads top to bottom. `Run` holds what one run owns while it trains (envs,
agent, buffer, noise, RNGs, counters) and carries out each stage. Building and restoring the
checkpoint payload live in `run_state`; memory and CPU checks in `resources`. A `TrainObserver` sees
the run's progress and each evaluation, and can stop the run after one (a tuner's pruning).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddpg_cli import checkpoint as ckpt
from ddpg_cli import reproducibility
from ddpg_cli.agent import DDPGAgent
from ddpg_cli.averaging import ActorAverage
from ddpg_cli.compiling import check_compute
from ddpg_cli.config import Config, config_to_yaml
from ddpg_cli.envs import env_rng_state, make_env, make_vector_env, scale_action
from ddpg_cli.errors import OutputError, TrainingDiverged
from ddpg_cli.eval_log import append_evaluation, truncate_after
from ddpg_cli.evaluate import EvalResult, evaluate
from ddpg_cli.layout import CONFIG_FILE, write_summary, write_text_atomic
from ddpg_cli.logger import RunLogger
from ddpg_cli.networks import DeployedPolicy
from ddpg_cli.noise import make_noise, sigma_at
from ddpg_cli.optim import lr_fraction_at
from ddpg_cli.phase_times import CHECKPOINTS, EVALUATION, FIRST_UPDATES, LEARNING, WARMUP, PhaseTimes
from ddpg_cli.precision import PrecisionChoice, plan_compute
from ddpg_cli.replay_buffer import ReplayBuffer, row_parts
from ddpg_cli.resources import CpuShare, ThreadPlan, check_buffer_fits, usable_cpus
from ddpg_cli.run_state import Counters, EpisodeRecord, ResumeParts, RunLock, checkpoint_payload, load_resume, restore

__all__ = ["train", "TrainObserver", "TrainResult", "load_resume"]

# Each source of randomness gets its own stream, derived from the config's seed.
NOISE_SEED_OFFSET = 1
WARMUP_SEED_OFFSET = 2
SAMPLER_SEED_OFFSET = 3
TARGET_NOISE_SEED_OFFSET = 4
OBSERVER_STOP = "observer"  # TrainResult.stopped_by when an observer ended the run after an evaluation


class TrainObserver:
    """What the loop tells the outside: the CLI's progress bar, a sweep's status, a tuner's pruner.
    Every method does nothing here; an observer overrides what it needs."""

    def start(self, total_steps: int, step: int) -> None:
        """Training starts (or resumes) at `step` of `total_steps`."""

    def progress(self, step: int, steps_per_second: float, last_return: float | None, last_eval: float | None) -> None:
        """A few times a second."""

    def on_evaluation(self, step: int, result: EvalResult, best: float) -> bool:
        """After each evaluation, the final one included; return False to stop the run there (it saves
        `last` first, so it can be resumed)."""
        return True

    def stop(self) -> None:
        """Training has ended, however it ended."""


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    wall_seconds: float
    best_eval: float | None
    final_eval: EvalResult | None
    stopped_by: str | None = None  # "SIGINT", "SIGTERM", or OBSERVER_STOP when the run ended early
    exact_resume: bool = True


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


def train(
    config: Config,
    run_dir: Path,
    resume: dict[str, Any] | None = None,
    observer: TrainObserver | None = None,
    threads: ThreadPlan | None = None,
    precision: PrecisionChoice | None = None,
) -> TrainResult:
    """Train from scratch into `run_dir`, or continue the run whose `last` checkpoint is `resume`.
    `threads` and `precision` default to what `plan_compute` plans for this config."""
    observer = observer or TrainObserver()
    if threads is None or precision is None:
        planned_threads, planned_precision = plan_compute(config, resume)
        threads, precision = threads or planned_threads, precision or planned_precision
    run = Run(config, run_dir, resume, threads, precision)
    counters, total = run.counters, config.train.total_steps
    stopped_by: str | None = None
    observer.start(total, counters.step)
    try:
        with StopSignals() as stop:
            while counters.step < total and stopped_by is None:
                previous_step = counters.step
                with run.times.phase(run.step_phase(), steps=config.train.num_envs):
                    run.collect()
                    run.learn()
                if crossed(previous_step, counters.step, config.logging.every):
                    run.log()
                if crossed(previous_step, counters.step, config.eval.every) and counters.step < total:
                    with run.times.phase(EVALUATION):
                        result = run.evaluate()
                    if not observer.on_evaluation(counters.step, result, counters.best_eval):
                        stopped_by = OBSERVER_STOP
                if crossed(previous_step, counters.step, config.checkpoint.every) and counters.step < total:
                    with run.times.phase(CHECKPOINTS):
                        run.save_periodic()
                if run.progress_due():
                    run.share_cpus()
                    observer.progress(counters.step, run.session_steps_per_second(), counters.last_return, counters.last_eval)
                stopped_by = stopped_by or stop.received

            if stopped_by is not None and counters.step < total:
                run.save_last()
                return run.finish(None, stopped_by)
            # Still under StopSignals: a signal now (every step is done) lets the final save finish.
            with run.times.phase(EVALUATION):
                final_eval = run.evaluate()
            observer.on_evaluation(counters.step, final_eval, counters.best_eval)
            run.save_last()
            run.write_summary(final_eval)
            return run.finish(final_eval, None)
    except TrainingDiverged as exc:  # nothing diverged was saved: say what is left to go back to
        run.close()
        raise TrainingDiverged(f"{exc}; {run.last_good_checkpoint()}") from None
    except BaseException:
        run.close()
        raise
    finally:
        observer.stop()


class Run:
    """One run while it trains: what it holds, and the stages the loop calls."""

    def __init__(self, config: Config, run_dir: Path, resume: dict[str, Any] | None, threads: ThreadPlan, precision: PrecisionChoice) -> None:
        self.config, self.run_dir = config, run_dir
        self.device = device = check_compute(config)
        torch.set_num_threads(threads.threads)
        self.cpu_share = CpuShare(usable_cpus(), threads.threads) if threads.adaptive else None
        seed_everything(config.seed)

        self.num_envs = num_envs = config.train.num_envs
        self.envs = make_vector_env(config.env, num_envs)
        obs_dim = self.envs.single_observation_space.shape[0]
        self.action_dim = action_dim = self.envs.single_action_space.shape[0]
        self.low = self.envs.single_action_space.low.astype(np.float32)
        self.high = self.envs.single_action_space.high.astype(np.float32)
        check_buffer_fits(config, obs_dim, action_dim, device)

        self.precision = precision
        self.agent = DDPGAgent(obs_dim, action_dim, config.agent, config.env.normalize_obs, device, self.precision.precision, config.train.compile,
                               seed=config.seed + TARGET_NOISE_SEED_OFFSET)  # fmt: skip
        self.buffer = ReplayBuffer(config.agent.buffer_size, obs_dim, action_dim, device)
        self.parts = ResumeParts(
            noise=make_noise(config.noise, num_envs, action_dim, config.seed + NOISE_SEED_OFFSET),
            warmup_rng=np.random.Generator(np.random.PCG64(config.seed + WARMUP_SEED_OFFSET)),
            sampler=torch.Generator(device=device).manual_seed(config.seed + SAMPLER_SEED_OFFSET),
            episodes=[],
        )
        # What is evaluated and saved as the policy: the live actor, or the mean of its last K evaluations' weights.
        self.average = ActorAverage(self.agent.actor, config.eval.average_last) if config.eval.average_last > 1 else None
        evaluated_actor = self.average.actor if self.average is not None else self.agent.actor
        self.policy = DeployedPolicy(self.agent.normalizer, evaluated_actor, torch.from_numpy(self.low), torch.from_numpy(self.high)).to(device)

        self.lock = RunLock(run_dir)
        self.lock.acquire()  # creates the run dir: nothing is written before the checks above pass
        try:
            self._open(resume)
        except BaseException:
            self.close()
            raise
        self.check_every_step = device.type == "cpu"  # a finiteness check costs a host sync; on CPU it is free
        self.policy_action: np.ndarray | None = None  # mu(obs) for the coming step, when the last update computed it
        self.session_start = self.sps_clock = time.monotonic()
        self.wall_before = self.counters.wall_seconds
        self.session_first_step = self.sps_step = self.counters.step
        self.next_progress = 0.0
        self.times = PhaseTimes()
        self.session_first_update = self.agent.critic_updates

    def _open(self, resume: dict[str, Any] | None) -> None:
        """Start the run dir afresh, or put back the state of the run being resumed."""
        config, run_dir = self.config, self.run_dir
        self.exact = True
        if resume is None:
            self.counters = Counters()
            seeds = [config.seed + i for i in range(self.num_envs)]
            self.obs, _ = self.envs.reset(seed=seeds)
            self.parts.episodes.extend(EpisodeRecord(start={"seed": s}) for s in seeds)
            evaluations_kept_to = -1  # a fresh run owns its evaluations file
        else:
            self.counters, self.obs, self.exact = restore(resume, self.envs, self.agent, self.buffer, self.parts, self.average)
            for directory in (run_dir, ckpt.checkpoint_dir(run_dir)):  # what a kill -9 left half-written
                ckpt.remove_stale_temp_files(directory)
            evaluations_kept_to = self.counters.step  # evaluations made after the checkpoint are redone
        try:  # config.yaml describes the run as it now goes (a resume may raise train.total_steps)
            write_text_atomic(run_dir / CONFIG_FILE, config_to_yaml(config))
            truncate_after(run_dir, evaluations_kept_to)
        except OSError as exc:
            raise OutputError(f"cannot write the run directory {run_dir}: {exc.strerror or exc}") from None
        self.last_saved_step = self.counters.step if resume is not None else None  # named when training diverges
        self.logger = RunLogger(run_dir, config.logging.tensorboard, purge_step=self.counters.step if resume else None)
        if resume is None:
            self.logger.text("config", "```yaml\n" + config_to_yaml(config) + "\n```")

    # --- collect: act, step the envs, store the transitions, reset finished episodes --------------

    def collect(self) -> None:
        counters, episodes = self.counters, self.parts.episodes
        action = self.act()
        env_action = np.clip(scale_action(action, self.low, self.high), self.low, self.high)
        next_obs, reward, terminated, truncated, _ = self.envs.step(env_action)
        # One row per env, laid out as the buffer stores it: one array to check, one copy to store.
        transitions = np.concatenate(row_parts(self.obs, action, reward, next_obs, terminated), axis=1, dtype=np.float32)
        if not np.isfinite(transitions).all():
            raise TrainingDiverged(f"step {counters.step}: {_non_finite_env_output(self.obs, next_obs, reward)}")
        self.buffer.add_rows(torch.from_numpy(transitions).to(self.device))
        if self.agent.normalizer.enabled:
            self.agent.normalizer.update(torch.as_tensor(next_obs, device=self.device))
        for i, episode in enumerate(episodes):
            episode.actions.append(action[i].copy())
            episode.episode_return += float(reward[i])
        counters.step += self.num_envs

        # Finished episodes: log them and reset those envs (no stored transition crosses a boundary).
        done = terminated | truncated
        if done.any():
            for i in np.flatnonzero(done):
                counters.episodes += 1
                counters.last_return = episodes[i].episode_return
                self.logger.scalars("episode", {"return": episodes[i].episode_return, "length": len(episodes[i].actions)}, counters.step)
                episodes[i] = EpisodeRecord(start={"rng": env_rng_state(self.envs.envs[i])})
            self.parts.noise.reset(done)
            reset_obs, _ = self.envs.reset(options={"reset_mask": done})
            if not np.all(np.isfinite(reset_obs[done])):
                raise TrainingDiverged(f"step {counters.step}: the env's reset returned a non-finite observation ({_first_non_finite(reset_obs[done])})")
            next_obs = np.where(done[:, None], reset_obs, next_obs)
        self.obs = next_obs

    def act(self) -> np.ndarray:
        """Random during warm-up (uniform, or the noise alone), then mu(s) + noise, clipped to [-1, 1]:
        [num_envs, action_dim]."""
        noise = self.parts.noise
        if self.counters.step < self.config.train.learning_starts:
            if self.config.train.warmup == "uniform":
                return self.parts.warmup_rng.uniform(-1.0, 1.0, size=(self.num_envs, self.action_dim)).astype(np.float32)
            noise.sigma = sigma_at(self.counters.step, self.config.noise)
            return np.clip(noise(), -1.0, 1.0)
        noise.sigma = sigma_at(self.counters.step, self.config.noise)
        if self.policy_action is None:  # no update ran at the end of the last step to compute it
            self.policy_action = self.agent.act(torch.as_tensor(self.obs, dtype=torch.float32, device=self.device)).cpu().numpy()
        action = self.policy_action + noise()
        self.policy_action = None
        np.clip(action, -1.0, 1.0, out=action)
        if not np.all(np.isfinite(action)):
            raise TrainingDiverged(f"step {self.counters.step}: the actor produced a non-finite action ({_first_non_finite(action)})")
        return action

    # --- learn: the gradient steps owed since the last update phase --------------------------------

    def learn(self) -> None:
        config, counters = self.config, self.counters
        if counters.step <= config.train.learning_starts or len(self.buffer) < config.agent.batch_size:
            return
        counters.pending_updates += min(self.num_envs, counters.step - config.train.learning_starts)
        if counters.pending_updates < config.train.update_every:
            return
        # Each update also returns mu(obs) from the actor it leaves: the last one is the next step's
        # action, as if `agent.act` ran then (passed to every update, so a compiled update keeps one graph).
        obs_tensor = torch.as_tensor(self.obs, dtype=torch.float32, device=self.device)
        self.agent.follow_lr_schedule(counters.step)
        start = time.monotonic()
        for _ in range(counters.pending_updates * config.train.updates_per_step):
            mu = self.agent.update(self.buffer.sample(config.agent.batch_size, self.parts.sampler), act_on=obs_tensor)
        self.policy_action = mu.cpu().numpy()
        self.times.add_update_time(time.monotonic() - start)
        counters.pending_updates = 0
        if self.check_every_step and not self.agent.all_finite():
            raise TrainingDiverged(f"step {counters.step}: the update produced a non-finite {self.agent.non_finite_metrics()}")

    # --- log, evaluate, checkpoint ------------------------------------------------------------------

    def log(self) -> None:
        if not self.agent.all_finite():
            raise TrainingDiverged(f"by step {self.counters.step}: the updates produced a non-finite {self.agent.non_finite_metrics()}")
        now = time.monotonic()
        sps = (self.counters.step - self.sps_step) / max(now - self.sps_clock, 1e-9)
        self.sps_clock, self.sps_step = now, self.counters.step
        metrics = {**self.agent.pop_metrics(), "steps_per_second": sps, "noise_sigma": self.parts.noise.sigma, "torch_threads": torch.get_num_threads()}
        if self.config.agent.lr_schedule != "constant":
            metrics["lr_fraction"] = lr_fraction_at(self.counters.step, self.config.agent)
        self.logger.scalars("train", metrics, self.counters.step)

    def evaluate(self) -> EvalResult:
        counters = self.counters
        if self.average is not None:
            self.average.take()
        # A fresh env for each evaluation: some simulators keep state across resets (one BipedalWalker
        # policy scored 131.3, 170.1 and 140.0 over the same ten reset seeds, evaluated three times in
        # one env), so this keeps an evaluation the one `ddpg eval` of its checkpoint plays, resumed or not.
        eval_env = make_env(self.config.env)
        try:
            result = evaluate(self.policy, eval_env, self.config.eval.episodes, self.config.eval.seed, self.device)
        finally:
            eval_env.close()
        counters.last_eval = result.mean
        self.logger.scalars("eval", {"return": result.mean, "return_std": result.std, "length": float(np.mean(result.lengths))}, counters.step)
        append_evaluation(self.run_dir, counters.step, self.wall_seconds(), result)
        if counters.best_eval is None or result.mean > counters.best_eval:
            counters.best_eval = result.mean
            self.save_snapshot(ckpt.BEST)
        return result

    def save_periodic(self) -> None:
        self.save_snapshot(ckpt.periodic_name(self.counters.step))
        ckpt.prune_periodic(self.run_dir, self.config.checkpoint.keep)
        self.save_last()

    def save_snapshot(self, name: str) -> None:
        if self.agent.all_finite():
            payload = checkpoint_payload(self.config, self.counters, self.agent, self.low, self.high, average=self.average)
            ckpt.save_checkpoint(payload, ckpt.checkpoint_dir(self.run_dir) / name)

    def save_last(self) -> None:
        if not self.agent.all_finite():
            return  # never replace a good checkpoint with a diverged one
        self.counters.wall_seconds = self.wall_seconds()
        buffer = self.buffer if should_save_buffer(self.config, self.buffer) else None
        payload = checkpoint_payload(self.config, self.counters, self.agent, self.low, self.high, self.parts, buffer, self.average)
        ckpt.save_checkpoint(payload, ckpt.checkpoint_dir(self.run_dir) / ckpt.LAST)
        self.last_saved_step = self.counters.step

    # --- progress, the end of a run -----------------------------------------------------------------

    def wall_seconds(self) -> float:
        """Training time over every session of this run."""
        return self.wall_before + (time.monotonic() - self.session_start)

    def share_cpus(self) -> None:
        """Follow the CPUs other processes leave free (only where the count cannot change the numbers)."""
        if self.cpu_share is not None and (threads := self.cpu_share.poll()) is not None:
            torch.set_num_threads(threads)

    def progress_due(self) -> bool:
        """True a few times a second, not every step."""
        now = time.monotonic()
        if now < self.next_progress:
            return False
        self.next_progress = now + 0.2
        return True

    def step_phase(self) -> str:
        """Which phase the coming env step (and the updates it owes) counts toward."""
        if self.counters.step < self.config.train.learning_starts:
            return WARMUP
        # The first updates of a session build the compiled graphs (one with the actor step, one
        # without when the actor waits `policy_delay` steps): counted apart, they would hide the
        # speed of every later update (tens of seconds of compiling against milliseconds an update).
        if self.agent.critic_updates - self.session_first_update <= self.config.agent.policy_delay:
            return FIRST_UPDATES
        return LEARNING

    def session_steps_per_second(self) -> float:
        return (self.counters.step - self.session_first_step) / max(time.monotonic() - self.session_start, 1e-9)

    def write_summary(self, final_eval: EvalResult) -> None:
        counters = self.counters
        summary = {
            "steps": counters.step,
            "wall_s": counters.wall_seconds,
            "steps_per_second": counters.step / max(counters.wall_seconds, 1e-9),
            "episodes": counters.episodes,
            "final_eval": final_eval.as_dict(),
            "best_eval": counters.best_eval,
            "exact_resume": self.exact,
            "precision": self.precision.precision,
            "learning_steps_per_second": self.times.steps_per_second(LEARNING),
            "session_seconds": self.times.seconds_dict(),
            "session_steps": self.times.steps_dict(),
            # What the numbers were computed under (CPU, threads, library versions): kept with a
            # run's records, it tells why a run trained again elsewhere can end elsewhere.
            "conditions": reproducibility.conditions(),
        }
        write_summary(self.run_dir, summary)

    def last_good_checkpoint(self) -> str:
        last = ckpt.checkpoint_dir(self.run_dir) / ckpt.LAST
        if self.last_saved_step is None:
            return "no checkpoint had been saved yet"
        return f"the last good checkpoint (step {self.last_saved_step:,}) is kept: {last}"

    def finish(self, final_eval: EvalResult | None, stopped_by: str | None) -> TrainResult:
        self.close()
        counters = self.counters
        return TrainResult(self.run_dir, counters.step, counters.wall_seconds, counters.best_eval, final_eval, stopped_by, self.exact)

    def close(self) -> None:
        if hasattr(self, "logger"):
            self.logger.close()
        self.envs.close()
        self.lock.release()


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def crossed(previous_step: int, step: int, every: int) -> bool:
    """True when a multiple of `every` lies in (previous_step, step]; `every` 0 means never."""
    return every > 0 and step // every > previous_step // every


def should_save_buffer(config: Config, buffer: ReplayBuffer) -> bool:
    mode = config.checkpoint.save_buffer
    if mode != "auto":
        return mode == "always"
    filled_bytes = ReplayBuffer.bytes_needed(len(buffer), buffer.obs.shape[1], buffer.action.shape[1])
    return filled_bytes <= config.checkpoint.buffer_limit_mb * 2**20
