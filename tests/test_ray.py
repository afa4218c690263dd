"""`--engine ray`: sweeps and searches as Ray Tune trials, on a local Ray cluster each command starts
(with this machine's CPUs). The runs are the same `ddpg train` processes as with the local engine, so
their run dirs and numbers must be the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ddpg_cli.checkpoint import load_checkpoint
from ddpg_cli.cli import app
from ddpg_cli.eval_log import read_evaluations

pytest.importorskip("ray")
pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "configs" / "smoke.yaml")
runner = CliRunner()
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)]), "RAY_ADDRESS": ""}
TINY = ["train.total_steps=400", "train.learning_starts=100", "eval.every=200", "eval.episodes=1", "checkpoint.every=200", "logging.tensorboard=false"]


def sets(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


def ddpg(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ddpg_cli", *args], cwd=ROOT, env=CHILD_ENV, capture_output=True, text=True, timeout=timeout)


def test_a_sweep_on_ray_lays_out_and_computes_what_the_local_engine_does(tmp_path):
    from test_train import assert_same_training_state

    out = tmp_path / "ray-sweep"
    result = ddpg("sweep", SMOKE, *sets(TINY), "--grid", "agent.actor_lr=1e-3,3e-4", "--seeds", "0-1", "--engine", "ray", "--out", str(out), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [run["status"] for group in report["groups"] for run in group["runs"]] == ["done"] * 4
    run_dirs = sorted(p.parent for p in out.glob("*/seed-*/config.yaml"))
    assert [p.relative_to(out).as_posix() for p in run_dirs] == ["actor_lr=0.0003/seed-0", "actor_lr=0.0003/seed-1", "actor_lr=0.001/seed-0", "actor_lr=0.001/seed-1"]
    assert not any((out / "ray").rglob("checkpoints/last.pt"))  # runs never land inside Ray's folders
    for run_dir in run_dirs[::3]:  # one run of each setting, trained again alone by the local path
        alone = tmp_path / f"alone-{run_dir.parent.name}"
        local = ddpg("train", str(run_dir / "config.yaml"), "--run-dir", str(alone), "--quiet")
        assert local.returncode == 0, local.stderr
        assert_same_training_state(load_checkpoint(run_dir / "checkpoints" / "last.pt"), load_checkpoint(alone / "checkpoints" / "last.pt"))
        assert [r.returns for r in read_evaluations(run_dir)] == [r.returns for r in read_evaluations(alone)]
    # compare and plot read it like any sweep; --resume finds nothing left to do
    assert runner.invoke(app, ["compare", str(out)]).exit_code == 0
    resumed = ddpg("sweep", "--resume", str(out), "--engine", "ray", "--quiet")
    assert resumed.returncode == 0 and "nothing to do" in resumed.stdout, resumed.stdout + resumed.stderr


def test_a_failing_run_on_ray_is_reported_and_the_others_finish(tmp_path):
    out = tmp_path / "ray-failing"
    grid = "env.id=envs_for_tests:AsymmetricBounds-v0,envs_for_tests:NonFinite-v0"
    result = ddpg("sweep", SMOKE, *sets(TINY), "--grid", grid, "--engine", "ray", "--out", str(out), "--quiet")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed: id=envs_for_tests_NonFinite-v0 seed 0: step 29: the env returned a non-finite observation (nan)" in " ".join(result.stderr.split())
    report = json.loads(runner.invoke(app, ["compare", str(out), "--json"]).output)
    assert {group["setting"]: group["runs"][0]["status"] for group in report["groups"]} == {
        "id=envs_for_tests_AsymmetricBounds-v0": "done", "id=envs_for_tests_NonFinite-v0": "failed"}  # fmt: skip


def test_a_search_on_ray_finishes_with_a_best_config(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"agent.actor_lr": {"low": 1.0e-4, "high": 3.0e-3, "log": True}, "agent.actor_hidden": {"choices": [[16, 16], [32, 32]]}}))
    out = tmp_path / "ray-search"
    result = ddpg("tune", SMOKE, *sets(TINY), "--space", str(space), "--trials", "3", "--engine", "ray", "--out", str(out), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert len(report["trials"]) == 3 and all(t["state"] in ("complete", "pruned") for t in report["trials"])
    for trial in report["trials"]:
        (run_dir,) = trial["run_dirs"]
        assert Path(run_dir) == out.resolve() / f"trial-{trial['number']:04d}" / "seed-0"
    config = yaml.safe_load((out / "best.yaml").read_text())
    assert config["agent"]["actor_lr"] == pytest.approx(report["best"]["params"]["agent.actor_lr"])
    assert runner.invoke(app, ["train", str(out / "best.yaml"), "--run-dir", str(tmp_path / "best"), "--quiet"]).exit_code == 0


def test_bad_ray_input(tmp_path):
    from test_reliability import assert_one_line_error

    out = str(tmp_path / "out")
    assert_one_line_error(runner.invoke(app, ["sweep", SMOKE, "--engine", "spark", "--out", out]), 2, "--engine must be local or ray")
    assert_one_line_error(runner.invoke(app, ["sweep", SMOKE, "--address", "auto", "--out", out]), 2, "use it with --engine ray")
    assert_one_line_error(runner.invoke(app, ["tune", SMOKE, "--engine", "ray", "--storage", "sqlite:///x.db", "--out", out]), 2, "--storage and --study are for the local engine")
    result = ddpg("sweep", SMOKE, *sets(TINY), "--engine", "ray", "--address", "127.0.0.1:1", "--out", out, timeout=180)
    assert result.returncode == 1 and result.stderr.count("error:") == 1 and "cannot join the Ray cluster at 127.0.0.1:1" in result.stderr, result.stderr


def test_a_search_on_ray_reads_complete_pruned_and_failed_trials_from_its_results(tmp_path):
    """What Ray hands back, read into the study the report and best.yaml come from: a trial that ran
    to the end is complete, one stopped early is pruned at its last evaluation, and one whose run failed
    (its last result carries `failed` and a NaN return, and no step) is failed. No cluster needed."""
    from types import SimpleNamespace

    import pandas as pd
    from optuna.trial import TrialState

    from ddpg_cli.config import config_to_dict, load_config
    from ddpg_cli.experiments.ray_engine import _study_from_results
    from ddpg_cli.experiments.tune import TuneSetup, space_dimensions

    base = load_config(Path(SMOKE), TINY)
    space = {"agent.actor_lr": {"low": 1.0e-4, "high": 3.0e-3, "log": True}}
    setup = TuneSetup(tmp_path, config_to_dict(base), space, "read", None, 3, 1, "random", "median", 1)
    setup.dimensions = space_dimensions(space, base, tmp_path / "space.yaml")

    def result(number: int, rows: list[dict], error: Exception | None = None) -> SimpleNamespace:
        return SimpleNamespace(path=str(tmp_path / "ray" / f"trial-{number:04d}"), config={"agent.actor_lr": 1e-3 * (number + 1)},
                               metrics_dataframe=pd.DataFrame(rows), metrics=rows[-1], error=error)  # fmt: skip

    study = _study_from_results(setup, [
        result(0, [{"step": 200, "eval_return": -900.0}, {"step": 400, "eval_return": -800.0, "done": True}]),
        result(1, [{"step": 200, "eval_return": -1500.0}]),
        result(2, [{"step": 200, "eval_return": -1400.0}, {"eval_return": float("nan"), "failed": True, "error": "step 290: nan"}]),
    ])  # fmt: skip
    trials = sorted(study.get_trials(), key=lambda trial: trial.number)
    assert [trial.state for trial in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    assert trials[0].value == -800.0 and trials[1].value == -1500.0 and trials[2].value is None
    assert [trial.intermediate_values for trial in trials] == [{200: -900.0}, {200: -1500.0}, {200: -1400.0}]
