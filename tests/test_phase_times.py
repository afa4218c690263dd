"""Where a session's wall time goes: the phase clock, and what a run writes of it to summary.json."""

import json

import pytest
from typer.testing import CliRunner

from ddpg_cli.cli import app
from ddpg_cli.phase_times import EVALUATION, LEARNING, PHASES, WARMUP, PhaseTimes
from test_train import TINY, sets


def test_phases_add_up_their_seconds_and_steps():
    times = PhaseTimes()
    for _ in range(3):
        with times.phase(LEARNING, steps=2):
            pass
    with times.phase(EVALUATION):
        pass
    assert times.steps_dict() == {"warmup": 0, "first_updates": 0, "learning": 6}
    assert times.steps_per_second(WARMUP) is None  # no steps: no speed, not zero
    assert times.steps_per_second(LEARNING) == pytest.approx(6 / times.seconds[LEARNING])
    assert set(times.seconds_dict()) == {*PHASES, "learning_in_updates"}


def test_update_time_counts_toward_learning_only():
    times = PhaseTimes()
    times.add_update_time(1.0)  # outside any phase
    with times.phase(WARMUP):
        times.add_update_time(1.0)
    with times.phase(LEARNING, steps=1):
        times.add_update_time(0.5)
    assert times.learning_in_updates == 0.5 and times.current is None


def test_a_phase_that_raises_still_counts():
    times = PhaseTimes()
    with pytest.raises(RuntimeError), times.phase(LEARNING, steps=1):
        raise RuntimeError("the env broke")
    assert times.steps[LEARNING] == 1 and times.seconds[LEARNING] >= 0


@pytest.mark.parametrize("policy_delay", [1, 2])
def test_summary_splits_the_session_into_phases(tmp_path, policy_delay):
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", *sets([*TINY, f"agent.policy_delay={policy_delay}"]), "--run-dir", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "summary.json").read_text())
    # 120 steps, learning from step 30: the steps before are warm-up; the first updates (those that
    # build a compiled update's graphs, one per actor phase) are counted apart from the rest.
    first = policy_delay + 1
    assert summary["session_steps"] == {"warmup": 30, "first_updates": first, "learning": 120 - 30 - first}
    seconds = summary["session_seconds"]
    assert set(seconds) == {*PHASES, "learning_in_updates"} and all(value >= 0 for value in seconds.values())
    assert seconds["evaluation"] > 0  # the final evaluation
    assert 0 < seconds["learning_in_updates"] <= seconds["learning"]
    rounding = 0.0005 * len(PHASES)  # each phase's seconds are rounded to the millisecond, the wall is not
    assert sum(seconds[phase] for phase in PHASES) <= summary["wall_s"] + rounding
    assert summary["learning_steps_per_second"] == pytest.approx(summary["session_steps"]["learning"] / seconds["learning"], rel=0.01)
