"""End-to-end `ddpg train`: the run dir, the checkpoint, TensorBoard, determinism and exact resume."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from gymnasium.vector import SyncVectorEnv
from typer.testing import CliRunner

from ddpg_cli.checkpoint import load_checkpoint
from ddpg_cli.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()

# A tiny run: 120 transitions, learning from step 30, Pendulum episodes truncated at 25 steps.
TINY = [
    "agent.actor_hidden=[16, 16]",
    "agent.critic_hidden=[16, 16]",
    "agent.batch_size=16",
    "agent.buffer_size=1000",
    "env.max_episode_steps=25",
    "train.total_steps=120",
    "train.learning_starts=30",
    "eval.every=0",
    "eval.episodes=1",
    "checkpoint.every=0",
    "logging.every=20",
    "logging.tensorboard=false",
]


def run_train(*args: str) -> object:
    result = runner.invoke(app, ["train", *args, "--quiet"])
    return result


def sets(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


def final_state(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")


def assert_same_training_state(a: dict, b: dict) -> None:
    """Bitwise: every network, both optimisers, the replay buffer and the counters."""
    assert set(a["agent"]) == set(b["agent"])
    for key in ("actor", "critic", "actor_target", "critic_target", "normalizer", "critic2", "critic2_target"):
        for name, tensor in a["agent"].get(key, {}).items():
            assert torch.equal(tensor, b["agent"][key][name]), f"{key}.{name} differs"
    if "target_noise_rng" in a["agent"]:
        assert torch.equal(a["agent"]["target_noise_rng"], b["agent"]["target_noise_rng"]), "the smoothing noise's generator differs"
    for key in ("actor_optimizer", "critic_optimizer"):
        for index, slot in a["agent"][key]["state"].items():
            for name, value in slot.items():
                assert torch.equal(value, b["agent"][key]["state"][index][name]), f"{key} {index} {name} differs"
    buffer_a, buffer_b = a["resume"]["replay_buffer"], b["resume"]["replay_buffer"]
    for name in ("obs", "action", "reward", "next_obs", "terminated"):
        assert torch.equal(buffer_a[name], buffer_b[name]), f"replay buffer {name} differs"
    assert a["counters"]["step"] == b["counters"]["step"]
    assert a["counters"]["episodes"] == b["counters"]["episodes"]
    average_a, average_b = a.get("policy_average"), b.get("policy_average")
    assert (average_a is None) == (average_b is None), "one run has an actor average, the other not"
    if average_a is not None:
        assert len(average_a["snapshots"]) == len(average_b["snapshots"]), "the actor averages hold different windows"
        for snapshot_a, snapshot_b in zip(average_a["snapshots"], average_b["snapshots"]):
            for name, tensor in snapshot_a.items():
                assert torch.equal(tensor, snapshot_b[name]), f"actor average snapshot {name} differs"


# configs/smoke.yaml shortened to its plumbing: 400 steps, evaluations and checkpoints every 200.
# (The full 5,000-step smoke run, which learns, is the CI gate in .ci/run.)
SMOKE_PLUMBING = ["train.total_steps=400", "train.learning_starts=100", "eval.every=200", "eval.episodes=2", "checkpoint.every=200", "logging.every=100"]


def test_smoke_config_end_to_end(tmp_path):
    run_dir = tmp_path / "smoke"
    result = run_train(str(ROOT / "configs" / "smoke.yaml"), *sets(SMOKE_PLUMBING), "--run-dir", str(run_dir))
    assert result.exit_code == 0, result.output
    assert "final eval return" in result.output

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["env"]["id"] == "Pendulum-v1" and config["train"]["total_steps"] == 400
    for name in ("last.pt", "best.pt", "step_000000200.pt"):
        assert (run_dir / "checkpoints" / name).is_file()
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["counters"]["step"] == 400
    assert state["config"] == config
    assert state["resume"]["replay_buffer"]["size"] == 400
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 400 and len(summary["final_eval"]["returns"]) == 2

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in (
        "train/critic_loss",
        "train/actor_q",
        "train/dq_da_norm",
        "train/at_bound_fraction",
        "train/pre_activation_abs",
        "train/steps_per_second",
        "train/noise_sigma",
        "episode/return",
        "episode/length",
        "eval/return",
    ):
        assert tag in scalars, f"{tag} missing from {sorted(scalars)}"
    assert [e.step for e in events.Scalars("eval/return")] == [200, 400]
    assert any("config" in tag for tag in events.Tags()["tensors"])


def test_same_seed_gives_identical_weights(tmp_path):
    for name in ("a", "b"):
        assert run_train(*sets(TINY), "--run-dir", str(tmp_path / name)).exit_code == 0
    assert_same_training_state(final_state(tmp_path / "a"), final_state(tmp_path / "b"))
    assert run_train(*sets(TINY + ["seed=1"]), "--run-dir", str(tmp_path / "c")).exit_code == 0
    a, c = final_state(tmp_path / "a"), final_state(tmp_path / "c")
    assert not torch.equal(a["agent"]["actor"]["net.0.weight"], c["agent"]["actor"]["net.0.weight"])


def interrupt_at(monkeypatch: pytest.MonkeyPatch, vector_steps: set[int], signum: int = signal.SIGINT) -> None:
    """Send a real signal to this process during the given vector-env steps (counted from 1)."""
    original = SyncVectorEnv.step
    calls = {"n": 0}

    def step(self, actions):
        calls["n"] += 1
        if calls["n"] in vector_steps:
            os.kill(os.getpid(), signum)
        return original(self, actions)

    monkeypatch.setattr(SyncVectorEnv, "step", step)


@pytest.mark.parametrize(
    "extra, stops",
    [
        # Pendulum (truncation): during warm-up, right after an episode boundary (step 25), mid-episode.
        ([], [10, 25, 63]),
        # Two envs and termination by the env itself (episodes of 7 steps); twice mid-episode.
        (["train.num_envs=2", "env.id=envs_for_tests:AsymmetricBounds-v0", "env.max_episode_steps=null", "noise.type=ou"], [4, 7, 22]),
        # TD3's switches: a second critic and target, the smoothing noise's generator, the actor's delay.
        (["agent.twin_critics=true", "agent.target_noise=0.2", "agent.policy_delay=2"], [45, 63]),
        # The evaluated policy as the mean of the actor at its last 3 evaluations: the window resumes too.
        (["eval.every=20", "eval.average_last=3"], [45, 101]),
        # Learning rates on a schedule: set from the step, held in tensors the optimisers' state carries.
        (["agent.lr_schedule=linear", "agent.final_lr_fraction=0.1", "agent.lr_schedule_steps=100"], [45, 101]),
    ],
    ids=["pendulum", "two-envs-terminating", "td3", "actor-average", "lr-schedule"],
)
def test_interrupted_and_resumed_run_is_bitwise_identical(tmp_path, monkeypatch, extra, stops):
    config = sets(TINY + extra)
    assert run_train(*config, "--run-dir", str(tmp_path / "straight")).exit_code == 0

    interrupted = tmp_path / "interrupted"
    first = True
    for stop in stops:
        with monkeypatch.context() as patch:
            interrupt_at(patch, {stop if first else stop - previous})
            args = [*config, "--run-dir", str(interrupted)] if first else ["--resume", str(interrupted)]
            result = run_train(*args)
        assert result.exit_code == 130, result.output
        assert f"resume with: ddpg train --resume {interrupted}" in result.output.replace("\n", " ")
        previous, first = stop, False
    result = run_train("--resume", str(interrupted))
    assert result.exit_code == 0, result.output

    assert_same_training_state(final_state(tmp_path / "straight"), final_state(interrupted))


def test_sigterm_saves_and_exits_143(tmp_path, monkeypatch):
    interrupt_at(monkeypatch, {40}, signal.SIGTERM)
    result = run_train(*sets(TINY), "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 143, result.output
    assert final_state(tmp_path / "run")["counters"]["step"] == 40


def test_resume_without_replay_buffer_says_it_is_not_exact(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        interrupt_at(patch, {50})
        result = run_train(*sets(TINY + ["checkpoint.save_buffer=never"]), "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 130
    assert final_state(tmp_path / "run")["resume"]["replay_buffer"] is None
    result = run_train("--resume", str(tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "NOT exact" in result.output
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["exact_resume"] is False


def test_resume_extends_total_steps(tmp_path):
    run_dir = tmp_path / "run"
    assert run_train(*sets(TINY), "--run-dir", str(run_dir)).exit_code == 0
    result = run_train("--resume", str(run_dir))
    assert result.exit_code == 0 and "already finished" in result.output
    assert run_train("--resume", str(run_dir), "--set", "train.total_steps=150").exit_code == 0
    assert final_state(run_dir)["counters"]["step"] == 150
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["total_steps"] == 150  # compare and plot read it


def test_actions_reach_the_env_scaled_and_clipped(tmp_path, monkeypatch):
    """Asymmetric bounds: every action the env receives lies in [low, high], and both ends are used."""
    from envs_for_tests import AsymmetricBoundsEnv

    received = []
    original = AsymmetricBoundsEnv.step

    def spy(self, action):
        received.append(np.asarray(action))
        return original(self, action)

    monkeypatch.setattr(AsymmetricBoundsEnv, "step", spy)
    config = sets(TINY + ["env.id=envs_for_tests:AsymmetricBounds-v0", "env.max_episode_steps=null", "noise.sigma=2.0"])
    assert run_train(*config, "--run-dir", str(tmp_path / "run")).exit_code == 0
    actions = np.stack(received)
    low, high = np.array([-3.0, 0.0]), np.array([1.0, 10.0])
    assert np.all(actions >= low) and np.all(actions <= high)
    assert np.isclose(actions, high).any(axis=0).all()  # large noise: clipped at the bounds, not past them
    assert actions[:, 1].max() > 5.0 and actions[:, 0].min() < -1.0  # the whole asymmetric range is used


@pytest.mark.parametrize(
    "episode_end",
    [
        ["env.kwargs.episode_length=7"],  # the env terminates every 7 steps
        ["env.kwargs.terminate=false", "env.max_episode_steps=5"],  # the time limit truncates every 5
    ],
    ids=["terminated", "truncated"],
)
def test_vector_envs_never_store_a_transition_across_an_episode_boundary(tmp_path, episode_end):
    """AsymmetricBounds writes its step count t into obs[2] (a reset leaves a random value in [-1, 1)),
    so every stored transition must go from t to t + 1, or from a reset to t = 1."""
    config = TINY + ["env.id=envs_for_tests:AsymmetricBounds-v0", "env.max_episode_steps=null", "train.num_envs=3", *episode_end]
    assert run_train(*sets(config), "--run-dir", str(tmp_path / "run")).exit_code == 0
    buffer = final_state(tmp_path / "run")["resume"]["replay_buffer"]
    t, next_t = buffer["obs"][:, 2], buffer["next_obs"][:, 2]
    after_reset = t < 1
    assert len(t) == 120 and after_reset.sum() >= 3 * 3  # several episodes in each of the 3 envs
    assert torch.all(next_t[after_reset] == 1)
    assert torch.all(next_t[~after_reset] == t[~after_reset] + 1)
    if "env.kwargs.episode_length=7" in episode_end:
        assert torch.equal(buffer["terminated"], (next_t == 7).float())
    else:
        assert next_t.max() == 5 and not buffer["terminated"].any()  # truncation is not termination


def test_evaluations_csv_stays_right_across_interruptions(tmp_path, monkeypatch):
    """One row per evaluation step, in order, across stops and resumes; rows a killed run wrote after
    its last checkpoint are dropped by the resume, which evaluates those steps again."""
    from ddpg_cli.eval_log import read_evaluations

    config = sets(TINY + ["eval.every=20", "checkpoint.every=40"])
    assert run_train(*config, "--run-dir", str(tmp_path / "straight")).exit_code == 0
    straight = read_evaluations(tmp_path / "straight")
    assert [row.step for row in straight] == [20, 40, 60, 80, 100, 120]
    assert all(row.mean == pytest.approx(np.mean(row.returns)) and len(row.returns) == 1 for row in straight)

    interrupted = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        interrupt_at(patch, {70})
        assert run_train(*config, "--run-dir", str(interrupted)).exit_code == 130
    rows = read_evaluations(interrupted)
    assert [row.step for row in rows] == [20, 40, 60]
    # A kill -9 after an evaluation but before the next checkpoint leaves a row the checkpoint does not
    # know (last.pt is at step 70 here); a torn last line is ignored.
    with open(interrupted / "evaluations.csv", "a") as handle:
        handle.write('80,9.9,-1.0,0.0,-1.0,-1.0,1,"[-1.0]","[25]"\n100,1.0,-5')
    assert run_train("--resume", str(interrupted)).exit_code == 0
    resumed = read_evaluations(interrupted)
    assert [(row.step, row.returns) for row in resumed] == [(row.step, row.returns) for row in straight]
    assert all(later.wall_s >= earlier.wall_s for earlier, later in zip(resumed, resumed[1:]))


def test_an_observer_can_stop_a_run_after_an_evaluation_and_it_resumes(tmp_path):
    from ddpg_cli.config import load_config
    from ddpg_cli.train import OBSERVER_STOP, TrainObserver, load_resume, train

    class StopAt60(TrainObserver):
        seen: list[int] = []

        def on_evaluation(self, step, result, best):
            self.seen.append(step)
            return step < 60

    config = load_config(None, TINY + ["eval.every=20"])
    run_dir = tmp_path / "run"
    result = train(config, run_dir, observer=StopAt60())
    assert result.stopped_by == OBSERVER_STOP and result.steps == 60 and StopAt60.seen == [20, 40, 60]
    assert final_state(run_dir)["counters"]["step"] == 60  # saved where it stopped
    result = train(config, run_dir, resume=load_resume(run_dir))
    assert result.stopped_by is None and result.steps == 120


def test_two_processes_cannot_train_one_run_dir_at_once(tmp_path):
    from ddpg_cli.run_state import RunLock, run_is_locked

    run_dir = tmp_path / "run"
    assert run_train(*sets(TINY), "--run-dir", str(run_dir)).exit_code == 0
    assert not run_is_locked(run_dir)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
                               "print('held', flush=True); time.sleep(60)", str(run_dir / ".lock")], stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert run_is_locked(run_dir)
        result = run_train("--resume", str(run_dir), "--set", "train.total_steps=150")
        assert result.exit_code == 2 and "is being trained by another process" in result.output, result.output
        assert final_state(run_dir)["counters"]["step"] == 120  # untouched
    finally:
        holder.kill()
        holder.wait()
    assert not run_is_locked(run_dir)
    lock = RunLock(run_dir)
    lock.acquire()
    lock.release()
