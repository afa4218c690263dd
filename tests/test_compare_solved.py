"""`ddpg compare`'s worst seed and solved count: the threshold from `--solved-at` or from the header of
the env's preset (`# solved at: X`), on synthetic run directories (the files a run writes, no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ddpg_cli import api
from ddpg_cli.cli import app
from ddpg_cli.eval_log import EvaluationRow, _write, evaluations_path
from ddpg_cli.experiments.compare import comparison, parse_threshold, solved_count, thresholds
from ddpg_cli.experiments.runs import collect_runs, group_runs
from ddpg_cli.errors import ConfigError
from ddpg_cli.layout import CONFIG_FILE, SUMMARY_FILE
from ddpg_cli.presets import PresetInfo, SolvedThreshold, describe_presets, solved_threshold

runner = CliRunner()


def fake_run(run_dir: Path, env_id: str, seed: int, curve: dict[int, float], total_steps: int = 1000, done: bool = True, **setting: float) -> Path:
    """A run dir as training leaves it: config.yaml, one evaluations.csv row per step of `curve`, and
    summary.json when `done`."""
    run_dir.mkdir(parents=True)
    config = {"seed": seed, "env": {"id": env_id}, "train": {"total_steps": total_steps}, "eval": {"every": 500}, "agent": dict(setting)}
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(config), encoding="utf-8")
    rows = [EvaluationRow(step, step / 100, value, 0.0, value, value, (value,), (200,)) for step, value in curve.items()]
    _write(evaluations_path(run_dir), rows, mode="w", header=True)
    if done:
        (run_dir / SUMMARY_FILE).write_text(json.dumps({"steps": total_steps, "wall_s": 12.0, "final_eval": {"mean": rows[-1].mean}}), encoding="utf-8")
    return run_dir


@pytest.fixture()
def mountaincar_runs(tmp_path) -> Path:
    """Two settings of MountainCarContinuous-v0 (its preset: solved at 90), five seeds each."""
    finals = {1e-3: [93.9, 93.3, -0.2, 92.9, 93.4], 3e-4: [94.1, 89.9, 91.0, 90.0, -12.5]}
    for lr, values in finals.items():
        for seed, value in enumerate(values):
            fake_run(tmp_path / "mc" / f"lr{lr}-seed{seed}", "MountainCarContinuous-v0", seed, {500: value - 50, 1000: value}, actor_lr=lr)
    return tmp_path / "mc"


def preset(name: str, env_id: str, solved_at: float | None) -> PresetInfo:
    return PresetInfo(name, env_id, 1000, "-", None, None, Path(f"{name}.yaml"), solved_at)


def test_every_preset_but_smoke_states_its_solved_threshold():
    stated = {info.name: info.solved_at for info in describe_presets()}
    assert stated["mountaincar"] == 90 and stated["pendulum"] == stated["pendulum_invert_gradients"] == -200
    assert stated["bipedalwalker"] == 250 and stated["reacher"] == -5 and stated["lunarlander"] == 200
    assert stated["smoke"] is None  # Pendulum-v1's threshold is the pendulum preset's
    assert all(value is not None for name, value in stated.items() if name != "smoke")
    assert solved_threshold("Pendulum-v1") == SolvedThreshold(-200, "preset pendulum")
    assert solved_threshold("MountainCarContinuous-v0") == SolvedThreshold(90, "preset mountaincar")
    assert solved_threshold("envs_for_tests:NonFinite-v0") is None


def test_presets_that_share_an_env_must_agree_for_a_default():
    agree = [preset("b", "Pendulum-v1", -200), preset("a", "Pendulum-v1", -200), preset("smoke", "Pendulum-v1", None)]
    assert solved_threshold("Pendulum-v1", agree) == SolvedThreshold(-200, "preset b")  # the first that states one
    disagree = [*agree, preset("c", "Pendulum-v1", -400)]
    assert solved_threshold("Pendulum-v1", disagree) is None
    assert solved_threshold("Hopper-v5", agree) is None


def test_the_header_line_is_read_like_measured(tmp_path, monkeypatch):
    from ddpg_cli import presets

    (tmp_path / "a.yaml").write_text("# A preset.\n# measured: median 1 at 1k\n#   detail\n# solved at: -12.5 (why)\nenv:\n  id: X-v0\n")
    (tmp_path / "b.yaml").write_text("# solved at: abc\nenv:\n  id: X-v0\n")
    monkeypatch.setattr(presets, "presets_dir", lambda: tmp_path)
    with pytest.raises(ConfigError, match="b.yaml: '# solved at:' takes a finite return"):
        describe_presets()
    (tmp_path / "b.yaml").write_text("# from: somewhere\n# solved at was never stated\nenv:\n  id: Y-v0\n")
    (info_a, info_b) = describe_presets()
    assert (info_a.solved_at, info_a.measured, info_a.measured_detail) == (-12.5, "median 1 at 1k", "detail")
    assert info_b.solved_at is None


def test_solved_count_and_threshold_input():
    assert solved_count([90.0, 89.99, 120.0, -5.0], 90.0) == 2  # at the threshold counts
    assert solved_count([], 0.0) == 0
    assert parse_threshold("-200") == -200 and parse_threshold(" 2.5e3 ") == 2500 and parse_threshold("1_000") == 1000
    for bad in ("abc", "nan", "inf", "-inf", "", "1e400"):
        with pytest.raises(ConfigError, match="--solved-at takes"):
            parse_threshold(bad)


def test_compare_json_has_worst_and_solved(mountaincar_runs):
    result = runner.invoke(app, ["compare", str(mountaincar_runs), "--json"])
    assert result.exit_code == 0, result.output
    groups = {group["setting"]: group for group in json.loads(result.output)["groups"]}
    high, low = groups["agent.actor_lr=0.001"], groups["agent.actor_lr=0.0003"]
    assert high["worst"] == -0.2 and low["worst"] == -12.5
    assert high["solved"] == {"threshold": 90.0, "count": 4, "of": 5, "source": "preset mountaincar"}
    assert low["solved"] == {"threshold": 90.0, "count": 3, "of": 5, "source": "preset mountaincar"}  # 90.0 counts, 89.9 does not
    assert high["final"]["n"] == 5 and high["seeds"] == [0, 1, 2, 3, 4]  # the old keys stay

    given = json.loads(runner.invoke(app, ["compare", str(mountaincar_runs), "--json", "--solved-at", "93.5"]).output)
    assert [group["solved"] for group in given["groups"]] == [{"threshold": 93.5, "count": 1, "of": 5, "source": "--solved-at"}] * 2
    at = json.loads(runner.invoke(app, ["compare", str(mountaincar_runs), "--json", "--at", "500", "--solved-at=40"]).output)
    assert {group["setting"]: (group["worst"], group["solved"]["count"]) for group in at["groups"]} == {
        "agent.actor_lr=0.001": (pytest.approx(-50.2), 4), "agent.actor_lr=0.0003": (pytest.approx(-62.5), 3)}  # of the returns at 500
    assert {group["solved"]["count"] for group in api.compare([mountaincar_runs], solved_at=90)["groups"]} == {3, 4}


def test_compare_table_at_80_columns(mountaincar_runs):
    result = runner.invoke(app, ["compare", str(mountaincar_runs)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80, result.output
    assert "worst" in result.output and "solved" in result.output
    (row,) = [line for line in lines if "actor_lr=0.001 " in line]
    assert "-0.2" in row and "4/5" in row and "5/5" in row
    assert "seeds ≥ 90 (MountainCarContinuous-v0's threshold; --solved-at to change)" in " ".join(lines)
    result = runner.invoke(app, ["compare", str(mountaincar_runs), "--solved-at", "-100"], env={"COLUMNS": "80"})
    assert "5/5" in [line for line in result.output.splitlines() if "actor_lr=0.0003" in line][0] and "seeds ≥ -100 (--solved-at)" in result.output


def test_without_a_threshold_solved_is_dash_and_null(tmp_path):
    for seed in (0, 1):
        fake_run(tmp_path / "custom" / f"seed-{seed}", "envs_for_tests:NonFinite-v0", seed, {1000: 5.0 + seed})
    report = json.loads(runner.invoke(app, ["compare", str(tmp_path / "custom"), "--json"]).output)
    (group,) = report["groups"]
    assert group["solved"] is None and group["worst"] == 5.0
    result = runner.invoke(app, ["compare", str(tmp_path / "custom")], env={"COLUMNS": "80"})
    assert "no threshold for envs_for_tests:NonFinite-v0" in result.output
    assert "2/2" in result.output and " - " in [line for line in result.output.splitlines() if "custom" in line][0]


def test_groups_of_different_envs_show_each_threshold(tmp_path, mountaincar_runs):
    for seed, value in enumerate([-150.0, -250.0]):
        fake_run(tmp_path / "pendulum" / f"seed-{seed}", "Pendulum-v1", seed, {1000: value})
    groups = group_runs(collect_runs([mountaincar_runs, tmp_path / "pendulum"]))
    assert [t.value if t else None for t in thresholds(groups)] == [90, 90, -200]
    assert [group["solved"]["count"] for group in comparison(groups)["groups"]] == [3, 4, 1]
    result = runner.invoke(app, ["compare", str(mountaincar_runs), str(tmp_path / "pendulum")], env={"COLUMNS": "80"})
    assert "1/2 ≥ -200" in result.output and "4/5 ≥ 90" in result.output, result.output


def test_a_seed_still_running_has_not_solved(tmp_path):
    fake_run(tmp_path / "runs" / "seed-0", "MountainCarContinuous-v0", 0, {500: 95.0, 1000: 95.0})
    fake_run(tmp_path / "runs" / "seed-1", "MountainCarContinuous-v0", 1, {500: 95.0}, done=False)
    (group,) = api.compare([tmp_path / "runs"])["groups"]
    assert group["solved"]["count"] == 1 and group["solved"]["of"] == 2 and group["worst"] == 95.0


@pytest.mark.parametrize("bad", ["abc", "nan", "inf", "-inf", ""])
def test_bad_solved_at_is_one_line_and_exit_2(mountaincar_runs, bad):
    from test_reliability import assert_one_line_error

    assert_one_line_error(runner.invoke(app, ["compare", str(mountaincar_runs), "--solved-at", bad]), 2, "--solved-at takes")
    with pytest.raises(ConfigError):
        api.compare([mountaincar_runs], solved_at=float("nan"))


def test_a_run_written_before_a_key_existed_groups_with_one_that_writes_its_default(tmp_path):
    # An older run's config.yaml lacks a key added later; it trained at that key's default.
    fake_run(tmp_path / "runs" / "seed-0", "Pendulum-v1", 0, {1000: -170.0})
    fake_run(tmp_path / "runs" / "seed-1", "Pendulum-v1", 1, {1000: -168.0}, pre_activation_penalty=0.0)
    fake_run(tmp_path / "runs" / "seed-2", "Pendulum-v1", 2, {1000: -160.0}, pre_activation_penalty=0.001)
    groups = group_runs(collect_runs([tmp_path / "runs"]))
    assert {group.setting: [run.seed for run in group.runs] for group in groups} == {
        "agent.pre_activation_penalty=0.0": [0, 1],
        "agent.pre_activation_penalty=0.001": [2],
    }
