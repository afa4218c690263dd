"""The Python API (`ddpg_cli.api`): the train, sweep and search workflows in-process, on
configs/smoke.yaml cut to a few hundred steps, and the pieces under them (engines by name, the
resume rules, failures as data, a search space given as data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from ddpg_cli import api, layout
from ddpg_cli.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "configs" / "smoke.yaml"
TINY = ["train.total_steps=400", "train.learning_starts=100", "eval.every=200", "eval.episodes=1", "checkpoint.every=200", "logging.tensorboard=false"]


def test_train_then_resume_with_the_rules_of_the_command(tmp_path):
    run_dir = tmp_path / "run"
    result = api.train(SMOKE, TINY, run_dir)
    assert result.steps == 400 and result.stopped_by is None and result.final_eval is not None
    assert layout.final_eval(run_dir) == pytest.approx(result.final_eval.mean)

    with pytest.raises(ConfigError, match="already holds a run"):
        api.prepare_run(SMOKE, TINY, run_dir)
    with pytest.raises(ConfigError, match="only train.total_steps can change"):
        api.prepare_run(overrides=["agent.actor_lr=1e-4"], resume=run_dir)
    with pytest.raises(ConfigError, match="do not pass CONFIG or --run-dir"):
        api.prepare_run(SMOKE, resume=run_dir)

    finished = api.prepare_run(resume=run_dir)
    assert finished.finished == f"{run_dir} already finished 400 of 400 steps; raise them with --set train.total_steps=N" and finished.threads is None
    assert api.resume(run_dir) is None
    longer = api.resume(run_dir, total_steps=600)
    assert longer is not None and longer.steps == 600
    assert yaml.safe_load((run_dir / layout.CONFIG_FILE).read_text())["train"]["total_steps"] == 600


def test_a_resume_without_a_replay_buffer_warns_as_data(tmp_path):
    run_dir = tmp_path / "run"
    stopped = api.train(SMOKE, [*TINY, "checkpoint.save_buffer=never"], run_dir)
    assert stopped.steps == 400
    prepared = api.prepare_run(overrides=["train.total_steps=600"], resume=run_dir)
    assert prepared.finished is None and prepared.resume is not None
    assert [w for w in prepared.warnings if "the resume is NOT exact" in w]
    with pytest.warns(UserWarning, match="NOT exact"):
        assert api.resume(run_dir, total_steps=600).steps == 600


def test_a_sweep_runs_on_the_local_engine_and_reads_back(tmp_path):
    out = tmp_path / "sweep"
    outcome = api.sweep(SMOKE, TINY, seeds="0-1", grid={"agent.actor_lr": [1e-3, 3e-4]}, out=out, jobs=2)
    assert outcome.result.stop_signal is None and outcome.result.failed == [] and len(outcome.result.runs) == 4
    assert [group.setting for group in outcome.groups] == ["actor_lr=0.001", "actor_lr=0.0003"]
    assert all(run.status == "done" for group in outcome.groups for run in group.runs)
    assert sorted(p.relative_to(out).as_posix() for p in out.glob(f"*/seed-*/{layout.SUMMARY_FILE}")) == [
        "actor_lr=0.0003/seed-0/summary.json", "actor_lr=0.0003/seed-1/summary.json", "actor_lr=0.001/seed-0/summary.json", "actor_lr=0.001/seed-1/summary.json"]  # fmt: skip
    report = api.compare([out])
    assert [g["setting"] for g in report["groups"]] == ["actor_lr=0.001", "actor_lr=0.0003"] and report["groups"][0]["final"]["n"] == 2
    assert [len(group.runs) for group in api.read_runs([out / "actor_lr=0.001"])] == [2]

    again = api.open_sweep(resume=out)
    assert again.todo == [] and len(again.specs) == 4
    assert api.run_sweep(again).result.runs == []


def test_a_failing_run_records_its_reason_as_data(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "failing"
    outcome = api.sweep(SMOKE, TINY, grid=["env.id=envs_for_tests:AsymmetricBounds-v0,envs_for_tests:NonFinite-v0"], out=out, jobs=2)
    (failed,) = outcome.result.failed
    assert failed.error.startswith("step 29: the env returned a non-finite observation")
    assert layout.read_failure(failed.spec.run_dir) == failed.error  # written by the run itself, not read from its log


def test_a_search_runs_in_process_with_its_space_as_data(tmp_path):
    pytest.importorskip("optuna")
    space = {"agent.actor_lr": {"low": 1.0e-4, "high": 3.0e-3, "log": True}, "agent.actor_hidden": {"choices": [[16, 16], [32, 32]]}}
    outcome = api.tune(SMOKE, TINY, space=space, trials=2, out=tmp_path / "search", sampler="random", pruner="none", jobs=1)
    assert outcome.stop_signal is None and not outcome.failed
    assert [t["state"] for t in outcome.report["trials"]] == ["complete", "complete"]
    assert outcome.best_config == (tmp_path / "search" / layout.BEST_CONFIG_FILE).resolve() and outcome.best_config.is_file()
    for trial in outcome.report["trials"]:
        assert trial["run_dirs"] == [str((tmp_path / "search").resolve() / layout.trial_dir_name(trial["number"]) / "seed-0")]
    more = api.tune(resume=tmp_path / "search", trials=1, sampler="random")
    assert len(more.report["trials"]) == 3


def test_engines_are_looked_up_by_name():
    assert set(api.ENGINES) >= {"local", "ray"}
    assert api.get_engine("local").name == "local"
    with pytest.raises(ConfigError, match="--engine must be local or ray, got 'spark'"):
        api.get_engine("spark")
    with pytest.raises(ConfigError, match="use it with --engine ray"):
        api.get_engine("local", address="auto")


def test_a_search_space_is_checked_as_data():
    from ddpg_cli.config import load_config
    from ddpg_cli.experiments.space import check_space

    base = load_config(SMOKE)
    (dimension,) = check_space({"agent.actor_lr": {"low": 1e-4, "high": 1e-2, "log": True}}, base, "mine.yaml")
    assert dimension.key == "agent.actor_lr" and dimension.log and not dimension.integer
    with pytest.raises(ConfigError, match=r"^mine.yaml: unknown config key 'agent.actor_lrr'"):
        check_space({"agent.actor_lrr": {"low": 1e-4, "high": 1e-2}}, base, "mine.yaml")
    with pytest.raises(ConfigError, match="the search space is empty"):
        check_space({}, base, "mine.yaml")
