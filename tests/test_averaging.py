"""`eval.average_last`: the policy a run evaluates and ships is the mean of its actor's weights at the
last K evaluations, while training goes on with the live actor."""

import json

import pytest
import torch
from typer.testing import CliRunner

from ddpg_cli.averaging import ActorAverage, mean_weights
from ddpg_cli.checkpoint import load_checkpoint
from ddpg_cli.cli import app
from ddpg_cli.config import build_config
from ddpg_cli.errors import ConfigError
from ddpg_cli.networks import Actor
from ddpg_cli.policy import load_policy

runner = CliRunner()

# 160 Pendulum transitions, an evaluation and a periodic checkpoint (all kept) every 40 steps.
RUN = [
    "agent.actor_hidden=[16, 16]",
    "agent.critic_hidden=[16, 16]",
    "agent.batch_size=16",
    "agent.buffer_size=1000",
    "env.max_episode_steps=25",
    "train.total_steps=160",
    "train.learning_starts=30",
    "eval.every=40",
    "eval.episodes=2",
    "checkpoint.every=40",
    "checkpoint.keep=10",
    "logging.tensorboard=false",
]


def sets(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


def test_the_window_keeps_the_last_k_snapshots_and_their_mean_is_the_policy():
    live = Actor(3, 1, [4], "relu", squash=True)
    average = ActorAverage(live, window=2)
    for value in (1.0, 2.0, 4.0):
        with torch.no_grad():
            for parameter in live.parameters():
                parameter.fill_(value)
        average.take()
    for parameter in average.actor.parameters():
        assert torch.allclose(parameter, torch.full_like(parameter, 3.0))  # (2 + 4) / 2: the 1.0 left the window
    assert not any(p.requires_grad for p in average.actor.parameters())

    restored = ActorAverage(Actor(3, 1, [4], "relu", squash=True), window=2)
    restored.load_state_dict(average.state_dict())
    for a, b in zip(restored.actor.parameters(), average.actor.parameters()):
        assert torch.equal(a, b)


def test_a_run_evaluates_and_ships_the_mean_of_its_last_evaluations(tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["train", *sets(RUN + ["eval.average_last=3"]), "--run-dir", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output

    # The actor as it was at the last three evaluations (80, 120, 160 steps): two periodic checkpoints and last.
    checkpoints = run_dir / "checkpoints"
    actors = [load_checkpoint(checkpoints / name)["agent"]["actor"] for name in ("step_000000080.pt", "step_000000120.pt", "last.pt")]
    expected = mean_weights(actors)
    shipped = load_policy(run_dir).policy.actor.state_dict()
    for name, tensor in expected.items():
        assert torch.allclose(shipped[name], tensor, atol=1e-7), name
    live = actors[-1]
    assert any(not torch.equal(shipped[name], live[name]) for name in live), "the shipped actor is the live one"
    trained_on = load_policy(run_dir, live_actor=True).policy.actor.state_dict()  # the actor training went on with
    assert all(torch.equal(trained_on[name], live[name]) for name in live)

    # `ddpg eval` scores the same policy as the run's final evaluation (same reset seeds).
    summary = json.loads((run_dir / "summary.json").read_text())
    evaluated = runner.invoke(app, ["eval", str(run_dir), "--episodes", "2", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.output)["returns"] == pytest.approx(summary["final_eval"]["returns"])


def test_averaging_without_periodic_evaluations_is_a_config_error():
    with pytest.raises(ConfigError, match="eval.average_last"):
        build_config({"eval": {"every": 0, "average_last": 4}})


def test_averaging_leaves_training_as_it_was(tmp_path):
    # What a run learns is the same bit for bit with and without `eval.average_last`: only the policy it
    # evaluates and ships differs. So a run made with it also gives the final policy's reading (its live
    # actor, kept in every checkpoint), and one made without it gives the mean's (from its checkpoints).
    live = {}
    for name, extra in (("plain", []), ("averaged", ["eval.average_last=3"])):
        run_dir = tmp_path / name
        result = runner.invoke(app, ["train", *sets(RUN + extra), "--run-dir", str(run_dir), "--quiet"])
        assert result.exit_code == 0, result.output
        live[name] = load_checkpoint(run_dir / "checkpoints" / "last.pt")["agent"]
    for part in ("actor", "critic"):
        for key, tensor in live["plain"][part].items():
            assert torch.equal(tensor, live["averaged"][part][key]), f"{part}.{key}"
